/*
 * Tests for the shared TLS ticket keys: the periods and the live window (ticketkeys.c), the
 * ring's choice of the key that encrypts and of the key a ticket names, the stores' "create
 * once, then everyone reads the same" (memory, and a redis-server of the test's own), and
 * the refresher: a store outage keeps the keys held, a store down at start leaves a key of
 * this process only, and once the store is back every instance converges again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "recstore.h"
#include "redis_proc.h"
#include "ticket_refresh.h"
#include "ticketkeys.h"

#include "ll.h"
#include "net.h"

#include <string.h>
#include <time.h>

#define H (3600ull * 1000)

static ll_ticket_key key_of(uint64_t period, uint8_t fill)
{
    ll_ticket_key k;
    memset(&k, fill, sizeof(k));
    k.period = period;
    return k;
}

static void test_periods_and_window(void **state)
{
    (void)state;
    assert_true(ll_tk_period(0, 12 * H) == 0);
    assert_true(ll_tk_period(12 * H - 1, 12 * H) == 0);
    assert_true(ll_tk_period(12 * H, 12 * H) == 1);
    assert_true(ll_tk_next_boundary_ms(12 * H + 5, 12 * H) == 24 * H);
    ll_tk_window w = ll_tk_window_at(100, 3); /* previous, current, next */
    assert_true(w.first == 99 && w.last == 101);
    w = ll_tk_window_at(100, 2); /* current and next */
    assert_true(w.first == 100 && w.last == 101);
    w = ll_tk_window_at(100, 8);
    assert_true(w.first == 94 && w.last == 101 && w.last - w.first + 1 == 8);
    w = ll_tk_window_at(1, 5); /* near the epoch: nothing before period 0 */
    assert_true(w.first == 0 && w.last == 2);
}

static void test_encode_decode(void **state)
{
    (void)state;
    uint8_t blob[LL_TK_BLOB_LEN], again[LL_TK_BLOB_LEN];
    assert_int_equal(ll_tk_generate(blob), 0);
    assert_int_equal(ll_tk_generate(again), 0);
    assert_memory_not_equal(blob, again, sizeof(blob)); /* from the CSPRNG */
    ll_ticket_key k;
    ll_tk_decode(blob, 7, &k);
    assert_true(k.period == 7);
    assert_memory_equal(k.name, blob, LL_TK_NAME_LEN);
    assert_memory_equal(k.hmac, blob + LL_TK_NAME_LEN + LL_TK_AES_LEN, LL_TK_HMAC_LEN);
    ll_tk_encode(&k, again);
    assert_memory_equal(blob, again, sizeof(blob));
}

/* The current period's key encrypts; with it missing, the newest before it; with none before,
 * the oldest held. */
static void test_encrypt_key_choice(void **state)
{
    (void)state;
    ll_ticket_ring r;
    ll_ticket_key out;
    ll_tk_ring_init(&r, 12 * H, 3);
    assert_false(ll_tk_ring_encrypt_key(&r, 10 * 12 * H, &out)); /* empty */
    ll_ticket_key keys[] = {key_of(9, 1), key_of(10, 2), key_of(11, 3)};
    ll_tk_ring_install(&r, keys, 3, true);
    assert_true(ll_tk_ring_shared(&r));
    assert_true(ll_tk_ring_encrypt_key(&r, 10 * 12 * H + 1, &out));
    assert_true(out.period == 10 && out.name[0] == 2);
    assert_true(ll_tk_ring_encrypt_key(&r, 11 * 12 * H, &out)); /* the next one, created ahead */
    assert_true(out.period == 11);
    assert_true(ll_tk_ring_encrypt_key(&r, 15 * 12 * H, &out)); /* the store stayed away: newest held */
    assert_true(out.period == 11);
    assert_true(ll_tk_ring_encrypt_key(&r, 3 * 12 * H, &out)); /* a clock far behind: oldest */
    assert_true(out.period == 9);
    ll_tk_ring_destroy(&r);
}

/* A ticket's key is found by name; one that no longer encrypts asks for renewal; an unknown
 * name asks the refresher for a refresh (once, until it is served). */
