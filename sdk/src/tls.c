/*
 * TLS transport on OpenSSL 3 (see tls.h). With devcert.c, the only file that includes
 * OpenSSL.
 *
 * Error queue discipline: OpenSSL keeps one error queue per thread, shared by every
 * connection that thread serves. Each SSL_* call below is preceded by ERR_clear_error() so
 * that a failure is explained by its own reason, and the queue is emptied again once the
 * reason has been copied into the connection, so nothing stale reaches the next one.
 *
 * Locking: the shared mutable state is the client context's saved session and the server
 * context's SSL_CTX, which ll_tls_ctx_reload replaces; both are guarded by ll_tls_ctx.lock
 * (a leaf lock: nothing else is taken while holding it). Every SSL holds a reference on the
 * SSL_CTX it was made from, so a replaced SSL_CTX lives on until its last connection ends.
 */
#include "tls.h"

#include "ll.h"
#include "tls_shared.h"
#include "tls_tickets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define ERROR_LEN 256

/* TLS 1.2 suites: ECDHE for forward secrecy, AEAD only. TLS 1.3 suites are all AEAD. */
static const char TLS12_CIPHERS[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* ALPN wire format: length-prefixed protocol names. */
static const unsigned char ALPN_WIRE[] = "\x0alifeline/1";
#define ALPN_WIRE_LEN (sizeof ALPN_WIRE - 1)
#define ALPN_NAME     ((const char *)ALPN_WIRE + 1)
#define ALPN_NAME_LEN (ALPN_WIRE_LEN - 1)

static const unsigned char SESSION_ID_CONTEXT[] = "lifeline";

struct ll_tls_ctx {
    SSL_CTX *ssl_ctx;
    ll_tls_shared *shared; /* client: the cache entry ssl_ctx came from (tls_shared.h) */
    bool server;
    pthread_mutex_t lock; /* guards the three fields below */
    SSL_SESSION *session; /* client: a copy of the most recent resumable session, or NULL */
    char *session_host;   /* the server name it was verified against */
    uint64_t session_gen; /* counts saved sessions, so a connection can find its own */
};

struct ll_tls {
    ll_tls_ctx *ctx;
    SSL *ssl;
    char *servername; /* client: the name verified (NULL on the server) */
    bool failed;      /* a fatal error: SSL_shutdown must not be called */
    bool shutdown_sent;
    bool refused;         /* a callback of ours failed the handshake; error says why */
    bool peer_closed;     /* the peer ended the stream (FIN or close_notify), not a reset */
    bool ticket_asked;    /* server: ll_tls_send_ticket has asked OpenSSL for the ticket */
    bool flight_sent;     /* server: its first flight is out (SSL_read_early_data returned) */
    bool half_rtt;        /* server: LL_TLS_HALF_RTT returned, the client's Finished not read */
    uint64_t session_gen; /* client: the saved session it was offered or saved last */
    char error[ERROR_LEN];
};

/* ---- client session cache ----------------------------------------------------------- */

/*
 * The context keeps a private copy of the latest session and offers each handshake a copy
 * of that. Copies, because OpenSSL marks a connection's session "not resumable" when the
 * connection is freed without close_notify (ssl_clear_bad_session), and a connection cut
 * by the network, the very case resumption is for, ends exactly that way.
 * A connection that fails with a TLS error (a fatal alert) discards the session it was
 * offered or saved, as RFC 5246 asks; a plain disconnect keeps it.
 */
static void forget_session(ll_tls_ctx *ctx)
{
    SSL_SESSION_free(ctx->session);
    free(ctx->session_host);
    ctx->session = NULL;
    ctx->session_host = NULL;
}

/* New-session callback (TLS 1.3 tickets come after the handshake, so this mostly runs
 * from SSL_read). Returns 0: OpenSSL keeps its reference, we keep our copy. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    ll_tls *t = SSL_get_app_data(ssl);
    SSL_SESSION *copy = NULL;
    char *host = NULL;

    if (t == NULL || t->servername == NULL || !SSL_SESSION_is_resumable(sess)) {
        return 0;
    }
    copy = SSL_SESSION_dup(sess);
    host = strdup(t->servername);
    if (copy == NULL || host == NULL) {
        SSL_SESSION_free(copy);
        free(host);
        return 0;
    }
    pthread_mutex_lock(&t->ctx->lock);
    forget_session(t->ctx);
    t->ctx->session = copy;
    t->ctx->session_host = host;
    t->session_gen = ++t->ctx->session_gen;
    pthread_mutex_unlock(&t->ctx->lock);
    return 0;
}

static void drop_saved_session(ll_tls *t)
{
    pthread_mutex_lock(&t->ctx->lock);
    if (t->session_gen != 0 && t->session_gen == t->ctx->session_gen) {
        forget_session(t->ctx);
    }
    pthread_mutex_unlock(&t->ctx->lock);
}

static bool is_ip_literal(const char *name);

/* Whether the saved session may be offered to name. A resumed handshake skips certificate
 * and host name checks, so only where they would pass: the name the session was verified
 * for, or another name that the certificate verified then also covers (one client's
 * endpoints of a cluster: a node's name, or an address, in the cluster's certificate).
 * Elsewhere the full handshake checks the name. Under ctx->lock. */
static bool session_fits(const ll_tls_ctx *ctx, const char *name)
{
    if (ctx->session == NULL) {
        return false;
    }
    if (strcmp(ctx->session_host, name) == 0) {
        return true;
    }
    X509 *peer = SSL_SESSION_get0_peer(ctx->session);
    if (peer == NULL) {
        return false;
    }
    int ok = is_ip_literal(name) ? X509_check_ip_asc(peer, name, 0)
                                 : X509_check_host(peer, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL);
    ERR_clear_error();
    return ok == 1;
}

/* Offer the saved session where it fits (session_fits). A server that cannot use it (it
 * does not have the ticket's key) makes a full handshake instead: nothing fails. */
static void offer_session(ll_tls *t)
{
    ll_tls_ctx *ctx = t->ctx;
    SSL_SESSION *copy = NULL;

    pthread_mutex_lock(&ctx->lock);
    if (session_fits(ctx, t->servername)) {
        copy = SSL_SESSION_dup(ctx->session);
        t->session_gen = ctx->session_gen;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (copy == NULL) {
        return;
    }
    ERR_clear_error();
    if (!SSL_set_session(t->ssl, copy)) {
        ERR_clear_error(); /* resumption is an optimisation: a full handshake follows */
    }
    SSL_SESSION_free(copy); /* the SSL holds its own reference */
}

/* ---- error capture ------------------------------------------------------------------ */

void ll_tls_openssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_error();

    if (len == 0) {
        ERR_clear_error();
        return;
    }
    if (e == 0) {
        LL_DETAIL(buf, len, "no OpenSSL reason");
    } else {
        ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
}

/* Alerts and reasons that mean a certificate was refused: they become SDK_EPEERAUTH, so the
 * application can tell "your credentials are wrong" from a broken connection. */
static bool reason_is_peerauth(int reason)
{
    switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
        return true;
    default:
        return false;
    }
}

/* SSL_ERROR_SSL: a protocol or verification failure with a reason in the queue. */
static int ssl_failure(ll_tls *t)
{
    long verify = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_error();
    int reason = ERR_GET_REASON(e);

    /* A callback of ours that refused the handshake has said why already. */
    if (t->refused) {
        ERR_clear_error();
        return SDK_ETLS;
    }
    if (verify != X509_V_OK) {
        LL_DETAIL(t->error, sizeof t->error, "certificate verify failed: %s", X509_verify_cert_error_string(verify));
        ERR_clear_error();
        return SDK_EPEERAUTH;
    }
    /* OpenSSL 3 reports a TCP close without close_notify this way; for us it is a lost
     * connection like any other (the framing above TLS detects truncation). */
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        LL_DETAIL(t->error, sizeof t->error, "peer closed the connection");
        ERR_clear_error();
        t->peer_closed = true;
        return SDK_EDISCONNECTED;
    }
    ll_tls_openssl_reason(t->error, sizeof t->error);
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && reason_is_peerauth(reason)) {
        return SDK_EPEERAUTH;
    }
    return SDK_ETLS;
}

