/*
 * The embeddable server's application API against real clients: the session list, closing
 * a session, sending to one that does not exist, and the session event callback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct fixture {
    ht_server hs;
    ht_sevents sev;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    sdk_server_config scfg;
    if (!f) {
        return -1;
    }
    ht_sevents_init(&f->sev);
    ht_server_config(&scfg);
    ht_sevents_attach(&f->sev, &scfg);
    if (ht_server_start(&f->hs, &scfg, true) != SDK_OK) {
        ht_sevents_free(&f->sev);
        free(f);
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
    free(f);
    return 0;
}

static uint64_t wall_ms(void)
{
    return (uint64_t)time(NULL) * 1000u;
}

static sdk_client *connect_to(const ht_server *hs, ht_events *ev)
{
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_client_config(&cfg, hs->port);
    if (ev) {
        ht_events_attach(ev, &cfg);
    }
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    return c;
}

/* Round trip n messages, so the server has certainly accepted them. */
static void echo_n(sdk_client *c, int n)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(sdk_send(c, &i, sizeof(i), HT_WAIT_MS), SDK_OK);
    }
    for (int i = 0; i < n; i++) {
        sdk_message *m = NULL;
        assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
        assert_int_equal(m->len, sizeof(i));
        assert_memory_equal(m->data, &i, sizeof(i));
        sdk_message_free(m);
    }
}

static void test_sessions_list(void **state)
{
    fixture *f = *state;
    sdk_session_info *info = (sdk_session_info *)1;
    size_t n = 99;
    assert_int_equal(sdk_server_sessions(f->hs.srv, &info, &n), SDK_OK);
    assert_int_equal(n, 0);
    assert_null(info);

    uint64_t wall_before = wall_ms();
    sdk_client *c = connect_to(&f->hs, NULL);
    echo_n(c, 7);
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK); /* acknowledged: nothing queued server side */
    ht_sevent opened;
    assert_true(ht_sevents_wait(&f->sev, SDK_SESSION_OPENED, 0, 0, HT_WAIT_MS, &opened) >= 0);

    assert_int_equal(sdk_server_sessions(f->hs.srv, &info, &n), SDK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(info[0].id, opened.session);
    assert_int_equal(info[0].state, SDK_SESSION_STATE_CONNECTED);
    assert_true(strncmp(info[0].peer_addr, "127.0.0.1:", 10) == 0);
    assert_string_equal(info[0].peer_addr, opened.peer_addr);
    assert_string_equal(info[0].peer_identity, "");
    assert_int_equal(info[0].received, 7);
    assert_int_equal(info[0].connections, 1);
    assert_int_equal(info[0].last_cause, SDK_CAUSE_NONE);
    assert_int_equal(info[0].queued, 0);
    /* Wall clock, ms since the epoch (second resolution on our side, hence the slack). */
    assert_true(info[0].connected_since_ms + 1000 >= wall_before);
    assert_true(info[0].connected_since_ms <= wall_ms() + 1000);
    assert_true(info[0].last_heard_ms + 1000 >= info[0].connected_since_ms);
    assert_true(info[0].last_heard_ms <= wall_ms() + 1000);
    free(info);

    /* A second client: two sessions, distinct ids. */
    sdk_client *c2 = connect_to(&f->hs, NULL);
    echo_n(c2, 2);
    assert_int_equal(sdk_server_sessions(f->hs.srv, &info, &n), SDK_OK);
    assert_int_equal(n, 2);
    assert_int_not_equal(info[0].id, info[1].id);
    size_t mine = info[0].id == opened.session ? 0 : 1;
    assert_int_equal(info[mine].received, 7);
    assert_int_equal(info[1 - mine].received, 2);
    free(info);
    sdk_destroy(c2);
    sdk_destroy(c);
}

