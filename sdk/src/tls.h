/*
 * TLS transport on OpenSSL 3, non-blocking. The only module (with devcert.c) that includes
 * OpenSSL. Policy: TLS 1.2 minimum, AEAD suites with forward secrecy only, no compression,
 * no renegotiation, ALPN "lifeline/1", peer certificate and host name/IP checked on
 * every handshake. Failures carry OpenSSL's reason in a readable string.
 */
#ifndef LL_TLS_H
#define LL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Non-error results of the step functions; errors are positive sdk_err codes. */
enum { LL_TLS_OK = 0, LL_TLS_WANT_READ = -1, LL_TLS_WANT_WRITE = -2, LL_TLS_HALF_RTT = -3 };

/* A context may be shared by threads and must outlive its connections; one connection is
 * used by one thread at a time. */
typedef struct ll_tls_ctx ll_tls_ctx; /* SSL_CTX plus the client's resumable session */
typedef struct ll_tls ll_tls;         /* one connection */

typedef struct ll_tls_ctx_config {
    bool server;
    const char *ca_file;   /* client: trusted CAs (NULL: system store) */
    const char *cert_file; /* server: required; client: optional (mTLS) */
    const char *key_file;
    const char *client_ca_file; /* server: if set, require and verify client certificates */
} ll_tls_ctx_config;

/* Returns 0, SDK_ETLS (unreadable file, key mismatch; detail in err) or SDK_ENOMEM
 * (SDK_EINVAL: a server config without cert_file). */
int ll_tls_ctx_new(const ll_tls_ctx_config *cfg, ll_tls_ctx **out, char *err, size_t errlen);
void ll_tls_ctx_free(ll_tls_ctx *ctx);
/* Server: seal and open session tickets with ring's keys (ticketkeys.h) instead of OpenSSL's
 * own keys of this process, so that any server sharing them resumes this one's tickets. Call
 * before the first connection; ring must outlive ctx. 0, SDK_EINVAL or SDK_ETLS. */
struct ll_ticket_ring;
int ll_tls_ctx_share_ticket_keys(ll_tls_ctx *ctx, struct ll_ticket_ring *ring);
/* Rebuild the context's SSL_CTX from cfg (the files are read again) and use it for every
 * connection made from now on; connections already made keep theirs, and tickets issued
 * before still resume (the ticket keys carry over). On failure (SDK_ETLS, SDK_ENOMEM,
 * SDK_EINVAL: cfg for the other side; detail in err) the context is unchanged. Any thread;
 * blocks on file I/O. */
int ll_tls_ctx_reload(ll_tls_ctx *ctx, const ll_tls_ctx_config *cfg, char *err, size_t errlen);
/* When the context's own certificate expires, in seconds since the epoch (0: none, or
 * unreadable). Any thread. */
int64_t ll_tls_ctx_not_after(ll_tls_ctx *ctx);

/*
 * Wrap a connected non-blocking socket. Client side: servername is the name (or IP
 * literal) verified against the certificate and sent as SNI (no SNI for IP literals),
 * and the context's saved session, if any, is offered for resumption when it was made
 * for the same servername. The fd stays the caller's (ll_tls_free does not close it).
 * Returns 0, SDK_EINVAL (client without servername), SDK_ENOMEM or SDK_ETLS.
 */
int ll_tls_new(ll_tls_ctx *ctx, int fd, const char *servername, ll_tls **out, char *err, size_t errlen);
void ll_tls_free(ll_tls *t);

/* Step the handshake: LL_TLS_OK when done, LL_TLS_WANT_*, or SDK_EPEERAUTH (verification
 * failed), SDK_ETLS (other TLS failure), SDK_EDISCONNECTED (peer closed/reset).
 * Server, TLS 1.3: when the client resumes a ticket tagged by ll_tls_tag_ticket, one step
 * returns LL_TLS_HALF_RTT as soon as the server's flight is out. From then until a step
 * returns LL_TLS_OK, ll_tls_write sends 0.5-RTT data (RFC 8446, 4.4.4): only the client
 * that made the key share can read it, but that client is not yet confirmed (the
 * ClientHello may be a replay), so what is sent then must commit the server to nothing. */
int ll_tls_handshake(ll_tls *t);
/* Server: the connection's next session ticket carries tag and len bytes of secret (at most
 * LL_TLS_TICKET_SECRET_MAX; opaque to the client: inside the ticket's encryption, readable
 * by whoever holds the ticket keys, so by every instance sharing them). */
