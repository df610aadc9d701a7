/*
 * sdk_server_reload_tls against real clients: the server's certificate and key are replaced
 * by ones from another CA while a client streams. The stream stays exact, a client trusting
 * only the new CA now connects and one trusting only the old CA is refused, the old
 * client's ticket still resumes, and broken files keep the context in use, with the reason
 * reported (return, event, metric).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fixture {
    ht_certs old_ca, new_ca; /* two independent CAs, each with a server certificate */
    ht_certs live;           /* the server's files: a copy of old_ca's, then replaced */
    ht_server hs;
    ht_sevents sev;
} fixture;

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%s.tmp", to);
    FILE *out = fopen(tmp, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        assert_int_equal(fwrite(buf, 1, n, out), n);
    }
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(rename(tmp, to), 0); /* as an operator's deploy does: whole files */
}

static void write_file(const char *path, const char *text)
{
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fputs(text, out);
    assert_int_equal(fclose(out), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f || ht_certs_make(&f->old_ca) != 0 || ht_certs_make(&f->new_ca) != 0 || ht_certs_make(&f->live) != 0) {
        return -1;
    }
    copy_file(f->old_ca.server_cert, f->live.server_cert);
    copy_file(f->old_ca.server_key, f->live.server_key);
    ht_sevents_init(&f->sev);
    sdk_server_config cfg;
    ht_server_config(&cfg);
    cfg.cert_file = f->live.server_cert;
    cfg.key_file = f->live.server_key;
    ht_sevents_attach(&f->sev, &cfg);
    if (ht_server_start(&f->hs, &cfg, true) != SDK_OK) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ht_server_destroy(&f->hs);
    ht_sevents_free(&f->sev);
    ht_certs_remove(&f->old_ca);
    ht_certs_remove(&f->new_ca);
    ht_certs_remove(&f->live);
    free(f);
    return 0;
}

static sdk_err connect_trusting(const fixture *f, const ht_certs *ca, sdk_client **out)
{
    sdk_config cfg;
    ht_client_config(&cfg, f->hs.port);
    cfg.ca_file = ca->ca;
    return sdk_connect(&cfg, out);
}

/* Send count numbered messages from first on, and check their echoes come back in order. */
static void stream(sdk_client *c, int first, int count)
{
    char msg[32];
    for (int i = first; i < first + count; i++) {
        int n = snprintf(msg, sizeof(msg), "n%06d", i);
        assert_int_equal(sdk_send(c, msg, (size_t)n, HT_WAIT_MS), SDK_OK);
    }
    for (int i = first; i < first + count; i++) {
        sdk_message *m = NULL;
        assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
        int n = snprintf(msg, sizeof(msg), "n%06d", i);
        assert_int_equal(m->len, (size_t)n);
        assert_memory_equal(m->data, msg, (size_t)n);
        sdk_message_free(m);
    }
}

static double reloads(const fixture *f, const char *result)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sdk_server_metrics(f->hs.srv, &text, &len), SDK_OK);
    char sample[96];
    snprintf(sample, sizeof(sample), "lifeline_tls_reloads_total{result=\"%s\"} ", result);
    const char *at = strstr(text, sample);
    double v = at ? strtod(at + strlen(sample), NULL) : -1;
    sdk_metrics_free(text);
    return v;
}

