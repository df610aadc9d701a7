/*
 * Raw protocol peers for unit tests: one ll_link over real TLS on loopback, driven with
 * blocking waits, so a test can play a client or a server the SDK would never be and send
 * exactly the frames it means to. Failures are cmocka assertions; the rp_ prefix marks test
 * code.
 */
#ifndef LL_TEST_RAW_PEER_H
#define LL_TEST_RAW_PEER_H

#include "codec.h"
#include "link.h"

#include <stdint.h>

#define RP_WAIT_MS 10000

typedef struct rp_certs {
    char dir[64];
    char ca[128], cert[128], key[128]; /* ca.pem, server.pem, server.key in dir */
} rp_certs;

/* Development certificates in a fresh temporary directory; 0 or -1 (reason on stderr). */
int rp_certs_make(rp_certs *c);
void rp_certs_remove(const rp_certs *c);

typedef struct rp_peer {
    ll_link link;
} rp_peer;

/* Connect to 127.0.0.1:port as a client of ctx and finish the TLS handshake. */
void rp_connect(rp_peer *p, ll_tls_ctx *ctx, uint16_t port);
/* Accept one connection on listen_fd as a server of ctx and finish the TLS handshake. */
void rp_accept(rp_peer *p, ll_tls_ctx *ctx, int listen_fd);
/* Encode f and write it all. */
void rp_send(rp_peer *p, const Lifeline__Frame *f);
/* The next frame from the other end (release with ll_frame_release). */
void rp_next(rp_peer *p, ll_frame *f);
void rp_close(rp_peer *p);
/* A Hello of protocol version 1 naming session (0: a new one) with token (token_len bytes)
 * and last_received, announcing heartbeats of 5 s with a 15 s timeout. */
void rp_send_hello(rp_peer *p, uint64_t session, const uint8_t *token, size_t token_len, uint64_t last_received);
void rp_send_ping(rp_peer *p, uint64_t nonce);
/* The next frame is a Pong for nonce. */
void rp_expect_pong(rp_peer *p, uint64_t nonce);
/* Connect to port as a client of ctx and open a new session: its id, and its token into
 * token[16]. The ping answered after the welcome means the session ticket (sent right behind
 * the welcome) has been read, so the next connection of ctx resumes TLS with it. */
uint64_t rp_open_session(rp_peer *p, ll_tls_ctx *ctx, uint16_t port, uint8_t *token);
/* The SDK's socket at the other end of p's connection (both ends live in the test process),
 * for checking its options; -1 if none. */
int rp_other_end(const rp_peer *p);
/* Wait until the SDK's end of p's connection has dead-peer detection set: 0, or -1 if not
 * within RP_WAIT_MS; *user_timeout_ms is its TCP_USER_TIMEOUT. TCP_NODELAY must be set too. */
int rp_wait_keepalive(const rp_peer *p, int *user_timeout_ms);

#endif