static void test_close_session_rejects_client(void **state)
{
    fixture *f = *state;
    ht_events ev;
    ht_events_init(&ev);
    sdk_client *c = connect_to(&f->hs, &ev);
    echo_n(c, 1);
    ht_sevent opened;
    assert_true(ht_sevents_wait(&f->sev, SDK_SESSION_OPENED, 0, 0, HT_WAIT_MS, &opened) >= 0);

    assert_int_equal(sdk_server_close_session(f->hs.srv, opened.session, "banned for testing", false), SDK_OK);
    assert_true(ht_wait_state(c, SDK_STATE_CLOSED, HT_WAIT_MS));
    char detail[256];
    assert_int_equal(sdk_last_error(c, detail, sizeof(detail)), SDK_EREJECTED);
    if (!strstr(detail, "banned for testing")) {
        fail_msg("sdk_last_error does not give the server's reason: \"%s\"", detail);
    }
    ht_event e;
    assert_true(ht_events_wait(&ev, SDK_EVENT_CLOSED, 0, HT_WAIT_MS, &e) >= 0);
    assert_int_equal(e.error, SDK_EREJECTED);
    /* It did not try again. */
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_CONNECTING), 1);
    assert_int_equal(sdk_send(c, "x", 1, 0), SDK_ECLOSED);

    ht_sevent closed;
    assert_true(ht_sevents_wait(&f->sev, SDK_SESSION_CLOSED, opened.session, 0, HT_WAIT_MS, &closed) >= 0);
    assert_int_equal(closed.cause, SDK_CAUSE_CLOSED_BY_APP);
    /* Gone from the server: list, send and close all say so. */
    sdk_session_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sdk_server_sessions(f->hs.srv, &info, &n), SDK_OK);
    assert_int_equal(n, 0);
    free(info);
    assert_int_equal(sdk_server_send(f->hs.srv, opened.session, "x", 1, 0), SDK_ENOTFOUND);
    assert_int_equal(sdk_server_close_session(f->hs.srv, opened.session, "again", false), SDK_ENOTFOUND);
    sdk_destroy(c);
    ht_events_free(&ev);
}

/* reconnect_allowed: the client comes back at once, in a new session. */
static void test_close_session_allows_reconnect(void **state)
{
    fixture *f = *state;
    ht_events ev;
    ht_events_init(&ev);
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_client_config(&cfg, f->hs.port);
    ht_events_attach(&ev, &cfg);
    cfg.reconnect_min_ms = 10;
    cfg.reconnect_max_ms = 50;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    echo_n(c, 1);
    ht_sevent opened;
    assert_true(ht_sevents_wait(&f->sev, SDK_SESSION_OPENED, 0, 0, HT_WAIT_MS, &opened) >= 0);
    assert_int_equal(sdk_server_close_session(f->hs.srv, opened.session, "please come back", true), SDK_OK);

    ht_event e;
    int at = ht_events_wait(&ev, SDK_EVENT_DISCONNECTED, 0, HT_WAIT_MS, &e);
    assert_true(at >= 0);
    assert_int_equal(e.error, SDK_EDISCONNECTED);
    assert_non_null(strstr(e.detail, "please come back"));
    /* The server forgot the session, so the client opens a new one. */
    assert_true(ht_events_wait(&ev, SDK_EVENT_SESSION_LOST, (size_t)at, HT_WAIT_MS, NULL) >= 0);
    assert_true(ht_events_wait(&ev, SDK_EVENT_CONNECTED, (size_t)at, HT_WAIT_MS, &e) >= 0);
    assert_false(e.resumed);
    ht_sevent reopened;
    assert_true(ht_sevents_wait(&f->sev, SDK_SESSION_OPENED, 0, 1, HT_WAIT_MS, &reopened) >= 0);
    assert_int_not_equal(reopened.session, opened.session);
    echo_n(c, 3);
    /* Connected again: sdk_last_error may still describe the lost connection, but its code and
     * its text must agree ("" goes with SDK_OK). Checked after cleanup, so that a failure
     * leaves no client running with a recorder on this stack. */
    char detail[256];
    sdk_err last = sdk_last_error(c, detail, sizeof(detail));
    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.sessions_lost, 1);
    sdk_destroy(c);
    ht_events_free(&ev);
    if ((last == SDK_OK) != (detail[0] == '\0')) {
        fail_msg("sdk_last_error after reconnecting: code %s with detail \"%s\"", sdk_errname(last), detail);
    }
}

