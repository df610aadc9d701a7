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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

    sdk_client *c = connect_to(&f->hs, NULL);
    uint64_t t_before = 0;
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
    assert_true(info[0].connected_since_ms > t_before);
    assert_true(info[0].last_heard_ms >= info[0].connected_since_ms - 1000);
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

    assert_int_equal(sdk_server_close_session(f->hs.srv, opened.session, "banned for testing", false),
                     SDK_OK);
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
    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.sessions_lost, 1);
    sdk_destroy(c);
    ht_events_free(&ev);
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
    assert_int_equal(sdk_server_start(&scfg, &srv), SDK_ECONNECT);
    assert_null(srv);
    assert_int_equal(sdk_last_connect_error(detail, sizeof(detail)), SDK_ECONNECT);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sessions_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_session_rejects_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_session_allows_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_to_unknown_session, setup, teardown),
        cmocka_unit_test(test_server_start_failures),
        cmocka_unit_test_setup_teardown(test_session_events_on_client_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