static void test_find_by_name(void **state)
{
    (void)state;
    ll_ticket_ring r;
    ll_ticket_key out;
    bool renew = true;
    ll_tk_ring_init(&r, 12 * H, 3);
    ll_ticket_key keys[] = {key_of(9, 1), key_of(10, 2), key_of(11, 3)};
    ll_tk_ring_install(&r, keys, 3, true);
    uint64_t now = 10 * 12 * H;
    assert_true(ll_tk_ring_find(&r, keys[1].name, now, &out, &renew));
    assert_false(renew);
    assert_memory_equal(out.aes, keys[1].aes, LL_TK_AES_LEN);
    assert_true(ll_tk_ring_find(&r, keys[0].name, now, &out, &renew));
    assert_true(renew);
    assert_true(ll_tk_ring_find(&r, keys[2].name, now, &out, &renew));
    assert_true(renew && out.period == 11);
    assert_false(r.want_refresh);
    uint8_t unknown[LL_TK_NAME_LEN];
    memset(unknown, 9, sizeof(unknown));
    assert_false(ll_tk_ring_find(&r, unknown, now, &out, &renew));
    assert_true(r.want_refresh);
    /* After the next rotation the oldest key is gone from a fresh install. */
    ll_ticket_key next[] = {keys[1], keys[2], key_of(12, 4)};
    ll_tk_ring_install(&r, next, 3, true);
    assert_false(ll_tk_ring_find(&r, keys[0].name, 11 * 12 * H, &out, &renew));
    assert_true(ll_tk_ring_find(&r, keys[2].name, 11 * 12 * H, &out, &renew));
    assert_false(renew);
    ll_tk_ring_destroy(&r);
}

/* Two instances ask for the same periods with fresh keys of their own: the first one's keys
 * are stored, and the second gets those, not its own. Another rotation keeps apart. */
static void converge(sdk_store *a, sdk_store *b)
{
    uint64_t periods[] = {41, 42, 43};
    uint8_t first[3][LL_TK_BLOB_LEN], second[3][LL_TK_BLOB_LEN], mine[3][LL_TK_BLOB_LEN];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ll_tk_generate(first[i]), 0);
        assert_int_equal(ll_tk_generate(second[i]), 0);
    }
    memcpy(mine, first, sizeof(mine));
    assert_int_equal(ll_recstore_ticket_keys(a, 5000, periods, first, 3, 60000), 0);
    assert_memory_equal(first, mine, sizeof(mine)); /* none were there: A's are stored */
    assert_int_equal(ll_recstore_ticket_keys(b, 5000, periods, second, 3, 60000), 0);
    assert_memory_equal(second, first, sizeof(first)); /* B converges on A's */
    uint8_t other[1][LL_TK_BLOB_LEN];
    memcpy(other[0], mine[0], LL_TK_BLOB_LEN);
    other[0][0] ^= 0xff;
    uint8_t asked[LL_TK_BLOB_LEN];
    memcpy(asked, other[0], LL_TK_BLOB_LEN);
    assert_int_equal(ll_recstore_ticket_keys(b, 6000, periods, other, 1, 60000), 0);
    assert_memory_equal(other[0], asked, LL_TK_BLOB_LEN); /* rotation 6000 had none yet */
    assert_int_equal(ll_recstore_ticket_keys(a, 5000, periods, other, 0, 60000), SDK_EINVAL);
}