static void test_new_ca_mid_stream(void **state)
{
    fixture *f = *state;
    sdk_client *streaming = NULL;
    assert_int_equal(connect_trusting(f, &f->old_ca, &streaming), SDK_OK);
    stream(streaming, 0, 200);
    copy_file(f->new_ca.server_cert, f->live.server_cert);
    copy_file(f->new_ca.server_key, f->live.server_key);
    char why[256] = "";
    assert_int_equal(sdk_server_reload_tls(f->hs.srv, why, sizeof(why)), SDK_OK);
    assert_non_null(strstr(why, "reloaded"));
    ht_sevent ev;
    assert_true(ht_sevents_wait(&f->sev, SDK_SERVER_TLS_RELOADED, 0, 0, HT_WAIT_MS, &ev) >= 0);
    assert_non_null(strstr(ev.detail, f->live.server_cert));
    assert_true(reloads(f, "success") == 1);
    stream(streaming, 200, 200); /* the established connection carries on */

    sdk_client *fresh = NULL, *stale = NULL;
    assert_int_equal(connect_trusting(f, &f->new_ca, &fresh), SDK_OK);
    stream(fresh, 0, 10);
    assert_int_equal(connect_trusting(f, &f->old_ca, &stale), SDK_EPEERAUTH);

    /* A ticket issued before the reload still resumes, without a certificate to check. */
    sdk_session_info *info = NULL;
    size_t n = 0;
    sdk_stats st;
    assert_int_equal(sdk_get_stats(streaming, &st), SDK_OK);
    assert_int_equal(sdk_server_sessions(f->hs.srv, &info, &n), SDK_OK);
    for (size_t i = 0; i < n; i++) {
        if (info[i].received == 400) {
            assert_int_equal(sdk_server_close_session(f->hs.srv, info[i].id, "move", true), SDK_OK);
        }
    }
    sdk_sessions_free(info);
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    sdk_stats after = st;
    while (after.connects == st.connects && ht_now_ms() < deadline) {
        ht_sleep_ms(10);
        assert_int_equal(sdk_get_stats(streaming, &after), SDK_OK);
    }
    assert_int_equal(after.connects, st.connects + 1);
    assert_int_equal(after.handshakes_resumed, st.handshakes_resumed + 1);
    stream(streaming, 400, 100);
    sdk_destroy(streaming);
    sdk_destroy(fresh);
}

/* A reload that must fail for why_part; the context in use (the new CA's) stays. */
static void expect_failure(fixture *f, const char *why_part, double failures)
{
    char why[256] = "";
    pthread_mutex_lock(&f->sev.mu);
    size_t from = f->sev.n; /* only events after this reload */
    pthread_mutex_unlock(&f->sev.mu);
    assert_int_equal(sdk_server_reload_tls(f->hs.srv, why, sizeof(why)), SDK_ETLS);
    if (!strstr(why, why_part)) {
        fail_msg("reload failed with \"%s\", wanted \"%s\" in it", why, why_part);
    }
    ht_sevent ev;
    assert_true(ht_sevents_wait(&f->sev, SDK_SERVER_TLS_RELOAD_FAILED, 0, from, HT_WAIT_MS, &ev) >= 0);
    assert_string_equal(ev.detail, why);
    assert_true(reloads(f, "failure") == failures);
    sdk_client *c = NULL;
    assert_int_equal(connect_trusting(f, &f->new_ca, &c), SDK_OK);
    stream(c, 0, 5);
    sdk_destroy(c);
}

static void test_broken_files_keep_the_context(void **state)
{
    fixture *f = *state;
    copy_file(f->new_ca.server_cert, f->live.server_cert);
    copy_file(f->new_ca.server_key, f->live.server_key);
    assert_int_equal(sdk_server_reload_tls(f->hs.srv, NULL, 0), SDK_OK);
    sdk_client *streaming = NULL;
    assert_int_equal(connect_trusting(f, &f->new_ca, &streaming), SDK_OK);
    stream(streaming, 0, 50);

    copy_file(f->old_ca.server_key, f->live.server_key); /* another certificate's key */
    expect_failure(f, "mismatch", 1);
    write_file(f->live.server_key, "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n");
    expect_failure(f, "private key", 2);
    assert_int_equal(unlink(f->live.server_cert), 0);
    expect_failure(f, "certificate", 3);
    stream(streaming, 50, 50);
    assert_true(reloads(f, "success") == 1);
    sdk_destroy(streaming);
}

static void test_after_close(void **state)
{
    fixture *f = *state;
    ht_server_stop(&f->hs);
    char why[256] = "";
    assert_int_equal(sdk_server_reload_tls(f->hs.srv, why, sizeof(why)), SDK_ECLOSED);
    assert_string_equal(why, "the server is stopping");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_ca_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_files_keep_the_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
