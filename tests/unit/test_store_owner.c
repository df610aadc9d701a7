/*
 * Unit tests for owner marks and instance channels (store_owner.h, store_redis_owner.c)
 * against a redis-server of the test's own: marks round-trip and expire; a refresh never
 * takes back a mark that names someone else, a bind does; a free claim is refused once
 * somebody holds one and fences that holder's writes when granted; a publish counts its
 * listeners, and a subscription gets what is published (read only once its socket is
 * readable); the memory store has none of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "recstore.h"
#include "redis_proc.h"
#include "store_owner.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static redis_proc redis;

static int start_redis(void **state)
{
    (void)state;
    return redis_proc_start(&redis) ? 0 : -1;
}

static int stop_redis(void **state)
{
    (void)state;
    redis_proc_stop(&redis);
    return 0;
}

static sdk_store *open_redis(void)
{
    sdk_store *st = NULL;
    assert_int_equal(sdk_store_open(redis.url, 1000, &st), SDK_OK);
    assert_true(ll_owner_supported(st));
    return st;
}

static ll_owner_mark mark_of(uint64_t id, const char *value)
{
    ll_owner_mark m = {.id = id};
    snprintf(m.value, sizeof(m.value), "%s", value);
    return m;
}

static void assert_mark(sdk_store *st, uint64_t id, const char *want)
{
    char got[96];
    assert_int_equal(ll_owner_get_mark(st, id, got, sizeof(got)), SDK_OK);
    assert_string_equal(got, want);
}

static void test_marks(void **state)
{
    (void)state;
    sdk_store *st = open_redis();
    char got[96];
    assert_int_equal(ll_owner_get_mark(st, 11, got, sizeof(got)), SDK_ENOTFOUND);
    ll_owner_mark m[2] = {mark_of(11, "a:hash11"), mark_of(12, "a:hash12")};
    assert_int_equal(ll_owner_write_marks(st, m, 2, 60000, false), SDK_OK);
    assert_mark(st, 11, "a:hash11");
    ll_owner_mark moved = mark_of(11, "b:hash11");
    assert_int_equal(ll_owner_write_marks(st, &moved, 1, 60000, false), SDK_OK); /* B bound it */
    assert_int_equal(ll_owner_write_marks(st, m, 2, 60000, true), SDK_OK);       /* A's late refresh */
    assert_mark(st, 11, "b:hash11");
    assert_mark(st, 12, "a:hash12");
    ll_owner_mark brief = mark_of(13, "a:hash13");
    assert_int_equal(ll_owner_write_marks(st, &brief, 1, 50, true), SDK_OK); /* none yet: written */
    assert_mark(st, 13, "a:hash13");
    nanosleep(&(struct timespec){0, 150 * 1000000L}, NULL);
    assert_int_equal(ll_owner_get_mark(st, 13, got, sizeof(got)), SDK_ENOTFOUND);
    sdk_store_close(st);
}

static void test_claim_free(void **state)
{
    (void)state;
    sdk_store *st = open_redis();
    uint64_t epoch = 0, taken = 0;
    assert_int_equal(ll_owner_claim_free(st, 21, 60000, &epoch), SDK_OK);
    assert_true(epoch > 0);
    assert_int_equal(ll_owner_claim_free(st, 21, 60000, &taken), SDK_OK);
    assert_int_equal(taken, 0); /* somebody (the first claim) holds it */
    uint64_t newer = 0;
    assert_int_equal(ll_recstore_claim(st, 21, 60000, &newer), SDK_OK);
    assert_true(newer > epoch);
    assert_int_equal(ll_recstore_del(st, 21, newer), LL_WRITE_DONE);
    assert_int_equal(ll_owner_claim_free(st, 21, 60000, &taken), SDK_OK);
    assert_true(taken > newer); /* free again: granted, and epochs never repeat */
    sdk_store_close(st);
}

/* Messages a subscription passes on, joined with '|'. */
static void collect(const char *msg, size_t len, void *ctx)
{
    char *all = ctx;
    size_t at = strlen(all);
    snprintf(all + at, 256 - at, "%s%.*s", at ? "|" : "", (int)len, msg);
}

static void test_channels(void **state)
{
    (void)state;
    sdk_store *st = open_redis();
    uint64_t receivers = 9;
    assert_int_equal(ll_owner_publish(st, "lifeline:instance:test", "T 1 2", &receivers), SDK_OK);
    assert_int_equal(receivers, 0); /* nobody listens: the instance is gone */
    ll_store_sub *sub = NULL;
    assert_int_equal(ll_owner_sub_open(st, "lifeline:instance:test", &sub), SDK_OK);
    assert_int_equal(ll_owner_publish(st, "lifeline:instance:test", "T 1 2", &receivers), SDK_OK);
    assert_int_equal(receivers, 1);
    assert_int_equal(ll_owner_publish(st, "lifeline:instance:test", "R 1", &receivers), SDK_OK);
    char all[256] = "";
    for (int i = 0; i < 50 && strcmp(all, "T 1 2|R 1") != 0; i++) {
        struct pollfd p = {.fd = ll_owner_sub_fd(st, sub), .events = POLLIN};
        assert_true(poll(&p, 1, 1000) == 1);
        assert_int_equal(ll_owner_sub_read(st, sub, collect, all), SDK_OK);
    }
    assert_string_equal(all, "T 1 2|R 1");
    redis_proc_kill(&redis); /* the subscription sees its connection go */
    struct pollfd p = {.fd = ll_owner_sub_fd(st, sub), .events = POLLIN};
    assert_true(poll(&p, 1, 1000) == 1);
    assert_int_not_equal(ll_owner_sub_read(st, sub, collect, all), SDK_OK);
    ll_owner_sub_close(st, sub);
    assert_true(redis_proc_restart(&redis));
    sdk_store_close(st);
}

static void test_memory_store_has_none(void **state)
{
    (void)state;
    sdk_store *st = NULL;
    assert_int_equal(sdk_store_open("memory:", 0, &st), SDK_OK);
    assert_false(ll_owner_supported(st));
    assert_false(ll_owner_supported(NULL));
    sdk_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marks),
        cmocka_unit_test(test_claim_free),
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_memory_store_has_none),
    };
    return cmocka_run_group_tests(tests, start_redis, stop_redis);
}
