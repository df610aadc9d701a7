/* Unit tests for config.c and the public configuration rules: the size-first layouts
 * (older, newer, garbage sizes), sdk_parse_address, config_init, the name functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "ll.h"

#include "lifeline/server.h"

#include <string.h>

/* A layout with a "later" field, to play an older program (size without b). */
typedef struct toy {
    size_t size;
    int a;
    int b;
} toy;

static const toy toy_defaults = {.size = sizeof(toy), .a = 1, .b = 2};
static const ll_config_layout toy_layout = {
    .name = "toy", .defaults = &toy_defaults, .known = sizeof(toy), .min = offsetof(toy, b)};

static void test_init_sizes(void **state)
{
    (void)state;
    toy t = {0};
    assert_int_equal(ll_config_init(&toy_layout, &t, sizeof(t)), 0);
    assert_int_equal(t.size, sizeof(toy));
    assert_int_equal(t.a, 1);
    assert_int_equal(t.b, 2);
    /* An older program's struct: only its bytes are written. */
    toy older = {.b = 99};
    assert_int_equal(ll_config_init(&toy_layout, &older, offsetof(toy, b)), 0);
    assert_int_equal(older.size, offsetof(toy, b));
    assert_int_equal(older.b, 99);
    /* A newer program's struct: what this library does not know is zeroed. */
    unsigned char newer[sizeof(toy) + 16];
    memset(newer, 0xab, sizeof(newer));
    assert_int_equal(ll_config_init(&toy_layout, newer, sizeof(newer)), 0);
    for (size_t i = sizeof(toy); i < sizeof(newer); i++) {
        assert_int_equal(newer[i], 0);
    }
    assert_int_equal(ll_config_init(&toy_layout, &t, sizeof(size_t)), SDK_EINVAL);
    assert_int_equal(ll_config_init(&toy_layout, NULL, sizeof(t)), SDK_EINVAL);
}

static void test_take_sizes(void **state)
{
    (void)state;
    char why[256] = "";
    toy dst = toy_defaults;
    toy older = {.size = offsetof(toy, b), .a = 7, .b = 1234}; /* b: padding to that program */
    assert_int_equal(ll_config_take(&toy_layout, &dst, &older, why, sizeof(why)), 0);
    assert_int_equal(dst.a, 7);
    assert_int_equal(dst.b, 2); /* the default, not the older program's bytes */
    assert_int_equal(dst.size, sizeof(toy));

    struct {
        toy t;
        uint64_t later;
    } newer = {{.size = sizeof(newer), .a = 5, .b = 6}, 0};
    dst = toy_defaults;
    assert_int_equal(ll_config_take(&toy_layout, &dst, &newer, why, sizeof(why)), 0);
    assert_int_equal(dst.b, 6);
    newer.later = 1; /* a field this library does not know, set: refused, never ignored */
    assert_int_equal(ll_config_take(&toy_layout, &dst, &newer, why, sizeof(why)), SDK_EINVAL);
    assert_non_null(strstr(why, "newer"));

    toy garbage = {.size = 3};
    assert_int_equal(ll_config_take(&toy_layout, &dst, &garbage, why, sizeof(why)), SDK_EINVAL);
    assert_non_null(strstr(why, "toy_init"));
    /* A pointer where the size belongs (a 0.1 struct given to a 0.2 entry point): refused
     * without reading past the struct (ASan would see it). */
    toy pointer = {.size = (size_t)(uintptr_t)&garbage};
    assert_int_equal(ll_config_take(&toy_layout, &dst, &pointer, why, sizeof(why)), SDK_EINVAL);
    assert_non_null(strstr(why, "toy_init"));
}