#define LL_TLS_TICKET_SECRET_MAX 32
void ll_tls_tag_ticket(ll_tls *t, uint64_t tag, const void *secret, size_t len);
/* Server: the tag of the ticket this connection resumed, 0 if none (not resumed, TLS 1.2, or
 * untagged). Valid from LL_TLS_HALF_RTT on. */
uint64_t ll_tls_ticket_tag(const ll_tls *t);
/* Server: the secret of that ticket copied into buf (cap bytes): its length, 0 if none or
 * longer than cap. */
size_t ll_tls_ticket_secret(const ll_tls *t, void *buf, size_t cap);
/* Read up to len bytes: LL_TLS_OK with *n > 0, LL_TLS_WANT_*, SDK_EDISCONNECTED (clean EOF or
 * reset), SDK_ETLS, SDK_EPEERAUTH (with TLS 1.3 the client's handshake completes before the
 * server has checked the client certificate, so a refusal arrives as an alert on a read). */
int ll_tls_read(ll_tls *t, void *buf, size_t len, size_t *n);
/* Whether OpenSSL holds received bytes, decrypted or not (read them before polling again:
 * the socket will not signal them). */
bool ll_tls_has_pending(ll_tls *t);
/* Free the connection's read and write buffers (about 17 KiB each) if they hold nothing,
 * for a connection that has gone quiet: OpenSSL allocates them again on the next read or
 * write. A no-op while they hold bytes. The connection's thread. */
void ll_tls_release_buffers(ll_tls *t);
/* Write up to len bytes: LL_TLS_OK with *n > 0, LL_TLS_WANT_*, SDK_EDISCONNECTED, SDK_ETLS.
 * Partial writes are enabled; after WANT_* the same bytes may be retried from any address. */
int ll_tls_write(ll_tls *t, const void *buf, size_t len, size_t *n);
/* Server, after the handshake: send the connection's TLS 1.3 session ticket (the context
 * issues none during the handshake; TLS 1.2 needs no call). Call once no write is pending;
 * LL_TLS_OK once sent (or none is due), LL_TLS_WANT_* to call again when the socket is
 * ready, or an error as for ll_tls_write. */
int ll_tls_send_ticket(ll_tls *t);
/* Send close_notify once (best effort, never blocks). */
void ll_tls_shutdown(ll_tls *t);

/* Readable reason for the last failure of t ("certificate verify failed: hostname mismatch"). */
const char *ll_tls_error(const ll_tls *t);
bool ll_tls_resumed(const ll_tls *t);
/* After SDK_EDISCONNECTED: true if the peer ended the stream (FIN, close_notify) rather than
 * resetting it. */
bool ll_tls_peer_closed(const ll_tls *t);
/* Peer certificate subject as a one-line string into buf ("" if none). */
void ll_tls_peer_subject(const ll_tls *t, char *buf, size_t len);
/* The negotiated ALPN protocol into buf ("lifeline/1" after a handshake, "" before). */
void ll_tls_alpn(const ll_tls *t, char *buf, size_t len);
/* OpenSSL's first queued error of this thread as a string into buf, then empty the queue. */
void ll_tls_openssl_reason(char *buf, size_t len);

/*
 * Development certificates (lifeline-server --dev-certs DIR): if DIR lacks them, create
 * ca.pem/ca.key, server.pem/server.key (CN localhost; SAN DNS:localhost, IP:127.0.0.1,
 * IP:::1) and client.pem/client.key, all signed by the CA (EC P-256, SHA-256, 825 days).
 * Existing files are kept. Returns 0 or SDK_EIO/SDK_ETLS with detail in err.
 */
int ll_tls_dev_certs(const char *dir, char *err, size_t errlen);

/*
 * For tests: DIR/BASENAME.pem and DIR/BASENAME.key (overwritten), a certificate for cn with
 * the NULL-terminated sans (each a DNS name or an IP literal; NULL for none), usable for both
 * server and client authentication and signed by DIR's CA (created first if missing).
 * Returns 0 or SDK_EINVAL/SDK_EIO/SDK_ETLS with detail in err.
 */
int ll_tls_dev_cert_for(const char *dir, const char *basename, const char *cn, const char *const *sans, char *err,
                        size_t errlen);

/* Hashing for stored secrets (a session token kept outside the process is kept hashed), here
 * so that OpenSSL stays in this file. */
#define LL_SHA256_LEN 32
/* SHA-256 of len bytes at data into out. 0 or SDK_ENOMEM (OpenSSL could not allocate). */
int ll_tls_sha256(const void *data, size_t len, uint8_t out[LL_SHA256_LEN]);
/* Whether a and b (len bytes each) are equal, in time that depends only on len. */
bool ll_tls_equal_ct(const void *a, const void *b, size_t len);

#endif
