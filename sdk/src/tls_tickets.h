/*
 * TLS session tickets under keys shared through the session store (ticketkeys.h): the
 * OpenSSL callback half, private to the TLS modules (tls.c calls it; it includes OpenSSL).
 */
#ifndef LL_TLS_TICKETS_H
#define LL_TLS_TICKETS_H

#include "ticketkeys.h"

#include <openssl/ssl.h>

/* Encrypt c's tickets with ring's current key and decrypt them with any key ring holds
 * (instead of OpenSSL's keys of this process). ring must outlive c. 0, or SDK_ETLS. */
int ll_tls_tickets_install(SSL_CTX *c, ll_ticket_ring *ring);

#endif