static void test_memory_store_converges(void **state)
{
    (void)state;
    sdk_store *st = NULL;
    assert_int_equal(sdk_store_open("memory:", 0, &st), SDK_OK);
    converge(st, st); /* servers sharing the handle share the keys */
    /* Keys expire: a period asked again after its TTL gets the new caller's key. */
    uint64_t p[] = {1};
    uint8_t k1[1][LL_TK_BLOB_LEN], k2[1][LL_TK_BLOB_LEN], want[LL_TK_BLOB_LEN];
    assert_int_equal(ll_tk_generate(k1[0]), 0);
    assert_int_equal(ll_tk_generate(k2[0]), 0);
    memcpy(want, k2[0], sizeof(want));
    assert_int_equal(ll_recstore_ticket_keys(st, 1000, p, k1, 1, 30), 0);
    struct timespec ts = {0, 60 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(ll_recstore_ticket_keys(st, 1000, p, k2, 1, 30), 0);
    assert_memory_equal(k2[0], want, sizeof(want));
    sdk_store_close(st);
}

static void test_redis_store_converges(void **state)
{
    (void)state;
    redis_proc rp;
    assert_true(redis_proc_start(&rp));
    sdk_store *a = NULL, *b = NULL;
    assert_int_equal(sdk_store_open(rp.url, 0, &a), SDK_OK);
    assert_int_equal(sdk_store_open(rp.url, 0, &b), SDK_OK); /* as two processes would */
    converge(a, b);
    sdk_store_close(a);
    sdk_store_close(b);
    redis_proc_stop(&rp);
}

/* The refresher fetches the window at start (shared keys, the same for two refreshers on
 * one store); with Redis gone, a fetch fails, the keys stay, and the status says so; a
 * refresher started while Redis is down holds a key of its own process. */
static void test_refresher_outage_keeps_keys(void **state)
{
    (void)state;
    redis_proc rp;
    assert_true(redis_proc_start(&rp));
    sdk_store *a = NULL, *b = NULL;
    assert_int_equal(sdk_store_open(rp.url, 300, &a), SDK_OK);
    assert_int_equal(sdk_store_open(rp.url, 300, &b), SDK_OK);
    ll_tk_refresher *fa = NULL, *fb = NULL;
    assert_int_equal(ll_tk_refresher_start(a, 60000, 3, &fa), 0);
    assert_int_equal(ll_tk_refresher_start(b, 60000, 3, &fb), 0);
    ll_ticket_ring *ra = ll_tk_refresher_ring(fa), *rb = ll_tk_refresher_ring(fb);
    assert_true(ll_tk_ring_shared(ra) && ra->count == 3 && rb->count == 3);
    ll_ticket_key ka, kb;
    uint64_t now = ll_wall_ms();
    assert_true(ll_tk_ring_encrypt_key(ra, now, &ka) && ll_tk_ring_encrypt_key(rb, now, &kb));
    assert_memory_equal(&ka, &kb, sizeof(ka)); /* both instances seal with the same key */

    redis_proc_kill(&rp);
    assert_int_not_equal(ll_tk_refresher_fetch(fa), 0);
    ll_tk_status s;
    ll_tk_refresher_status(fa, &s);
    assert_true(s.shared && s.failures == 1 && s.last_err != 0 && s.detail[0] != '\0');
    bool renew = true;
    assert_true(ll_tk_ring_find(ra, ka.name, now, &kb, &renew)); /* still held */

    ll_tk_refresher *fc = NULL;
    assert_int_equal(ll_tk_refresher_start(a, 60000, 3, &fc), 0); /* Redis down: no failure */
    ll_tk_refresher_status(fc, &s);
    assert_false(s.shared);
    assert_int_equal((int)ll_tk_refresher_ring(fc)->count, 1);
    assert_false(ll_tk_ring_find(ll_tk_refresher_ring(fc), ka.name, now, &kb, &renew));

    /* Redis back, empty (no persistence): the next fetches make new keys, the same for both. */
    assert_true(redis_proc_restart(&rp));
    assert_int_equal(ll_tk_refresher_fetch(fc), 0);
    assert_int_equal(ll_tk_refresher_fetch(fa), 0);
    ll_tk_refresher_status(fc, &s);
    assert_true(s.shared && s.last_err == 0);
    ll_ticket_key kc;
    assert_true(ll_tk_ring_encrypt_key(ra, now, &ka) && ll_tk_ring_encrypt_key(ll_tk_refresher_ring(fc), now, &kc));
    assert_memory_equal(&ka, &kc, sizeof(ka));
    ll_tk_refresher_stop(fa);
    ll_tk_refresher_stop(fb);
    ll_tk_refresher_stop(fc);
    sdk_store_close(a);
    sdk_store_close(b);
    redis_proc_stop(&rp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_periods_and_window),          cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_encrypt_key_choice),          cmocka_unit_test(test_find_by_name),
        cmocka_unit_test(test_memory_store_converges),      cmocka_unit_test(test_redis_store_converges),
        cmocka_unit_test(test_refresher_outage_keeps_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
