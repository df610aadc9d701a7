/*
 * Unit tests for tls_shared.c, the process's cache of client SSL_CTXs: one context per set
 * of files, distinct files give distinct contexts, an entry outlives its last user only as
 * one of a few kept for the next client, a file
 * changed on disk gives a new context (checked end to end: a client context made after
 * its CA file was replaced verifies against the new CA), and acquire/release from many
 * threads at once (run under TSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ll.h"
#include "certdir.h"
#include "tls.h"
#include "tls_shared.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRLEN  512
#define PATHLEN 256

static char dir[128];       /* dev certs: ca.pem, server.pem/key */
static char other[PATHLEN]; /* an unrelated CA */
static atomic_int builds;   /* calls of count_build */

static const char *path_in(const char *d, const char *name, char *buf)
{
    LL_DETAIL(buf, PATHLEN, "%s/%s", d, name);
    return buf;
}

/* A build that only counts: the cache's behaviour does not depend on what is built. */
static int count_build(const ll_tls_ctx_config *cfg, SSL_CTX **out, char *err, size_t errlen)
{
    (void)cfg;
    (void)err;
    (void)errlen;
    atomic_fetch_add(&builds, 1);
    *out = SSL_CTX_new(TLS_client_method());
    return *out != NULL ? 0 : SDK_ENOMEM;
}

static int failing_build(const ll_tls_ctx_config *cfg, SSL_CTX **out, char *err, size_t errlen)
{
    (void)cfg;
    (void)out;
    LL_DETAIL(err, errlen, "cannot load CA file");
    return SDK_ETLS;
}

static void write_file(const char *path, const char *text)
{
    char tmp[PATHLEN + 8];
    LL_DETAIL(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0); /* replaced as deployment tools do: a new inode */
}

