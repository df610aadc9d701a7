/*
 * Connection failures that a person must fix, and how clearly they are reported: a server
 * certificate from another CA, a name the certificate does not cover, mutual TLS without
 * and with a client certificate, and a port where nothing listens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void expect_detail(const char *detail, const char *needle)
{
    if (!strstr(detail, needle)) {
        fail_msg("expected \"%s\" in the detail, got \"%s\"", needle, detail);
    }
}

/* sdk_connect must fail with want; the thread's connect detail must contain needle. */
static void expect_connect_fails(const sdk_config *cfg, sdk_err want, const char *needle)
{
    sdk_client *c = (sdk_client *)1; /* must be reset to NULL */
    char detail[256] = "";
    sdk_err rc = sdk_connect(cfg, &c);
    sdk_err last = sdk_last_connect_error(detail, sizeof(detail));
    if (rc != want) {
        fail_msg("sdk_connect: want %s (\"%s\"), got %s (%s)", sdk_errname(want), needle, sdk_errname(rc), detail);
    }
    assert_null(c);
    assert_int_equal(last, want);
    expect_detail(detail, needle);
}

static void test_wrong_ca(void **state)
{
    ht_server *hs = *state;
    ht_certs other;
    sdk_config cfg;
    assert_int_equal(ht_certs_make(&other), 0);
    ht_client_config(&cfg, hs->port);
    cfg.ca_file = other.ca; /* a CA that did not sign the server's certificate */
    expect_connect_fails(&cfg, SDK_EPEERAUTH, "certificate verify failed");
    ht_certs_remove(&other);
}

static void test_hostname_mismatch(void **state)
{
    ht_server *hs = *state;
    sdk_config cfg;
    ht_client_config(&cfg, hs->port);
    cfg.servername = "wrong.example";
    expect_connect_fails(&cfg, SDK_EPEERAUTH, "certificate verify failed: hostname mismatch");

    /* An IP literal the certificate does not list fails the same way (127.0.0.2 is not in
     * the SAN; the connection itself still goes to 127.0.0.1). */
    cfg.servername = "127.0.0.2";
    expect_connect_fails(&cfg, SDK_EPEERAUTH, "certificate verify failed");
}

/* A host name that resolves, a CA file that does not exist: refused before any network. */
static void test_unreadable_ca(void **state)
{
    ht_server *hs = *state;
    sdk_config cfg;
    ht_client_config(&cfg, hs->port);
    cfg.ca_file = "/nonexistent/lifeline/ca.pem";
    expect_connect_fails(&cfg, SDK_ETLS, "/nonexistent/lifeline/ca.pem");
}

static void test_mtls_without_client_cert(void **state)
{
    (void)state;
    ht_server hs;
    sdk_server_config scfg;
    sdk_config cfg;
    ht_server_config(&scfg);
    scfg.client_ca_file = ht_certs_get()->ca;
    assert_int_equal(ht_server_start(&hs, &scfg, false), SDK_OK);
    ht_client_config(&cfg, hs.port);
    /* TLS 1.3: the client finishes its side of the handshake before the server checks for a
     * certificate, so the refusal arrives as the server's certificate_required alert while
     * the client waits for the welcome. It is a credentials problem: SDK_EPEERAUTH. */
    expect_connect_fails(&cfg, SDK_EPEERAUTH, "certificate required");

    /* A certificate from another CA is refused too (unknown CA alert). */
    ht_certs other;
    assert_int_equal(ht_certs_make(&other), 0);
    cfg.cert_file = other.client_cert;
    cfg.key_file = other.client_key;
    expect_connect_fails(&cfg, SDK_EPEERAUTH, "unknown ca");
    ht_certs_remove(&other);

    sdk_session_info *info = NULL;
    size_t n = 99;
    assert_int_equal(sdk_server_sessions(hs.srv, &info, &n), SDK_OK);
    assert_int_equal(n, 0); /* no session was opened for them */
    assert_null(info);
    ht_server_destroy(&hs);
}