/* Map a failed SSL_* call (ret <= 0, saved_errno taken right after it) to our codes. */
static int step_failed(ll_tls *t, int ret, int saved_errno)
{
    int rc = SDK_ETLS;

    switch (SSL_get_error(t->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return LL_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return LL_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        LL_DETAIL(t->error, sizeof t->error, "peer closed the connection (close_notify)");
        t->peer_closed = true;
        return SDK_EDISCONNECTED;
    case SSL_ERROR_SYSCALL:
        LL_DETAIL(t->error, sizeof t->error, "%s",
                  saved_errno != 0 ? strerror(saved_errno) : "peer closed the connection");
        t->peer_closed = saved_errno == 0;
        ERR_clear_error();
        rc = SDK_EDISCONNECTED;
        break;
    case SSL_ERROR_SSL:
        rc = ssl_failure(t);
        if (rc != SDK_EDISCONNECTED && !t->ctx->server) {
            drop_saved_session(t);
        }
        break;
    default:
        ll_tls_openssl_reason(t->error, sizeof t->error);
        break;
    }
    t->failed = true;
    return rc;
}

/* ---- socket BIO without SIGPIPE ----------------------------------------------------- */

/*
 * OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the peer has gone;
 * a library must not kill its host process nor change its signal handlers. This method is
 * the socket BIO with its write replaced by send(MSG_NOSIGNAL).
 */
static BIO_METHOD *nosigpipe_method;
static pthread_once_t nosigpipe_once = PTHREAD_ONCE_INIT;

static int nosigpipe_write(BIO *b, const char *data, int len)
{
    ssize_t n = send((int)BIO_get_fd(b, NULL), data, (size_t)len, MSG_NOSIGNAL);
    BIO_clear_retry_flags(b);
    if (n < 0 && BIO_sock_should_retry(-1)) {
        BIO_set_retry_write(b);
    }
    return (int)n;
}

static void nosigpipe_init(void)
{
    const BIO_METHOD *sock = BIO_s_socket();
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOCKET, "socket (MSG_NOSIGNAL)");

    if (m == NULL) {
        return;
    }
    if (!BIO_meth_set_write(m, nosigpipe_write) || !BIO_meth_set_read(m, BIO_meth_get_read(sock)) ||
        !BIO_meth_set_puts(m, BIO_meth_get_puts(sock)) || !BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock)) ||
        !BIO_meth_set_create(m, BIO_meth_get_create(sock)) || !BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock))) {
        BIO_meth_free(m);
        return;
    }
    /* Lives for the process, like OpenSSL's own method tables. */
    nosigpipe_method = m;
}