static void test_send_to_unknown_session(void **state)
{
    fixture *f = *state;
    sdk_message *m = NULL;
    assert_int_equal(sdk_server_send(f->hs.srv, 12345, "x", 1, 0), SDK_ENOTFOUND);
    assert_int_equal(sdk_server_send(f->hs.srv, 0, "x", 1, 100), SDK_ENOTFOUND);
    assert_int_equal(sdk_server_send_typed(f->hs.srv, 12345, "t", "x", 1, 0), SDK_ENOTFOUND);
    assert_int_equal(sdk_server_close_session(f->hs.srv, 12345, "no", false), SDK_ENOTFOUND);
    /* Argument checks. */
    assert_int_equal(sdk_server_send(NULL, 1, "x", 1, 0), SDK_EINVAL);
    assert_int_equal(sdk_server_send(f->hs.srv, 1, NULL, 1, 0), SDK_EINVAL);
    assert_int_equal(sdk_server_recv(NULL, &m, 0), SDK_EINVAL);
    assert_int_equal(sdk_server_recv(f->hs.srv, NULL, 0), SDK_EINVAL);
    assert_int_equal(sdk_server_close_session(NULL, 1, "x", false), SDK_EINVAL);
    assert_int_equal(sdk_server_sessions(NULL, NULL, NULL), SDK_EINVAL);
    assert_int_equal(sdk_server_stop(NULL), SDK_EINVAL);
    assert_int_equal(sdk_server_port(NULL), 0);
    sdk_server_destroy(NULL);
    uint8_t *big = calloc(1, 16u * 1024 * 1024);
    assert_non_null(big);
    assert_int_equal(sdk_server_send(f->hs.srv, 12345, big, 16u * 1024 * 1024, 0), SDK_ETOOBIG);
    free(big);
}

/* manual_ack: taking a message acknowledges nothing; sdk_server_ack (or a reply carrying
 * ack_seq) does, cumulatively, and only up to what was received. */
static void test_manual_ack(void **state)
{
    fixture *f = *state;
    assert_int_equal(sdk_server_ack(f->hs.srv, 1, 1), SDK_EINVAL); /* this server acks on its own */
    assert_int_equal(sdk_server_reply(f->hs.srv, 1, 1, NULL, "x", 1, 0), SDK_EINVAL);
    sdk_server_config cfg;
    ht_server_config(&cfg);
    cfg.manual_ack = true;
    ht_server hs = {0};
    assert_int_equal(ht_server_start(&hs, &cfg, false), SDK_OK);
    sdk_config cc;
    ht_client_config(&cc, hs.port);
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cc, &c), SDK_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sdk_send(c, "abc", 3, HT_WAIT_MS), SDK_OK);
    }
    sdk_message *m[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sdk_server_recv(hs.srv, &m[i], HT_WAIT_MS), SDK_OK);
        assert_int_equal(m[i]->seq, (uint64_t)i + 1);
    }
    uint64_t session = m[0]->session;
    assert_int_equal(sdk_flush(c, 300), SDK_ETIMEDOUT);               /* taken, not acknowledged */
    assert_int_equal(sdk_server_ack(hs.srv, session, 4), SDK_EINVAL); /* never received */
    assert_int_equal(sdk_server_ack(hs.srv, 12345, 1), SDK_ENOTFOUND);
    assert_int_equal(sdk_server_ack(hs.srv, session, 2), SDK_OK);
    assert_int_equal(sdk_flush(c, 300), SDK_ETIMEDOUT); /* the third is still out */
    assert_int_equal(sdk_server_reply(hs.srv, session, 3, NULL, "ok", 2, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_server_ack(hs.srv, session, 1), SDK_OK); /* older: changes nothing */
    sdk_message *reply = NULL;
    assert_int_equal(sdk_recv(c, &reply, HT_WAIT_MS), SDK_OK);
    assert_int_equal(reply->len, 2);
    sdk_message_free(reply);
    for (int i = 0; i < 3; i++) {
        sdk_message_free(m[i]);
    }
    sdk_close(c);
    sdk_destroy(c);
    ht_server_destroy(&hs);
}