static void copy_file(const char *from, const char *to)
{
    char text[16384];
    FILE *f = fopen(from, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    write_file(to, text);
}

static SSL_CTX *acquire(const ll_tls_ctx_config *cfg, ll_tls_shared **entry)
{
    char err[ERRLEN] = "";
    SSL_CTX *c = NULL;
    assert_int_equal(ll_tls_shared_acquire(cfg, count_build, entry, &c, err, sizeof err), 0);
    assert_non_null(c);
    return c;
}

static void drop(SSL_CTX *c, ll_tls_shared *entry)
{
    SSL_CTX_free(c);
    ll_tls_shared_release(entry);
}

/* ---- fixture ------------------------------------------------------------------------ */

static int setup_certs(void **state)
{
    (void)state;
    return ll_test_certdirs("/tmp/ll-test-tls-shared-XXXXXX", dir, sizeof dir, "other", other, sizeof other);
}

static int teardown_certs(void **state)
{
    (void)state;
    return ll_test_rmtree(dir);
}

/* ---- the cache ---------------------------------------------------------------------- */

static void test_same_files_share_one_context(void **state)
{
    char ca[PATHLEN];
    ll_tls_ctx_config cfg = {.ca_file = path_in(dir, "ca.pem", ca)};
    ll_tls_shared *e1 = NULL, *e2 = NULL;

    (void)state;
    ll_tls_shared_flush_idle();
    atomic_store(&builds, 0);
    SSL_CTX *c1 = acquire(&cfg, &e1);
    SSL_CTX *c2 = acquire(&cfg, &e2);
    assert_ptr_equal(c1, c2);
    assert_ptr_equal(e1, e2);
    assert_int_equal(atomic_load(&builds), 1);
    assert_int_equal(ll_tls_shared_entries(), 1);
    drop(c1, e1);
    drop(c2, e2);
    assert_int_equal(ll_tls_shared_entries(), 1); /* kept for the next client */
    SSL_CTX *c3 = acquire(&cfg, &e1);
    assert_ptr_equal(c3, c1);
    assert_int_equal(atomic_load(&builds), 1);
    drop(c3, e1);
    ll_tls_shared_flush_idle();
    assert_int_equal(ll_tls_shared_entries(), 0);
}

static void test_distinct_settings_distinct_contexts(void **state)
{
    char ca[PATHLEN], ca2[PATHLEN], cert[PATHLEN], key[PATHLEN];
    ll_tls_ctx_config cfgs[] = {
        {.ca_file = path_in(dir, "ca.pem", ca)},
        {.ca_file = path_in(other, "ca.pem", ca2)},
        {.ca_file = ca, .cert_file = path_in(dir, "client.pem", cert), .key_file = path_in(dir, "client.key", key)},
        {.ca_file = ca, .cert_file = cert}, /* the key in the certificate's file: another setting */
        {.ca_file = NULL},                  /* the system store */
    };
    enum { N = sizeof cfgs / sizeof cfgs[0] };
    SSL_CTX *c[N];
    ll_tls_shared *e[N];

    (void)state;
    ll_tls_shared_flush_idle();
    atomic_store(&builds, 0);
    for (int i = 0; i < N; i++) {
        c[i] = acquire(&cfgs[i], &e[i]);
        for (int j = 0; j < i; j++) {
            assert_ptr_not_equal(c[i], c[j]);
        }
    }
    assert_int_equal(atomic_load(&builds), N);
    assert_int_equal(ll_tls_shared_entries(), N);
    for (int i = 0; i < N; i++) {
        drop(c[i], e[i]);
    }
    /* N > LL_TLS_SHARED_IDLE_MAX: the least recently used went, the last kept are reused. */
    assert_int_equal(ll_tls_shared_entries(), LL_TLS_SHARED_IDLE_MAX);
    c[0] = acquire(&cfgs[N - 1], &e[0]);
    assert_int_equal(atomic_load(&builds), N);
    drop(c[0], e[0]);
    c[0] = acquire(&cfgs[0], &e[0]); /* the oldest: evicted, built again */
    assert_int_equal(atomic_load(&builds), N + 1);
    drop(c[0], e[0]);
    ll_tls_shared_flush_idle();
    assert_int_equal(ll_tls_shared_entries(), 0);
}

/* The entry lives while any user holds it; flushed once unused, it is built anew. */
static void test_release_and_flush(void **state)
{
    char ca[PATHLEN];
    ll_tls_ctx_config cfg = {.ca_file = path_in(dir, "ca.pem", ca)};
    ll_tls_shared *e1 = NULL, *e2 = NULL, *e3 = NULL;

    (void)state;
    ll_tls_shared_flush_idle();
    atomic_store(&builds, 0);
    SSL_CTX *c1 = acquire(&cfg, &e1);
    SSL_CTX *c2 = acquire(&cfg, &e2);
    drop(c1, e1);
    ll_tls_shared_flush_idle(); /* in use: stays */
    assert_int_equal(ll_tls_shared_entries(), 1);
    SSL *ssl = SSL_new(c2); /* the survivor's context is whole */
    assert_non_null(ssl);
    SSL_free(ssl);
    drop(c2, e2);
    ll_tls_shared_flush_idle();
    assert_int_equal(ll_tls_shared_entries(), 0);
    SSL_CTX *c3 = acquire(&cfg, &e3);
    assert_int_equal(atomic_load(&builds), 2);
    drop(c3, e3);
    ll_tls_shared_flush_idle();
    ll_tls_shared_release(NULL); /* nothing */
}

static void test_failed_build_enters_nothing(void **state)
{
    char ca[PATHLEN], err[ERRLEN] = "";
    ll_tls_ctx_config cfg = {.ca_file = path_in(dir, "missing.pem", ca)};
    ll_tls_shared *e = NULL;
    SSL_CTX *c = NULL;

    (void)state;
    ll_tls_shared_flush_idle();
    assert_int_equal(ll_tls_shared_acquire(&cfg, failing_build, &e, &c, err, sizeof err), SDK_ETLS);
    assert_non_null(strstr(err, "cannot load CA file"));
    assert_null(c);
    assert_int_equal(ll_tls_shared_entries(), 0);
    ll_tls_ctx_config server = {.server = true};
    assert_int_equal(ll_tls_shared_acquire(&server, count_build, &e, &c, err, sizeof err), SDK_EINVAL);
    assert_int_equal(ll_tls_shared_acquire(&cfg, NULL, &e, &c, err, sizeof err), SDK_EINVAL);
}

/* Rewritten (new content, a new inode) or only touched: either way a new context. */
static void test_changed_file_new_context(void **state)
{
    char ca[PATHLEN], src[PATHLEN];
    ll_tls_ctx_config cfg = {.ca_file = path_in(dir, "rotating.pem", ca)};
    ll_tls_shared *e1 = NULL, *e2 = NULL, *e3 = NULL;

    (void)state;
    ll_tls_shared_flush_idle();
    copy_file(path_in(dir, "ca.pem", src), ca);
    atomic_store(&builds, 0);
    SSL_CTX *c1 = acquire(&cfg, &e1);
    copy_file(path_in(other, "ca.pem", src), ca);
    SSL_CTX *c2 = acquire(&cfg, &e2);
    assert_ptr_not_equal(c1, c2);
    assert_int_equal(ll_tls_shared_entries(), 2); /* the old one until its user leaves */
    drop(c1, e1);                                 /* unused and stale: freed by the next lookup of these paths */
    struct timespec later[2] = {{.tv_sec = 1, .tv_nsec = 0}, {.tv_sec = 1, .tv_nsec = 0}};
    assert_int_equal(utimensat(AT_FDCWD, ca, later, 0), 0); /* same inode and size */
    SSL_CTX *c3 = acquire(&cfg, &e3);
    assert_ptr_not_equal(c3, c2);
    assert_int_equal(atomic_load(&builds), 3);
    assert_int_equal(ll_tls_shared_entries(), 2); /* c2's and c3's */
    drop(c2, e2);
    drop(c3, e3);
    ll_tls_shared_flush_idle();
    assert_int_equal(ll_tls_shared_entries(), 0);
}

/* ---- end to end through ll_tls_ctx -------------------------------------------------- */

/* A full handshake of a client made from cctx with a server made from sctx over a
 * socketpair: the client's result (0 or an sdk_err). */
static int handshake_result(ll_tls_ctx *cctx, ll_tls_ctx *sctx)
{
    int fd[2];
    ll_tls *c = NULL, *s = NULL;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0);
    assert_int_equal(ll_tls_new(cctx, fd[0], "localhost", &c, NULL, 0), 0);
    assert_int_equal(ll_tls_new(sctx, fd[1], NULL, &s, NULL, 0), 0);
    int crc = LL_TLS_WANT_READ, src = LL_TLS_WANT_READ;
    for (int i = 0; i < 10000 && (crc < 0 || src < 0); i++) {
        crc = crc < 0 ? ll_tls_handshake(c) : crc;
        src = src < 0 ? ll_tls_handshake(s) : src;
    }
    ll_tls_free(c);
    ll_tls_free(s);
    close(fd[0]);
    close(fd[1]);
    return crc;
}