static void test_connect_refuses_bad_sizes(void **state)
{
    (void)state;
    char detail[256];
    sdk_client *c = (sdk_client *)1;
    sdk_config cfg;
    sdk_config_init(&cfg);
    cfg.size = 8; /* not a layout: a struct that never went through sdk_config_init */
    assert_int_equal(sdk_connect(&cfg, &c), SDK_EINVAL);
    assert_null(c);
    assert_int_equal(sdk_last_connect_error(detail, sizeof(detail)), SDK_EINVAL);
    assert_non_null(strstr(detail, "sdk_config.size is 8"));

    sdk_config_init(&cfg);
    cfg.address = "127.0.0.1:1";
    cfg.host = "127.0.0.1";
    assert_int_equal(sdk_connect(&cfg, &c), SDK_EINVAL);
    sdk_last_connect_error(detail, sizeof(detail));
    assert_non_null(strstr(detail, "not both"));
    cfg.host = NULL;
    cfg.address = "::1:7443";
    assert_int_equal(sdk_connect(&cfg, &c), SDK_EINVAL);
    sdk_last_connect_error(detail, sizeof(detail));
    assert_non_null(strstr(detail, "bad address"));
}

static void test_server_start_refuses_newer(void **state)
{
    (void)state;
    struct {
        sdk_server_config cfg;
        int later;
    } newer;
    assert_int_equal(sdk_server_config_init_sized(&newer.cfg, sizeof(newer)), SDK_OK);
    assert_int_equal(newer.later, 0);
    assert_int_equal(newer.cfg.size, sizeof(newer));
    newer.later = 3;
    sdk_server *srv = NULL;
    char detail[256];
    assert_int_equal(sdk_server_start(&newer.cfg, &srv), SDK_EINVAL);
    assert_int_equal(sdk_server_last_start_error(detail, sizeof(detail)), SDK_EINVAL);
    assert_non_null(strstr(detail, "upgrade liblifeline"));
    assert_int_equal(sdk_server_config_init_sized(&newer.cfg, 4), SDK_EINVAL);
}

static void test_parse_address(void **state)
{
    (void)state;
    char host[64];
    uint16_t port = 0;
    assert_int_equal(sdk_parse_address("[::1]:7443", host, sizeof(host), &port), SDK_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7443);
    assert_int_equal(sdk_parse_address("example.com:0", host, sizeof(host), &port), SDK_OK);
    assert_int_equal(port, 0);
    assert_int_equal(sdk_parse_address("::1:7443", host, sizeof(host), &port), SDK_EINVAL);
    assert_int_equal(sdk_parse_address("host", host, sizeof(host), &port), SDK_EINVAL);
    assert_int_equal(sdk_parse_address(NULL, host, sizeof(host), &port), SDK_EINVAL);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(sdk_event_name(SDK_EVENT_SESSION_LOST), "session_lost");
    assert_string_equal(sdk_event_name(SDK_EVENT_CLOSED), "closed");
    assert_string_equal(sdk_event_name(-1), "unknown");
    assert_string_equal(sdk_state_name(SDK_STATE_CLOSED), "closed");
    assert_string_equal(sdk_state_name(4), "unknown");
    assert_string_equal(sdk_session_event_name(SDK_SESSION_CLOSED), "closed");
    assert_string_equal(sdk_session_event_name(SDK_SERVER_TLS_RELOAD_FAILED), "tls_reload_failed");
    assert_string_equal(sdk_session_event_name(SDK_SERVER_CONNECTIONS_REFUSED), "connections_refused");
    assert_string_equal(sdk_session_event_name(8), "unknown");
    assert_string_equal(sdk_session_state_name(SDK_SESSION_STATE_DETACHED), "detached");
    assert_string_equal(sdk_session_state_name(2), "unknown");
    assert_string_equal(sdk_cause_name(SDK_CAUSE_SERVER_STOP), "server_stop");
    assert_string_equal(sdk_cause_name(SDK_CAUSE_NONE), "none");
    assert_string_equal(sdk_cause_name(SDK_CAUSE_TAKEN_OVER), "taken_over");
    assert_string_equal(sdk_cause_name(11), "unknown");
    sdk_sessions_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_sizes),
        cmocka_unit_test(test_take_sizes),
        cmocka_unit_test(test_connect_refuses_bad_sizes),
        cmocka_unit_test(test_server_start_refuses_newer),
        cmocka_unit_test(test_parse_address),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