static BIO *socket_bio(int fd)
{
    BIO *b = NULL;

    pthread_once(&nosigpipe_once, nosigpipe_init);
    if (nosigpipe_method == NULL) {
        return NULL;
    }
    b = BIO_new(nosigpipe_method);
    if (b != NULL) {
        BIO_set_fd(b, fd, BIO_NOCLOSE);
    }
    return b;
}

/* ---- context ------------------------------------------------------------------------ */

/* Server: a client that offers no ALPN at all never reaches select_alpn, so the ClientHello
 * is checked first; the refusal is the same alert select_alpn sends. */
static int require_alpn(SSL *ssl, int *alert, void *arg)
{
    ll_tls *t = SSL_get_app_data(ssl);
    const unsigned char *ext = NULL;
    size_t extlen = 0;

    (void)arg;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext, &extlen) == 1) {
        return SSL_CLIENT_HELLO_SUCCESS;
    }
    if (t != NULL) {
        LL_DETAIL(t->error, sizeof t->error, "client did not offer ALPN protocol %s", ALPN_NAME);
        t->refused = true;
    }
    *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
    return SSL_CLIENT_HELLO_ERROR;
}

/* Server ALPN choice: "lifeline/1" or a fatal no_application_protocol alert. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    unsigned int i = 0;

    (void)ssl;
    (void)arg;
    while (i < inlen) {
        unsigned int n = in[i];
        if (n > inlen - i - 1) {
            break; /* malformed list */
        }
        if (n == ALPN_NAME_LEN && memcmp(in + i + 1, ALPN_NAME, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += n + 1;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int ctx_failed(const char *what, const char *file, char *err, size_t errlen)
{
    char reason[ERROR_LEN];

    ll_tls_openssl_reason(reason, sizeof reason);
    if (file != NULL) {
        LL_DETAIL(err, errlen, "%s %s: %s", what, file, reason);
    } else {
        LL_DETAIL(err, errlen, "%s: %s", what, reason);
    }
    return SDK_ETLS;
}

/* Protocol policy shared by both ends. */
static int apply_policy(ll_tls_ctx *ctx, char *err, size_t errlen)
{
    SSL_CTX *c = ctx->ssl_ctx;
    long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;

    ERR_clear_error();
    if (!SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION)) {
        return ctx_failed("set minimum TLS version", NULL, err, errlen);
    }
    if (!SSL_CTX_set_cipher_list(c, TLS12_CIPHERS)) {
        return ctx_failed("set TLS 1.2 ciphers", NULL, err, errlen);
    }
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Read whatever the socket has in one system call, not a record header and then its
     * body: half the reads on a busy or a ping-ponging connection. */
    SSL_CTX_set_read_ahead(c, 1);
    /* An idle server connection then holds no read/write buffers (about 34 KiB each):
     * this is what lets one server keep many thousands of quiet clients. */
    if (ctx->server) {
        mode |= SSL_MODE_RELEASE_BUFFERS;
    }
    SSL_CTX_set_mode(c, mode);
    return 0;
}

static int load_cert_and_key(SSL_CTX *c, const char *cert, const char *key, char *err, size_t errlen)
{
    /* A key may sit in the certificate's own PEM file. */
    const char *keyfile = key != NULL ? key : cert;

    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
        return ctx_failed("cannot load certificate", cert, err, errlen);
    }
    if (SSL_CTX_use_PrivateKey_file(c, keyfile, SSL_FILETYPE_PEM) != 1) {
        return ctx_failed("cannot load private key", keyfile, err, errlen);
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        return ctx_failed("private key does not match certificate", cert, err, errlen);
    }
    return 0;
}