static void test_server_start_failures(void **state)
{
    (void)state;
    sdk_server_config scfg;
    sdk_server *srv = (sdk_server *)1;
    char detail[256];
    assert_int_equal(sdk_server_start(NULL, &srv), SDK_EINVAL);
    ht_server_config(&scfg);
    assert_int_equal(sdk_server_start(&scfg, NULL), SDK_EINVAL);
    scfg.cert_file = NULL;
    assert_int_equal(sdk_server_start(&scfg, &srv), SDK_EINVAL);
    assert_null(srv);
    ht_server_config(&scfg);
    scfg.cert_file = "/nonexistent/lifeline/server.pem";
    assert_int_equal(sdk_server_start(&scfg, &srv), SDK_ETLS);
    assert_int_equal(sdk_last_connect_error(detail, sizeof(detail)), SDK_ETLS);
    assert_non_null(strstr(detail, "/nonexistent/lifeline/server.pem"));
    ht_server_config(&scfg);
    scfg.listen = "no-port-here";
    assert_int_equal(sdk_server_start(&scfg, &srv), SDK_EINVAL);

    /* The port of a running server is taken. */
    ht_server hs;
    char listen[64];
    assert_int_equal(ht_server_start(&hs, NULL, false), SDK_OK);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)hs.port);
    ht_server_config(&scfg);
    scfg.listen = listen;
    assert_int_equal(sdk_server_start(&scfg, &srv), SDK_ELISTEN);
    assert_null(srv);
    assert_int_equal(sdk_last_connect_error(detail, sizeof(detail)), SDK_ELISTEN);
    assert_non_null(strstr(detail, "Address already in use"));
    ht_server_destroy(&hs);
}

static size_t count_sevents(ht_sevents *e, sdk_session_event_type type, uint64_t session)
{
    size_t n = 0;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n; i++) {
        n += e->ev[i].type == type && e->ev[i].session == session;
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

static void test_session_events_on_client_close(void **state)
{
    fixture *f = *state;
    sdk_client *c = connect_to(&f->hs, NULL);
    echo_n(c, 1);
    ht_sevent opened;
    assert_true(ht_sevents_wait(&f->sev, SDK_SESSION_OPENED, 0, 0, HT_WAIT_MS, &opened) >= 0);
    assert_int_not_equal(opened.session, 0);
    assert_int_equal(opened.cause, SDK_CAUSE_NONE);
    assert_true(strncmp(opened.peer_addr, "127.0.0.1:", 10) == 0);

    assert_int_equal(sdk_close(c), SDK_OK);
    /* The client said goodbye and will not come back: the session ends for good, a clean
     * close, and is then detached from its connection or simply gone. */
    ht_sevent closed;
    assert_true(ht_sevents_wait(&f->sev, SDK_SESSION_CLOSED, opened.session, 0, HT_WAIT_MS, &closed) >= 0);
    assert_int_equal(closed.cause, SDK_CAUSE_CLEAN_CLOSE);
    assert_string_equal(closed.peer_addr, opened.peer_addr);
    ht_sleep_ms(100); /* anything that would follow wrongly has time to show */
    assert_int_equal(count_sevents(&f->sev, SDK_SESSION_OPENED, opened.session), 1);
    assert_int_equal(count_sevents(&f->sev, SDK_SESSION_CLOSED, opened.session), 1);
    assert_int_equal(count_sevents(&f->sev, SDK_SESSION_EXPIRED, opened.session), 0);
    assert_int_equal(count_sevents(&f->sev, SDK_SESSION_RESUMED, opened.session), 0);
    sdk_session_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sdk_server_sessions(f->hs.srv, &info, &n), SDK_OK);
    assert_int_equal(n, 0);
    free(info);
    sdk_destroy(c);
}

/* ---- clients that vanish ---- */

/* Start build/bin/lifeline-cat against port, its stdin a pipe we hold (so it stays up).
 * Returns its pid; *stdin_fd is the write end. */
static pid_t spawn_cat(uint16_t port, int *stdin_fd)
{
    const char *bin_dir = getenv("LIFELINE_BIN");
    char bin[512], connect[64];
    int fds[2];
    snprintf(bin, sizeof(bin), "%s/lifeline-cat", bin_dir && *bin_dir ? bin_dir : "build/bin");
    snprintf(connect, sizeof(connect), "127.0.0.1:%u", (unsigned)port);
    const char *argv[] = {bin,       "--connect",      connect, "--ca", ht_certs_get()->ca,
                          "--quiet", "--heartbeat-ms", "60000", NULL}; /* no pings: an idle, quiet socket */
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], STDIN_FILENO);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    assert_int_equal(rc, 0);
    *stdin_fd = fds[1];
    return pid;
}

/* A client process killed outright: its session is detached (kept for a resume that never
 * comes), still accepts messages, and expires after session_ttl_ms. */