static void test_mtls_with_client_cert(void **state)
{
    (void)state;
    ht_server hs;
    sdk_server_config scfg;
    sdk_config cfg;
    sdk_client *c = NULL;
    const ht_certs *certs = ht_certs_get();
    ht_server_config(&scfg);
    scfg.client_ca_file = certs->ca;
    assert_int_equal(ht_server_start(&hs, &scfg, false), SDK_OK);
    ht_client_config(&cfg, hs.port);
    cfg.cert_file = certs->client_cert;
    cfg.key_file = certs->client_key;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_int_equal(sdk_send_typed(c, "id.Check", "who", 3, HT_WAIT_MS), SDK_OK);

    sdk_message *m = NULL;
    assert_int_equal(sdk_server_recv(hs.srv, &m, HT_WAIT_MS), SDK_OK);
    assert_int_equal(m->len, 3);
    assert_memory_equal(m->data, "who", 3);
    assert_string_equal(m->type, "id.Check");
    assert_non_null(m->peer);
    assert_string_equal(m->peer, "CN=lifeline-dev-client");
    uint64_t session = m->session;
    sdk_message_free(m);

    sdk_session_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sdk_server_sessions(hs.srv, &info, &n), SDK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(info[0].id, session);
    assert_string_equal(info[0].peer_identity, "CN=lifeline-dev-client");
    free(info);

    /* And back, to be sure the session is whole. */
    assert_int_equal(sdk_server_send(hs.srv, session, "you", 3, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
    assert_memory_equal(m->data, "you", 3);
    sdk_message_free(m);
    sdk_destroy(c);
    ht_server_destroy(&hs);
}

static void test_client_cert_without_key(void **state)
{
    ht_server *hs = *state;
    sdk_config cfg;
    ht_client_config(&cfg, hs->port);
    cfg.cert_file = ht_certs_get()->client_cert;
    expect_connect_fails(&cfg, SDK_EINVAL, "cert_file and key_file");
    /* A key that is not the certificate's. */
    cfg.key_file = ht_certs_get()->server_key;
    expect_connect_fails(&cfg, SDK_ETLS, "key values mismatch");
}

static void test_connection_refused_is_fast(void **state)
{
    (void)state;
    int holder = -1;
    uint16_t port = ht_closed_port(&holder);
    sdk_config cfg;
    assert_int_not_equal(port, 0);
    ht_client_config(&cfg, port);
    cfg.connect_timeout_ms = 10000;
    cfg.retry_on_first_connect = false;
    uint64_t t0 = ht_now_ms();
    expect_connect_fails(&cfg, SDK_ECONNREFUSED, "Connection refused");
    uint64_t took = ht_now_ms() - t0;
    if (took >= 1000) {
        fail_msg("a refused connection took %llu ms to report", (unsigned long long)took);
    }
    close(holder);
}

/* ---- peers that are not Lifeline servers ---- */

/* A loopback listener; the kernel completes TCP handshakes into its backlog by itself. */
static int raw_listener(uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Answers the first connection's ClientHello with an HTTP error, then closes cleanly
 * (half-close and drain, so the client reads the reply rather than a reset). */
static void *http_peer_main(void *arg)
{
    int lfd = *(int *)arg;
    char buf[4096];
    static const char reply[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
        return NULL;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, HT_WAIT_MS) == 1) {
        (void)recv(fd, buf, sizeof(buf), 0);
    }
    (void)send(fd, reply, sizeof(reply) - 1, MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    while (poll(&p, 1, HT_WAIT_MS) == 1 && recv(fd, buf, sizeof(buf), 0) > 0) {
    }
    close(fd);
    return NULL;
}

static void test_not_a_tls_server(void **state)
{
    (void)state;
    uint16_t port = 0;
    int lfd = raw_listener(&port);
    pthread_t t;
    sdk_config cfg;
    assert_int_equal(pthread_create(&t, NULL, http_peer_main, &lfd), 0);
    ht_client_config(&cfg, port);
    expect_connect_fails(&cfg, SDK_ETLS, "wrong version number");
    pthread_join(t, NULL);
    close(lfd);
}

/* A peer that accepts TCP and never answers: the handshake is bounded by connect_timeout_ms. */
static void test_handshake_timeout(void **state)
{
    (void)state;
    uint16_t port = 0;
    int lfd = raw_listener(&port); /* never accepts: TCP completes, TLS never starts */
    sdk_config cfg;
    ht_client_config(&cfg, port);
    cfg.connect_timeout_ms = 300;
    uint64_t t0 = ht_now_ms();
    expect_connect_fails(&cfg, SDK_ETIMEDOUT, "TLS handshake");
    uint64_t took = ht_now_ms() - t0;
    if (took < 290 || took > 3000) {
        fail_msg("a 300 ms connect timeout took %llu ms", (unsigned long long)took);
    }
    close(lfd);
}

/* sdk_close while a handshake hangs (retry_on_first_connect) returns promptly. */
static void test_close_during_handshake(void **state)
{
    (void)state;
    uint16_t port = 0;
    int lfd = raw_listener(&port);
    sdk_config cfg;
    ht_events ev;
    sdk_client *c = NULL;
    ht_events_init(&ev);
    ht_client_config(&cfg, port);
    ht_events_attach(&ev, &cfg);
    cfg.retry_on_first_connect = true;
    cfg.connect_timeout_ms = 60000;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_true(ht_events_wait(&ev, SDK_EVENT_CONNECTING, 0, HT_WAIT_MS, NULL) >= 0);
    ht_sleep_ms(100); /* into the handshake wait */
    uint64_t t0 = ht_now_ms();
    assert_int_equal(sdk_close(c), SDK_OK);
    uint64_t took = ht_now_ms() - t0;
    if (took >= 1000) {
        fail_msg("sdk_close during a handshake took %llu ms", (unsigned long long)took);
    }
    assert_int_equal(sdk_get_state(c), SDK_STATE_CLOSED);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_CONNECTED), 0);
    sdk_destroy(c);
    ht_events_free(&ev);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wrong_ca, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_hostname_mismatch, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_unreadable_ca, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test(test_mtls_without_client_cert),
        cmocka_unit_test(test_mtls_with_client_cert),
        cmocka_unit_test_setup_teardown(test_client_cert_without_key, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test(test_connection_refused_is_fast),
        cmocka_unit_test(test_not_a_tls_server),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_close_during_handshake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