/*
 * OpenSSL fills some certificate fields (key identifiers, purposes) lazily on first use,
 * and TSan reports that first write racing with readers when several threads verify
 * against one shared store. Filling them now, before any handshake, keeps a context
 * shareable without that noise. Best effort: a failure here only means lazy filling.
 */
static void warm_store(SSL_CTX *c)
{
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(c));
    int i = 0;

    for (i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (x != NULL) {
            (void)X509_check_purpose(x, -1, 0);
        }
    }
    ERR_clear_error();
}

static int setup_client(ll_tls_ctx *ctx, const ll_tls_ctx_config *cfg, char *err, size_t errlen)
{
    SSL_CTX *c = ctx->ssl_ctx;

    ERR_clear_error();
    if (cfg->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(c, cfg->ca_file, NULL) != 1) {
            return ctx_failed("cannot load CA file", cfg->ca_file, err, errlen);
        }
    } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
        return ctx_failed("cannot load the system CA store", NULL, err, errlen);
    }
    warm_store(c);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    /* set_alpn_protos is the odd one out: 0 means success. */
    if (SSL_CTX_set_alpn_protos(c, ALPN_WIRE, ALPN_WIRE_LEN) != 0) {
        return ctx_failed("set ALPN", NULL, err, errlen);
    }
    /* We keep the session ourselves (one per context) instead of OpenSSL's client cache. */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, on_new_session);
    if (cfg->cert_file != NULL) {
        LL_GUARD(load_cert_and_key(c, cfg->cert_file, cfg->key_file, err, errlen));
    }
    return 0;
}

static int require_client_certs(SSL_CTX *c, const char *ca_file, char *err, size_t errlen)
{
    STACK_OF(X509_NAME) *names = NULL;

    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(c, ca_file, NULL) != 1) {
        return ctx_failed("cannot load client CA file", ca_file, err, errlen);
    }
    /* The CA names tell a client with several certificates which one to present. */
    names = SSL_load_client_CA_file(ca_file);
    if (names == NULL) {
        return ctx_failed("cannot read CA names from", ca_file, err, errlen);
    }
    SSL_CTX_set_client_CA_list(c, names);
    warm_store(c);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return 0;
}

static int setup_server(ll_tls_ctx *ctx, const ll_tls_ctx_config *cfg, char *err, size_t errlen)
{
    SSL_CTX *c = ctx->ssl_ctx;

    if (cfg->cert_file == NULL) {
        LL_DETAIL(err, errlen, "a TLS server needs a certificate and a private key");
        return SDK_EINVAL;
    }
    LL_GUARD(load_cert_and_key(c, cfg->cert_file, cfg->key_file, err, errlen));
    SSL_CTX_set_client_hello_cb(c, require_alpn, NULL);
    SSL_CTX_set_alpn_select_cb(c, select_alpn, NULL);
    /* Resumption: stateless tickets (on by default) serve TLS 1.3 and 1.2; the id context
     * is required for resuming sessions that carry a verified client certificate. */
    ERR_clear_error();
    if (!SSL_CTX_set_session_id_context(c, SESSION_ID_CONTEXT, sizeof SESSION_ID_CONTEXT - 1)) {
        return ctx_failed("set session id context", NULL, err, errlen);
    }
    /* The client keeps only the latest ticket, so one per handshake is enough, and it is
     * sent by ll_tls_send_ticket rather than inside the handshake (see there). */
    (void)SSL_CTX_set_num_tickets(c, 0);
    if (cfg->client_ca_file != NULL) {
        LL_GUARD(require_client_certs(c, cfg->client_ca_file, err, errlen));
    }
    return 0;
}