static void test_vanished_client_session_expires(void **state)
{
    (void)state;
    ht_server hs;
    ht_sevents sev;
    sdk_server_config scfg;
    ht_sevents_init(&sev);
    ht_server_config(&scfg);
    scfg.session_ttl_ms = 500;
    ht_sevents_attach(&sev, &scfg);
    assert_int_equal(ht_server_start(&hs, &scfg, false), SDK_OK);

    int in = -1;
    pid_t pid = spawn_cat(hs.port, &in);
    ht_sevent opened;
    int at = ht_sevents_wait(&sev, SDK_SESSION_OPENED, 0, 0, HT_WAIT_MS, &opened);
    ht_sleep_ms(100); /* let the handshake's last records (session tickets) be read */
    uint64_t t_kill = ht_now_ms();
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(in);
    assert_true(at >= 0);

    /* The kernel closed its socket, with a FIN or (if bytes were unread) a reset, but no
     * close frame: detached at once, long before any heartbeat timeout. */
    ht_sevent detached;
    int det = ht_sevents_wait(&sev, SDK_SESSION_DETACHED, opened.session, 0, HT_WAIT_MS, &detached);
    uint64_t t_detached = ht_now_ms();
    assert_true(det >= 0);
    assert_true(t_detached - t_kill < 1000);
    if (detached.cause != SDK_CAUSE_CLEAN_CLOSE && detached.cause != SDK_CAUSE_RESET) {
        fail_msg("a client process killed outright: cause %s", sdk_cause_name(detached.cause));
    }
    if (getenv("LIFELINE_TEST_VERBOSE")) {
        printf("killed client: detached with cause %s\n", sdk_cause_name(detached.cause));
    }
    sdk_session_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sdk_server_sessions(hs.srv, &info, &n), SDK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(info[0].id, opened.session);
    assert_int_equal(info[0].state, SDK_SESSION_STATE_DETACHED);
    assert_int_equal(info[0].last_cause, detached.cause);
    free(info);
    /* Detached is not gone: messages queue for a resume. */
    assert_int_equal(sdk_server_send(hs.srv, opened.session, "later", 5, 0), SDK_OK);

    ht_sevent expired;
    assert_true(ht_sevents_wait(&sev, SDK_SESSION_EXPIRED, opened.session, 0, HT_WAIT_MS, &expired) >= 0);
    uint64_t ttl_took = ht_now_ms() - t_detached;
    assert_int_equal(expired.cause, SDK_CAUSE_EXPIRED);
    if (ttl_took < 400 || ttl_took > 3000) {
        fail_msg("session_ttl_ms 500: expired %llu ms after detaching", (unsigned long long)ttl_took);
    }
    assert_int_equal(sdk_server_sessions(hs.srv, &info, &n), SDK_OK);
    assert_int_equal(n, 0);
    free(info);
    assert_int_equal(sdk_server_send(hs.srv, opened.session, "too late", 8, 0), SDK_ENOTFOUND);
    ht_server_destroy(&hs);
    ht_sevents_free(&sev);
}

/* A TCP client that never starts TLS is dropped after handshake_timeout_ms. */
static void test_silent_connection_dropped(void **state)
{
    (void)state;
    ht_server hs;
    sdk_server_config scfg;
    ht_server_config(&scfg);
    scfg.handshake_timeout_ms = 200;
    assert_int_equal(ht_server_start(&hs, &scfg, false), SDK_OK);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(hs.port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    uint64_t t0 = ht_now_ms();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char buf[64];
    int ready = poll(&p, 1, HT_WAIT_MS);
    ssize_t got = ready == 1 ? recv(fd, buf, sizeof(buf), 0) : -2;
    uint64_t took = ht_now_ms() - t0;
    close(fd);
    ht_server_destroy(&hs);
    assert_int_equal(ready, 1);
    assert_true(got <= 0); /* EOF or reset, never data: it never spoke TLS */
    if (took < 190 || took > 3000) {
        fail_msg("handshake_timeout_ms 200: dropped after %llu ms", (unsigned long long)took);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sessions_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_session_rejects_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_session_allows_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_to_unknown_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manual_ack, setup, teardown),
        cmocka_unit_test(test_server_start_failures),
        cmocka_unit_test_setup_teardown(test_session_events_on_client_close, setup, teardown),
        cmocka_unit_test(test_vanished_client_session_expires),
        cmocka_unit_test(test_silent_connection_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
