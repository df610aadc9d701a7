/*
 * Unit tests for sdk/src/store_url.c: the store URLs lifeline/store.h allows parse to the
 * right host, port and DB (IPv6 in brackets, defaults), and every malformed one is refused
 * with a reason instead of half-parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "recstore.h"

#include <string.h>

static void expect_url(const char *url, ll_store_kind kind, const char *host, uint16_t port, uint32_t db)
{
    ll_store_url u;
    char why[200] = "";
    assert_int_equal(ll_store_url_parse(url, &u, why, sizeof(why)), 0);
    assert_int_equal(u.kind, kind);
    assert_string_equal(u.host, host);
    assert_int_equal(u.port, port);
    assert_int_equal(u.db, db);
}

static void expect_refused(const char *url, const char *reason)
{
    ll_store_url u;
    char why[200] = "";
    assert_int_equal(ll_store_url_parse(url, &u, why, sizeof(why)), SDK_EINVAL);
    if (!strstr(why, reason)) {
        fail_msg("\"%s\": reason \"%s\" does not contain \"%s\"", url, why, reason);
    }
}

static void test_good(void **state)
{
    (void)state;
    expect_url("memory:", LL_STORE_MEMORY, "", 0, 0);
    expect_url("redis://127.0.0.1:6380", LL_STORE_REDIS, "127.0.0.1", 6380, 0);
    expect_url("redis://localhost", LL_STORE_REDIS, "localhost", 6379, 0);
    expect_url("redis://localhost/5", LL_STORE_REDIS, "localhost", 6379, 5);
    expect_url("redis://cache.example:1/2147483647", LL_STORE_REDIS, "cache.example", 1, 2147483647);
    expect_url("redis://[::1]:65535/0", LL_STORE_REDIS, "::1", 65535, 0);
    expect_url("redis://[fe80::1%25eth0]", LL_STORE_REDIS, "fe80::1%25eth0", 6379, 0);
}

static void expect_credentials(const char *url, const char *user, const char *password, const char *host)
{
    ll_store_url u;
    char why[200] = "";
    assert_int_equal(ll_store_url_parse(url, &u, why, sizeof(why)), 0);
    assert_string_equal(u.user, user);
    assert_string_equal(u.password, password);
    assert_string_equal(u.host, host);
}

static void test_credentials(void **state)
{
    (void)state;
    expect_credentials("redis://h", "", "", "h");
    expect_credentials("redis://:secret@h:1/2", "", "secret", "h");
    expect_credentials("redis://app:secret@[::1]:6380", "app", "secret", "::1");
    expect_credentials("redis://app:a%40b%3Ac%2f%25@h", "app", "a@b:c/%", "h");
    expect_credentials("redis://app:a@b@h", "app", "a@b", "h"); /* the last '@' ends them */
    expect_credentials("redis://app:a:b@h", "app", "a:b", "h"); /* the first ':' splits them */
    expect_credentials("redis://app:a/b@h/1", "app", "a/b", "h");
    char longpw[400] = "redis://u:";
    memset(longpw + 10, 'p', 300);
    strcat(longpw, "@h");
    expect_refused(longpw, "bad credentials");
}

/* A refused URL is quoted with its credentials masked, and leaves no password behind. */
static void test_password_never_shown(void **state)
{
    (void)state;
    ll_store_url u;
    char why[300] = "";
    assert_int_equal(ll_store_url_parse("redis://app:hunter2@h:0", &u, why, sizeof(why)), SDK_EINVAL);
    assert_null(strstr(why, "hunter2"));
    assert_non_null(strstr(why, "redis://***@h:0"));
    assert_string_equal(u.password, "");
    assert_int_equal(ll_store_url_parse("redis://app:hunter2@/x", &u, why, sizeof(why)), SDK_EINVAL);
    assert_null(strstr(why, "hunter2"));
}

static void test_bad(void **state)
{
    (void)state;
    expect_refused("", "must be \"memory:\" or");
    expect_refused("memory", "must be");
    expect_refused("memory:x", "must be");
    expect_refused("rediss://h:1", "must be");
    expect_refused("REDIS://h:1", "must be");
    expect_refused("redis://", "no host");
    expect_refused("redis://:6379", "no host");
    expect_refused("redis://::1:6379", "IPv6 address goes in brackets");
    expect_refused("redis://[::1:6379", "unclosed '['");
    expect_refused("redis://[]:6379", "no host (an IPv6");
    expect_refused("redis://[::1]x", "unexpected characters");
    expect_refused("redis://h[1]:6379", "unexpected characters");
    expect_refused("redis://h:", "port must be 1-65535");
    expect_refused("redis://h:0", "port must be 1-65535");
    expect_refused("redis://h:65536", "port must be 1-65535");
    expect_refused("redis://h:+80", "port must be 1-65535");
    expect_refused("redis://h:99999999999999999999999", "port must be 1-65535");
    expect_refused("redis://h:80x", "port must be 1-65535");
    expect_refused("redis://h/", "DB must be a number");
    expect_refused("redis://h:1/-1", "DB must be a number");
    expect_refused("redis://h:1/2147483648", "DB must be a number");
    expect_refused("redis://h:1/3/4", "DB must be a number");
    expect_refused("redis://h:1/ 3", "DB must be a number");
    expect_refused("redis://user@h:1", "credentials must be USER:PASSWORD@");
    expect_refused("redis://user:@h:1", "credentials must be USER:PASSWORD@");
    expect_refused("redis://u:p%4@h:1", "bad credentials");
    expect_refused("redis://u:p%zz@h:1", "bad credentials");
    expect_refused("redis://u:p%00@h:1", "bad credentials");
    expect_refused("redis://u:pw@", "no host");
    char longhost[400] = "redis://";
    memset(longhost + 8, 'a', 300);
    expect_refused(longhost, "host too long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_password_never_shown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