static ll_tls_ctx *ctx_new(const ll_tls_ctx_config *cfg)
{
    char err[ERRLEN] = "";
    ll_tls_ctx *ctx = NULL;
    assert_int_equal(ll_tls_ctx_new(cfg, &ctx, err, sizeof err), 0);
    return ctx;
}

static void test_new_client_reads_replaced_ca(void **state)
{
    char ca[PATHLEN], src[PATHLEN], cert[PATHLEN], key[PATHLEN];
    ll_tls_ctx_config scfg = {
        .server = true, .cert_file = path_in(dir, "server.pem", cert), .key_file = path_in(dir, "server.key", key)};
    ll_tls_ctx_config ccfg = {.ca_file = path_in(dir, "deployed.pem", ca)};

    (void)state;
    ll_tls_shared_flush_idle();
    ll_tls_ctx *sctx = ctx_new(&scfg);
    copy_file(path_in(other, "ca.pem", src), ca); /* the wrong CA first */
    ll_tls_ctx *before = ctx_new(&ccfg);
    ll_tls_ctx *twin = ctx_new(&ccfg);
    assert_int_equal(ll_tls_shared_entries(), 1); /* two clients, one context */
    assert_int_equal(handshake_result(before, sctx), SDK_EPEERAUTH);
    assert_int_equal(handshake_result(twin, sctx), SDK_EPEERAUTH);
    copy_file(path_in(dir, "ca.pem", src), ca); /* fixed on disk */
    ll_tls_ctx *after = ctx_new(&ccfg);
    assert_int_equal(handshake_result(after, sctx), 0);
    assert_int_equal(handshake_result(before, sctx), SDK_EPEERAUTH); /* keeps what it read */
    ll_tls_ctx_free(before);
    ll_tls_ctx_free(twin);
    ll_tls_ctx_free(after);
    ll_tls_ctx_free(sctx);
    ll_tls_shared_flush_idle();
    assert_int_equal(ll_tls_shared_entries(), 0);
}

/* ---- threads ------------------------------------------------------------------------ */

#define THREADS 4
#define ROUNDS  200

typedef struct racer {
    const ll_tls_ctx_config *cfgs; /* two settings, taken in turn */
    int failures;
} racer;

/* No cmocka asserts off the main thread: count and let the main thread check. */
static void *race(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < ROUNDS; i++) {
        ll_tls_shared *e = NULL;
        SSL_CTX *c = NULL;
        if (ll_tls_shared_acquire(&r->cfgs[i % 2], count_build, &e, &c, NULL, 0) != 0) {
            r->failures++;
            continue;
        }
        SSL *ssl = SSL_new(c); /* use it while others release theirs */
        if (i % 16 == 0) {
            ll_tls_shared_flush_idle(); /* and free what nobody uses, under their feet */
        }
        r->failures += ssl == NULL;
        SSL_free(ssl);
        drop(c, e);
    }
    return NULL;
}

static void test_threads_acquire_and_release(void **state)
{
    char ca[PATHLEN], ca2[PATHLEN];
    ll_tls_ctx_config cfgs[2] = {{.ca_file = path_in(dir, "ca.pem", ca)}, {.ca_file = path_in(other, "ca.pem", ca2)}};
    racer r[THREADS];
    pthread_t th[THREADS];
    ll_tls_shared *held = NULL;

    (void)state;
    ll_tls_shared_flush_idle();
    SSL_CTX *kept = acquire(&cfgs[0], &held); /* one entry stays put throughout */
    for (int i = 0; i < THREADS; i++) {
        r[i] = (racer){.cfgs = cfgs};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].failures, 0);
    }
    assert_true(ll_tls_shared_entries() <= 2); /* the kept one, the other perhaps idle */
    drop(kept, held);
    ll_tls_shared_flush_idle();
    assert_int_equal(ll_tls_shared_entries(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_files_share_one_context),
        cmocka_unit_test(test_distinct_settings_distinct_contexts),
        cmocka_unit_test(test_release_and_flush),
        cmocka_unit_test(test_failed_build_enters_nothing),
        cmocka_unit_test(test_changed_file_new_context),
        cmocka_unit_test(test_new_client_reads_replaced_ca),
        cmocka_unit_test(test_threads_acquire_and_release),
    };
    return cmocka_run_group_tests(tests, setup_certs, teardown_certs);
}