/* A new SSL_CTX for cfg, with the policy and the files applied. */
static int build_ssl_ctx(const ll_tls_ctx_config *cfg, SSL_CTX **out, char *err, size_t errlen)
{
    ll_tls_ctx tmp = {.server = cfg->server}; /* what the setup functions read */

    ERR_clear_error();
    tmp.ssl_ctx = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
    if (tmp.ssl_ctx == NULL) {
        return ctx_failed("create TLS context", NULL, err, errlen);
    }
    int rc = apply_policy(&tmp, err, errlen);
    if (rc == 0) {
        rc = cfg->server ? setup_server(&tmp, cfg, err, errlen) : setup_client(&tmp, cfg, err, errlen);
    }
    if (rc != 0) {
        SSL_CTX_free(tmp.ssl_ctx);
        return rc;
    }
    *out = tmp.ssl_ctx;
    return 0;
}

int ll_tls_ctx_new(const ll_tls_ctx_config *cfg, ll_tls_ctx **out, char *err, size_t errlen)
{
    ll_tls_ctx *ctx = NULL;

    LL_ENSURE(cfg != NULL && out != NULL, SDK_EINVAL);
    *out = NULL;
    ctx = calloc(1, sizeof *ctx);
    LL_ENSURE(ctx != NULL, SDK_ENOMEM);
    ctx->server = cfg->server;
    pthread_mutex_init(&ctx->lock, NULL);
    /* Clients share one context per set of files; a server's is its own (it is reloaded
     * and carries the server's ticket keys). */
    int rc = cfg->server ? build_ssl_ctx(cfg, &ctx->ssl_ctx, err, errlen)
                         : ll_tls_shared_acquire(cfg, build_ssl_ctx, &ctx->shared, &ctx->ssl_ctx, err, errlen);
    if (rc != 0) {
        ll_tls_ctx_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

/* The ticket keys of from, into to: tickets issued before a reload still resume after it. */
static void carry_ticket_keys(SSL_CTX *from, SSL_CTX *to)
{
    unsigned char keys[80]; /* name, HMAC secret, AES key: OpenSSL's ticket key block */

    if (SSL_CTX_get_tlsext_ticket_keys(from, keys, sizeof keys) == 1) {
        (void)SSL_CTX_set_tlsext_ticket_keys(to, keys, sizeof keys);
    }
    OPENSSL_cleanse(keys, sizeof keys);
}

int ll_tls_ctx_reload(ll_tls_ctx *ctx, const ll_tls_ctx_config *cfg, char *err, size_t errlen)
{
    SSL_CTX *fresh = NULL;

    LL_ENSURE(ctx != NULL && cfg != NULL && cfg->server == ctx->server, SDK_EINVAL);
    LL_GUARD(build_ssl_ctx(cfg, &fresh, err, errlen));
    pthread_mutex_lock(&ctx->lock);
    SSL_CTX *old = ctx->ssl_ctx;
    ll_tls_shared *old_shared = ctx->shared;
    carry_ticket_keys(old, fresh);
    ctx->ssl_ctx = fresh; /* this context's own from now on, even for a client */
    ctx->shared = NULL;
    pthread_mutex_unlock(&ctx->lock);
    SSL_CTX_free(old); /* our reference; its connections hold theirs */
    ll_tls_shared_release(old_shared);
    ERR_clear_error();
    return 0;
}

int64_t ll_tls_ctx_not_after(ll_tls_ctx *ctx)
{
    int64_t when = 0;
    struct tm tm;

    pthread_mutex_lock(&ctx->lock);
    X509 *cert = SSL_CTX_get0_certificate(ctx->ssl_ctx);
    if (cert != NULL && ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) {
        when = (int64_t)timegm(&tm);
    }
    pthread_mutex_unlock(&ctx->lock);
    ERR_clear_error();
    return when;
}

void ll_tls_ctx_free(ll_tls_ctx *ctx)
{
    if (ctx == NULL) {
        return;
    }
    forget_session(ctx);
    SSL_CTX_free(ctx->ssl_ctx);
    ll_tls_shared_release(ctx->shared);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

/* ---- connection --------------------------------------------------------------------- */

static bool is_ip_literal(const char *name)
{
    unsigned char addr[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* Who the server must prove to be: a DNS name (also sent as SNI) or an IP address, which
 * is matched against IP SANs and never sent as SNI (RFC 6066 forbids it). */
static int set_peer_identity(ll_tls *t, char *err, size_t errlen)
{
    const char *name = t->servername;

    ERR_clear_error();
    if (is_ip_literal(name)) {
        if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name)) {
            return ctx_failed("set expected IP address", name, err, errlen);
        }
        return 0;
    }
    SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (!SSL_set1_host(t->ssl, name)) {
        return ctx_failed("set expected host name", name, err, errlen);
    }
    if (!SSL_set_tlsext_host_name(t->ssl, name)) {
        return ctx_failed("set SNI", name, err, errlen);
    }
    return 0;
}

static int setup_client_conn(ll_tls *t, const char *servername, char *err, size_t errlen)
{
    if (servername == NULL || servername[0] == '\0') {
        LL_DETAIL(err, errlen, "a TLS client needs the server name to verify");
        return SDK_EINVAL;
    }
    t->servername = strdup(servername);
    LL_ENSURE(t->servername != NULL, SDK_ENOMEM);
    SSL_set_connect_state(t->ssl);
    LL_GUARD(set_peer_identity(t, err, errlen));
    offer_session(t);
    return 0;
}

int ll_tls_new(ll_tls_ctx *ctx, int fd, const char *servername, ll_tls **out, char *err, size_t errlen)
{
    ll_tls *t = NULL;
    BIO *bio = NULL;
    int rc = 0;

    LL_ENSURE(ctx != NULL && fd >= 0 && out != NULL, SDK_EINVAL);
    *out = NULL;
    t = calloc(1, sizeof *t);
    LL_ENSURE(t != NULL, SDK_ENOMEM);
    t->ctx = ctx;
    ERR_clear_error();
    pthread_mutex_lock(&ctx->lock); /* a reload may be replacing ssl_ctx */
    t->ssl = SSL_new(ctx->ssl_ctx);
    pthread_mutex_unlock(&ctx->lock);
    bio = socket_bio(fd);
    if (t->ssl == NULL || bio == NULL) {
        BIO_free(bio);
        rc = ctx_failed("create TLS connection", NULL, err, errlen);
        goto out;
    }
    SSL_set_bio(t->ssl, bio, bio); /* the SSL owns the BIO; the fd stays the caller's */
    SSL_set_app_data(t->ssl, t);
    if (ctx->server) {
        SSL_set_accept_state(t->ssl);
    } else {
        rc = setup_client_conn(t, servername, err, errlen);
    }
out:
    if (rc != 0) {
        ll_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void ll_tls_free(ll_tls *t)
{
    if (t == NULL) {
        return;
    }
    SSL_free(t->ssl);
    free(t->servername);
    free(t);
}

/* The client insists on our protocol: a server that ignored ALPN speaks something else. */
static int check_alpn(ll_tls *t)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;

    if (t->ctx->server) {
        return LL_TLS_OK;
    }
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n != ALPN_NAME_LEN || memcmp(p, ALPN_NAME, n) != 0) {
        LL_DETAIL(t->error, sizeof t->error, "server did not select ALPN protocol %s", ALPN_NAME);
        t->failed = true;
        drop_saved_session(t);
        return SDK_ETLS;
    }
    return LL_TLS_OK;
}

/*
 * Server: the handshake up to and including the server's first flight. SSL_read_early_data
 * stops there (SSL_do_handshake would go on to wait for the client's Finished); the context
 * never accepts early data (max_early_data stays 0), so nothing is read. LL_TLS_OK once the
 * flight is out, then LL_TLS_HALF_RTT if the client resumed a tagged ticket.
 */
static int server_flight(ll_tls *t)
{
    unsigned char none[1];
    size_t n = 0;

    errno = 0;
    switch (SSL_read_early_data(t->ssl, none, sizeof none, &n)) {
    case SSL_READ_EARLY_DATA_FINISH:
        t->flight_sent = true;
        t->half_rtt = !SSL_is_init_finished(t->ssl) && ll_tls_ticket_tag(t) != 0;
        return t->half_rtt ? LL_TLS_HALF_RTT : LL_TLS_OK;
    case SSL_READ_EARLY_DATA_SUCCESS:
        LL_DETAIL(t->error, sizeof t->error, "client sent early data, which was never offered");
        t->failed = true;
        return SDK_ETLS;
    default:
        return step_failed(t, 0, errno);
    }
}

int ll_tls_handshake(ll_tls *t)
{
    int ret = 0;

    LL_ENSURE(t != NULL, SDK_EINVAL);
    ERR_clear_error();
    if (t->ctx->server && !t->flight_sent) {
        ret = server_flight(t);
        if (ret != LL_TLS_OK) {
            return ret;
        }
    }
    errno = 0;
    ret = SSL_do_handshake(t->ssl);
    if (ret != 1) {
        return step_failed(t, ret, errno);
    }
    t->half_rtt = false;
    return check_alpn(t);
}

int ll_tls_ctx_share_ticket_keys(ll_tls_ctx *ctx, ll_ticket_ring *ring)
{
    LL_ENSURE(ctx != NULL && ctx->server && ring != NULL, SDK_EINVAL);
    return ll_tls_tickets_install(ctx->ssl_ctx, ring);
}

/* The tag as a ticket carries it: little-endian, then the secret, since with shared ticket
 * keys another instance (of any byte order) may read it back. */
#define TAG_LEN            8
#define TICKET_APPDATA_MAX (TAG_LEN + LL_TLS_TICKET_SECRET_MAX)

void ll_tls_tag_ticket(ll_tls *t, uint64_t tag, const void *secret, size_t len)
{
    uint8_t data[TICKET_APPDATA_MAX];
    len = LL_MIN(len, (size_t)LL_TLS_TICKET_SECRET_MAX);
    for (int i = 0; i < TAG_LEN; i++) {
        data[i] = (uint8_t)(tag >> (8 * i));
    }
    if (len > 0) {
        memcpy(data + TAG_LEN, secret, len);
    }
    if (!SSL_SESSION_set1_ticket_appdata(SSL_get_session(t->ssl), data, TAG_LEN + len)) {
        ERR_clear_error(); /* an untagged ticket still resumes TLS, a round trip slower */
    }
    OPENSSL_cleanse(data, sizeof(data));
}

/* The resumed ticket's application data, if it is a tag of ours. */
static bool resumed_appdata(const ll_tls *t, const uint8_t **data, size_t *len)
{
    void *p = NULL;
    SSL_SESSION *s = SSL_get_session(t->ssl);
    if (s == NULL || SSL_session_reused(t->ssl) != 1 || !SSL_SESSION_get0_ticket_appdata(s, &p, len) ||
        *len < TAG_LEN || *len > TICKET_APPDATA_MAX) {
        return false;
    }
    *data = p;
    return true;
}

uint64_t ll_tls_ticket_tag(const ll_tls *t)
{
    const uint8_t *data = NULL;
    size_t len = 0;
    uint64_t tag = 0;
    if (!resumed_appdata(t, &data, &len)) {
        return 0;
    }
    for (int i = TAG_LEN - 1; i >= 0; i--) {
        tag = tag << 8 | data[i];
    }
    return tag;
}

size_t ll_tls_ticket_secret(const ll_tls *t, void *buf, size_t cap)
{
    const uint8_t *data = NULL;
    size_t len = 0;
    if (!resumed_appdata(t, &data, &len) || len - TAG_LEN > cap) {
        return 0;
    }
    memcpy(buf, data + TAG_LEN, len - TAG_LEN);
    return len - TAG_LEN;
}

/*
 * A TLS 1.3 server sends its session ticket after reading the client's Finished. Inside the
 * handshake (OpenSSL's default) its creation (a session copy, then encrypting and MACing
 * it) delays whatever the server answers next, and the client processes the ticket before
 * that answer: on a Lifeline reconnect, both sit between the handshake and the Welcome.
 * The server asks for the ticket here instead, once its first frames are written; the
 * client gets the same one ticket per handshake, a moment later. TLS 1.2 sends its ticket
 * inside the handshake, where it belongs, so there is nothing to do for it.
 */
int ll_tls_send_ticket(ll_tls *t)
{
    int ret = 0;

    LL_ENSURE(t != NULL && t->ctx->server, SDK_EINVAL);
    ERR_clear_error();
    if (!t->ticket_asked) {
        t->ticket_asked = true;
        if (SSL_version(t->ssl) != TLS1_3_VERSION || SSL_new_session_ticket(t->ssl) != 1) {
            ERR_clear_error();
            return LL_TLS_OK;
        }
    }
    errno = 0;
    ret = SSL_do_handshake(t->ssl); /* writes the ticket; 1 at once if another call did */
    if (ret != 1) {
        return step_failed(t, ret, errno);
    }
    /* SSL_MODE_RELEASE_BUFFERS covers SSL_read and SSL_write, not this write: without it an
     * idle connection keeps about 7 KiB of buffers (lifeline-bench's RSS per idle server
     * connection, 24 KiB instead of 17). A no-op if they still hold anything. */
    (void)SSL_free_buffers(t->ssl);
    return LL_TLS_OK;
}

int ll_tls_read(ll_tls *t, void *buf, size_t len, size_t *n)
{
    int ret = 0;

    LL_ENSURE(t != NULL && buf != NULL && len > 0 && n != NULL, SDK_EINVAL);
    *n = 0;
    ERR_clear_error();
    errno = 0;
    ret = SSL_read_ex(t->ssl, buf, len, n);
    if (ret != 1) {
        return step_failed(t, ret, errno);
    }
    return LL_TLS_OK;
}

void ll_tls_release_buffers(ll_tls *t)
{
    if (t != NULL) {
        (void)SSL_free_buffers(t->ssl); /* 0 (nothing freed) while they hold bytes */
    }
}

bool ll_tls_has_pending(ll_tls *t)
{
    return t != NULL && SSL_has_pending(t->ssl);
}

int ll_tls_write(ll_tls *t, const void *buf, size_t len, size_t *n)
{
    int ret = 0;

    LL_ENSURE(t != NULL && buf != NULL && len > 0 && n != NULL, SDK_EINVAL);
    *n = 0;
    ERR_clear_error();
    errno = 0;
    /* Between LL_TLS_HALF_RTT and the end of the handshake OpenSSL writes only through its
     * early-data call, which on a server sends 0.5-RTT data. */
    ret = t->half_rtt ? SSL_write_early_data(t->ssl, buf, len, n) : SSL_write_ex(t->ssl, buf, len, n);
    if (ret != 1) {
        return step_failed(t, ret, errno);
    }
    return LL_TLS_OK;
}

void ll_tls_shutdown(ll_tls *t)
{
    /* After a fatal error OpenSSL forbids SSL_shutdown; before the handshake there is no
     * session to close. Either way the TCP close says enough. */
    if (t == NULL || t->shutdown_sent || t->failed || !SSL_is_init_finished(t->ssl)) {
        return;
    }
    t->shutdown_sent = true;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
}

const char *ll_tls_error(const ll_tls *t)
{
    return t != NULL ? t->error : "";
}

bool ll_tls_peer_closed(const ll_tls *t)
{
    return t->peer_closed;
}

bool ll_tls_resumed(const ll_tls *t)
{
    return t != NULL && SSL_session_reused(t->ssl) == 1;
}

void ll_tls_peer_subject(const ll_tls *t, char *buf, size_t len)
{
    X509 *cert = NULL;
    BIO *mem = NULL;
    int n = 0;

    if (buf == NULL || len == 0) {
        return;
    }
    buf[0] = '\0';
    cert = t != NULL ? SSL_get0_peer_certificate(t->ssl) : NULL;
    if (cert == NULL) {
        return;
    }
    ERR_clear_error();
    mem = BIO_new(BIO_s_mem());
    if (mem != NULL && X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_read(mem, buf, (int)LL_MIN(len - 1, (size_t)INT_MAX));
        buf[n > 0 ? n : 0] = '\0';
    }
    BIO_free(mem);
    ERR_clear_error();
}

void ll_tls_alpn(const ll_tls *t, char *buf, size_t len)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;

    if (buf == NULL || len == 0) {
        return;
    }
    buf[0] = '\0';
    if (t != NULL) {
        SSL_get0_alpn_selected(t->ssl, &p, &n);
        LL_DETAIL(buf, len, "%.*s", (int)n, p != NULL ? (const char *)p : "");
    }
}

int ll_tls_sha256(const void *data, size_t len, uint8_t out[LL_SHA256_LEN])
{
    unsigned int n = 0;
    /* EVP_Digest allocates a context: its only failure here is memory. */
    int ok = EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
    ERR_clear_error();
    return ok == 1 && n == LL_SHA256_LEN ? 0 : SDK_ENOMEM;
}

bool ll_tls_equal_ct(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}
