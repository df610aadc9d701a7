/*
 * Unit tests for the session store (recstore.c, store_mem.c, store_redis.c) against a real
 * redis-server that the test starts on a free loopback port (redis_proc.c) and the memory
 * backend. The same contract runs on both: records round-trip byte for byte; a claim fences
 * out the previous owner's puts and deletes; expiry never brings back an old epoch; a
 * record that does not decode is refused. Redis alone: an unreachable or silent server is
 * a clear error within the timeout, never a hang; a server killed mid-test and restarted is
 * reconnected to on the next call; DB numbers select and isolate; a missing DB is refused.
 * It also prints put/get latency and the size of a session record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "codec.h"
#include "ll.h"
#include "net.h"
#include "recstore.h"
#include "redis_proc.h"
#include "store_owner.h"
#include "store_redis.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* A record of session id with n frames of payload_len bytes, its frames in *frames. */
static ll_sessrec make_record(uint64_t id, uint64_t owner, int n, size_t payload_len, ll_buf *frames)
{
    ll_session s;
    ll_session_init(&s, 1024, 1 << 24);
    uint8_t *payload = calloc(1, payload_len ? payload_len : 1);
    for (int i = 0; i < n; i++) {
        memset(payload, 'a' + i % 26, payload_len);
        assert_int_equal(ll_session_enqueue(&s, payload, payload_len, i % 2 ? "t.Odd" : NULL), 0);
    }
    free(payload);
    ll_sessrec r = {.id = id, .owner_epoch = owner, .hb_interval_ms = 1000, .hb_timeout_ms = 3000};
    assert_int_equal(ll_tls_sha256(&id, sizeof(id), r.token_hash), 0);
    assert_int_equal(ll_sessrec_capture(&s, frames, &r), 0);
    ll_session_free(&s);
    return r;
}

static sdk_store *open_ok(const char *url, int timeout_ms)
{
    sdk_store *st = NULL;
    sdk_err rc = sdk_store_open(url, timeout_ms, &st);
    if (rc != SDK_OK) {
        char why[256];
        sdk_last_connect_error(why, sizeof(why));
        fail_msg("sdk_store_open(%s): %s: %s", url, sdk_errname(rc), why);
    }
    return st;
}

static void expect_detail(sdk_store *st, sdk_err code, const char *part)
{
    char why[256];
    assert_int_equal(sdk_store_last_error(st, why, sizeof(why)), code);
    if (!strstr(why, part)) {
        fail_msg("detail \"%s\" does not contain \"%s\"", why, part);
    }
}

/* ---- the contract, on each backend (state: the URL) ---- */

static void test_round_trip(void **state)
{
    sdk_store *st = open_ok(*state, 0);
    uint64_t epoch = 0;
    assert_int_equal(ll_recstore_claim(st, 42, 0, &epoch), 0);
    assert_true(epoch > 0);
    ll_buf frames = {0}, bytes = {0}, want = {0};
    ll_sessrec r = make_record(42, epoch, 5, 300, &frames), got;
    assert_int_equal(ll_recstore_put(st, &r, 0), LL_WRITE_DONE);
    assert_int_equal(ll_recstore_get(st, 42, &bytes, &got), 0);
    assert_int_equal(ll_sessrec_encode(&r, &want), 0);
    assert_int_equal(ll_buf_size(&bytes), ll_buf_size(&want));
    assert_memory_equal(ll_buf_head(&bytes), ll_buf_head(&want), ll_buf_size(&want));
    assert_int_equal(got.owner_epoch, epoch);
    assert_int_equal(got.nframes, 5);
    assert_int_equal(ll_recstore_get(st, 43, &bytes, &got), SDK_ENOTFOUND);
    expect_detail(st, SDK_ENOTFOUND, "no record of session 43");
    assert_int_equal(ll_recstore_del(st, 42, epoch), LL_WRITE_DONE);
    assert_int_equal(ll_recstore_get(st, 42, &bytes, &got), SDK_ENOTFOUND);
    ll_buf_free(&frames);
    ll_buf_free(&bytes);
    ll_buf_free(&want);
    sdk_store_close(st);
}

/* Where the k-th frame of a buffer of frames starts. */
static size_t frame_offset(const ll_buf *frames, int k)
{
    size_t off = 0;
    for (int i = 0; i < k; i++) {
        off += LL_FRAME_HEADER + ll_get_be32(ll_buf_head(frames) + off);
    }
    return off;
}

/* Get session id's record and check its acked and frames against `want` (len bytes). */
static void expect_frames(sdk_store *st, uint64_t id, uint64_t acked, uint32_t n, const uint8_t *want, size_t len)
{
    ll_buf bytes = {0};
    ll_sessrec got;
    int rc = ll_recstore_get(st, id, &bytes, &got);
    if (rc != 0) {
        char why[256];
        sdk_store_last_error(st, why, sizeof(why));
        fail_msg("get: %s: %s", sdk_errname(rc), why);
    }
    assert_int_equal(got.acked, acked);
    assert_int_equal(got.nframes, n);
    assert_int_equal(got.frames_len, len);
    if (len) {
        assert_memory_equal(got.frames, want, len);
    }
    ll_buf_free(&bytes);
}

/* Incremental writes (sync "always"): new frames are appended, acknowledged ones trimmed,
 * and the record read back is the same as if written whole. */
static void test_deltas(void **state)
{
    sdk_store *st = open_ok(*state, 0);
    uint64_t epoch = 0;
    assert_int_equal(ll_recstore_claim(st, 78, 0, &epoch), 0);
    ll_buf all = {0};
    ll_sessrec r = make_record(78, epoch, 5, 100, &all);
    ll_sessrec first = r; /* frames 1..3 written whole */
    first.nframes = 3;
    first.frames_len = frame_offset(&all, 3);
    assert_int_equal(ll_recstore_put(st, &first, 0), LL_WRITE_DONE);
    expect_frames(st, 78, 0, 3, ll_buf_head(&all), frame_offset(&all, 3));

    ll_sessrec later = r; /* 1 and 2 acknowledged, 4 and 5 queued since */
    later.acked = later.high_written = 2;
    size_t from = frame_offset(&all, 3);
    ll_recdelta d = {.r = &later, .frames = ll_buf_head(&all) + from, .frames_len = ll_buf_size(&all) - from};
    assert_int_equal(ll_recstore_write(st, &d, 1, 0), 0);
    assert_int_equal(d.result, LL_WRITE_DONE);
    size_t two = frame_offset(&all, 2);
    expect_frames(st, 78, 2, 3, ll_buf_head(&all) + two, ll_buf_size(&all) - two);

    ll_sessrec done = r; /* everything acknowledged, nothing new */
    done.acked = done.high_written = 5;
    ll_recdelta d2[2] = {{.r = &done}, {.r = &done}};
    assert_int_equal(ll_recstore_write(st, d2, 2, 0), 0); /* a batch: the second trims nothing more */
    assert_int_equal(d2[0].result, LL_WRITE_DONE);
    assert_int_equal(d2[1].result, LL_WRITE_DONE);
    expect_frames(st, 78, 5, 0, NULL, 0);

    uint64_t next = 0; /* another instance takes over: the old writer's deltas change nothing */
    assert_int_equal(ll_recstore_claim(st, 78, 0, &next), 0);
    assert_int_equal(ll_recstore_write(st, &d, 1, 0), 0);
    assert_int_equal(d.result, LL_WRITE_FENCED);
    expect_frames(st, 78, 5, 0, NULL, 0);
    assert_int_equal(ll_recstore_del(st, 78, next), LL_WRITE_DONE);
    ll_buf_free(&all);
    sdk_store_close(st);
}

/* A redis-cli command against the test's Redis, its first line of output as a number (-1 if
 * none): how the store lays a session out, which the contract alone does not show. */
static long redis_number(const char *fmt, ...)
{
    char args[160], cmd[256], line[64] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "redis-cli -h 127.0.0.1 -p %u %s", (unsigned)redis.port, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    long v = fgets(line, sizeof(line), p) ? strtol(line, NULL, 10) : -1;
    pclose(p);
    return v;
}

/* On Redis, how many elements session id's frames list holds (two per piece of a batch). */
static void expect_list_len(bool redis_be, uint64_t id, long n)
{
    if (redis_be) {
        assert_int_equal(redis_number("LLEN lifeline:session:%llu:frames", (unsigned long long)id), n);
    }
}

/* Write frames [from, to) of `all` (frames 1..n of r) as a delta with everything up to acked
 * acknowledged; the write's result. */
static ll_write_result write_delta(sdk_store *st, const ll_sessrec *r, uint64_t acked, const ll_buf *all, int from,
                                   int to, uint64_t ttl_ms)
{
    ll_sessrec now = *r;
    now.acked = now.high_written = acked;
    size_t a = frame_offset(all, from), b = frame_offset(all, to);
    ll_recdelta d = {.r = &now, .frames = ll_buf_head(all) + a, .frames_len = b - a};
    assert_int_equal(ll_recstore_write(st, &d, 1, ttl_ms), 0);
    return d.result;
}

/* The stored queue is frames [from, 8) of all, acked from: what get gives back. */
static void expect_queue(sdk_store *st, uint64_t id, const ll_buf *all, int from, int n)
{
    size_t a = frame_offset(all, from);
    expect_frames(st, id, (uint64_t)from, (uint32_t)(n - from), ll_buf_head(all) + a, frame_offset(all, n) - a);
}

/* Batches of frames, trimmed by acknowledgements that fall inside a batch and on its end: the
 * queue read back is always exactly the frames after acked. On Redis each batch is one pair of
 * list elements (its last sequence, its frames), and trimming pops whole batches only. */
static void test_batches(void **state)
{
    bool redis_be = strcmp(*state, "memory:") != 0;
    sdk_store *st = open_ok(*state, 0);
    uint64_t epoch = 0;
    assert_int_equal(ll_recstore_claim(st, 80, 0, &epoch), 0);
    ll_buf all = {0};
    ll_sessrec r = make_record(80, epoch, 8, 200, &all);
    assert_int_equal(write_delta(st, &r, 0, &all, 0, 3, 0), LL_WRITE_DONE); /* frames 1..3 */
    assert_int_equal(write_delta(st, &r, 0, &all, 3, 6, 0), LL_WRITE_DONE); /* 4..6 */
    assert_int_equal(write_delta(st, &r, 0, &all, 6, 8, 0), LL_WRITE_DONE); /* 7..8 */
    expect_queue(st, 80, &all, 0, 8);
    expect_list_len(redis_be, 80, 6);
    assert_int_equal(write_delta(st, &r, 2, &all, 8, 8, 0), LL_WRITE_DONE); /* inside the first batch */
    expect_queue(st, 80, &all, 2, 8);
    expect_list_len(redis_be, 80, 6);                                       /* it is kept whole */
    assert_int_equal(write_delta(st, &r, 4, &all, 8, 8, 0), LL_WRITE_DONE); /* across a batch's end */
    expect_queue(st, 80, &all, 4, 8);
    expect_list_len(redis_be, 80, 4);
    assert_int_equal(write_delta(st, &r, 6, &all, 8, 8, 0), LL_WRITE_DONE); /* on a batch's end */
    expect_queue(st, 80, &all, 6, 8);
    expect_list_len(redis_be, 80, 2);
    /* A write sent again (its answer was lost): nothing twice. Then a replace of the queue. */
    assert_int_equal(write_delta(st, &r, 6, &all, 6, 8, 0), LL_WRITE_DONE);
    assert_int_equal(write_delta(st, &r, 6, &all, 7, 8, 0), LL_WRITE_DONE);
    expect_queue(st, 80, &all, 6, 8);
    ll_sessrec tail = r;
    tail.acked = tail.high_written = 5;
    tail.nframes = 3;
    tail.frames = ll_buf_head(&all) + frame_offset(&all, 5);
    tail.frames_len = ll_buf_size(&all) - frame_offset(&all, 5);
    assert_int_equal(ll_recstore_put(st, &tail, 0), LL_WRITE_DONE);
    expect_queue(st, 80, &all, 5, 8);
    expect_list_len(redis_be, 80, 2);
    assert_int_equal(write_delta(st, &r, 8, &all, 8, 8, 0), LL_WRITE_DONE); /* all acknowledged */
    expect_queue(st, 80, &all, 8, 8);
    if (redis_be) {
        assert_int_equal(redis_number("EXISTS lifeline:session:80:frames"), 0);
    }
    assert_int_equal(ll_recstore_del(st, 80, epoch), LL_WRITE_DONE);
    ll_buf_free(&all);
    sdk_store_close(st);
}

/* A stale owner's batches change nothing, on a live session or on one gone, and leave no
 * frames behind; a new owner's writes expire with their ttl. */
static void test_batches_fenced_and_expiring(void **state)
{
    bool redis_be = strcmp(*state, "memory:") != 0;
    sdk_store *st = open_ok(*state, 0);
    uint64_t old = 0, owner = 0;
    ll_buf all = {0}, bytes = {0};
    assert_int_equal(ll_recstore_claim(st, 81, 0, &old), 0);
    ll_sessrec r = make_record(81, old, 6, 50, &all), got;
    assert_int_equal(write_delta(st, &r, 0, &all, 0, 3, 0), LL_WRITE_DONE);
    assert_int_equal(ll_recstore_claim(st, 81, 0, &owner), 0);
    assert_int_equal(write_delta(st, &r, 1, &all, 3, 6, 0), LL_WRITE_FENCED);
    expect_queue(st, 81, &all, 0, 3); /* neither trimmed nor appended */
    expect_list_len(redis_be, 81, 2);
    ll_sessrec mine = r;
    mine.owner_epoch = owner;
    assert_int_equal(write_delta(st, &mine, 1, &all, 3, 6, 300), LL_WRITE_DONE);
    assert_int_equal(write_delta(st, &r, 2, &all, 6, 6, 0), LL_WRITE_FENCED);
    expect_queue(st, 81, &all, 1, 6);
    if (redis_be) {
        long ttl = redis_number("PTTL lifeline:session:81:frames");
        assert_true(ttl > 0 && ttl <= 300);
    }
    sleep_ms(450);
    assert_int_equal(ll_recstore_get(st, 81, &bytes, &got), SDK_ENOTFOUND);
    assert_int_equal(write_delta(st, &mine, 1, &all, 3, 6, 0), LL_WRITE_FENCED); /* expired: not claimed */
    assert_int_equal(ll_recstore_get(st, 81, &bytes, &got), SDK_ENOTFOUND);
    if (redis_be) {
        assert_int_equal(redis_number("EXISTS lifeline:session:81:frames"), 0);
    }
    ll_buf_free(&all);
    ll_buf_free(&bytes);
    sdk_store_close(st);
}

/* A batch larger than a list element holds (64 KiB of frames) goes in pieces, each trimmed
 * on its own; a frame larger than that is a piece alone. Fencing and replace take every piece
 * of a write. The queue read back is the same as on the memory backend. */
static void test_large_batches(void **state)
{
    bool redis_be = strcmp(*state, "memory:") != 0;
    sdk_store *st = open_ok(*state, 0);
    uint64_t epoch = 0, stale = 0;
    assert_int_equal(ll_recstore_claim(st, 83, 0, &stale), 0);
    assert_int_equal(ll_recstore_claim(st, 83, 0, &epoch), 0);
    ll_buf all = {0}, big = {0};
    ll_sessrec r = make_record(83, epoch, 8, 30000, &all); /* two frames per piece: 4 pieces */
    assert_int_equal(write_delta(st, &r, 0, &all, 0, 8, 0), LL_WRITE_DONE);
    expect_queue(st, 83, &all, 0, 8);
    expect_list_len(redis_be, 83, 8);
    assert_int_equal(write_delta(st, &r, 3, &all, 8, 8, 0), LL_WRITE_DONE); /* the first piece goes */
    expect_queue(st, 83, &all, 3, 8);
    expect_list_len(redis_be, 83, 6);
    ll_sessrec old = r; /* a stale owner's batch of pieces is all taken off again */
    old.owner_epoch = stale;
    assert_int_equal(write_delta(st, &old, 0, &all, 0, 8, 0), LL_WRITE_FENCED);
    expect_queue(st, 83, &all, 3, 8);
    expect_list_len(redis_be, 83, 6);
    ll_sessrec whole = make_record(83, epoch, 3, 100000, &big); /* frames over a piece: one each */
    assert_int_equal(ll_recstore_put(st, &whole, 0), LL_WRITE_DONE);
    expect_queue(st, 83, &big, 0, 3);
    expect_list_len(redis_be, 83, 6);
    assert_int_equal(ll_recstore_del(st, 83, epoch), LL_WRITE_DONE);
    ll_buf_free(&all);
    ll_buf_free(&big);
    sdk_store_close(st);
}

/* Frames that are not Data frames in sequence are refused before they reach a backend. */
static void test_bad_frames(void **state)
{
    sdk_store *st = open_ok(*state, 0);
    uint64_t epoch = 0;
    assert_int_equal(ll_recstore_claim(st, 82, 0, &epoch), 0);
    ll_buf all = {0};
    ll_sessrec r = make_record(82, epoch, 3, 10, &all);
    size_t one = frame_offset(&all, 1), two = frame_offset(&all, 2);
    ll_buf gap = {0}; /* frames 1 and 3 */
    assert_int_equal(ll_buf_append(&gap, ll_buf_head(&all), one), 0);
    assert_int_equal(ll_buf_append(&gap, ll_buf_head(&all) + two, ll_buf_size(&all) - two), 0);
    ll_recdelta d = {.r = &r, .frames = ll_buf_head(&gap), .frames_len = ll_buf_size(&gap)};
    assert_int_equal(ll_recstore_write(st, &d, 1, 0), SDK_EINVAL);
    assert_int_equal(d.result, LL_WRITE_FAILED);
    expect_detail(st, SDK_EINVAL, "not Data frames in sequence");
    d.frames_len = one - 1; /* a frame cut short */
    d.frames = ll_buf_head(&all);
    assert_int_equal(ll_recstore_write(st, &d, 1, 0), SDK_EINVAL);
    assert_int_equal(ll_recstore_del(st, 82, epoch), LL_WRITE_DONE);
    ll_buf_free(&gap);
    ll_buf_free(&all);
    sdk_store_close(st);
}

/* Two instances (two handles on Redis; one shared handle in memory) fight over a session. */
static void test_fencing(void **state)
{
    bool memory = strcmp(*state, "memory:") == 0;
    sdk_store *a = open_ok(*state, 0), *b = memory ? a : open_ok(*state, 0);
    uint64_t ea = 0, eb = 0;
    ll_buf fa = {0}, fb = {0}, bytes = {0};
    assert_int_equal(ll_recstore_claim(a, 7, 0, &ea), 0);
    ll_sessrec ra = make_record(7, ea, 2, 10, &fa);
    assert_int_equal(ll_recstore_put(a, &ra, 0), LL_WRITE_DONE);

    assert_int_equal(ll_recstore_claim(b, 7, 0, &eb), 0);
    assert_true(eb > ea);
    assert_int_equal(ll_recstore_put(a, &ra, 0), LL_WRITE_FENCED); /* the stale owner */
    char want[128];
    snprintf(want, sizeof(want), "fenced: session 7 is owned by epoch %llu, not %llu", (unsigned long long)eb,
             (unsigned long long)ea);
    expect_detail(a, SDK_EREJECTED, want);
    assert_int_equal(ll_recstore_del(a, 7, ea), LL_WRITE_FENCED);

    ll_sessrec rb = make_record(7, eb, 3, 10, &fb), got;
    assert_int_equal(ll_recstore_put(b, &rb, 0), LL_WRITE_DONE);
    assert_int_equal(ll_recstore_put(a, &ra, 0), LL_WRITE_FENCED);
    assert_int_equal(ll_recstore_get(a, 7, &bytes, &got), 0);
    assert_int_equal(got.owner_epoch, eb); /* the new owner's record, not overwritten */
    assert_int_equal(got.nframes, 3);

    ll_sessrec zero = ra;
    zero.owner_epoch = 0;
    assert_int_equal(ll_recstore_put(a, &zero, 0), LL_WRITE_FAILED);
    expect_detail(a, SDK_EINVAL, "without a claimed epoch");
    ll_buf fc = {0};
    ll_sessrec unclaimed = make_record(8, 5, 0, 0, &fc);
    assert_int_equal(ll_recstore_put(a, &unclaimed, 0), LL_WRITE_FENCED);
    ll_buf_free(&fc);
    expect_detail(a, SDK_ENOTFOUND, "session 8 is not claimed");

    assert_int_equal(ll_recstore_del(b, 7, eb), LL_WRITE_DONE);
    assert_int_equal(ll_recstore_del(a, 7, ea), LL_WRITE_DONE); /* nothing left to fence */
    ll_buf_free(&fa);
    ll_buf_free(&fb);
    ll_buf_free(&bytes);
    if (!memory) {
        sdk_store_close(b);
    }
    sdk_store_close(a);
}

/* An expired session is gone, and its next claim gets an epoch never used before, so an
 * owner from before the expiry stays fenced. */
static void test_expiry(void **state)
{
    sdk_store *st = open_ok(*state, 0);
    uint64_t e1 = 0, e2 = 0;
    ll_buf frames = {0}, bytes = {0};
    assert_int_equal(ll_recstore_claim(st, 9, 100, &e1), 0);
    ll_sessrec r = make_record(9, e1, 1, 10, &frames), got;
    assert_int_equal(ll_recstore_put(st, &r, 100), LL_WRITE_DONE);
    assert_int_equal(ll_recstore_get(st, 9, &bytes, &got), 0);
    sleep_ms(250);
    assert_int_equal(ll_recstore_get(st, 9, &bytes, &got), SDK_ENOTFOUND);
    assert_int_equal(ll_recstore_claim(st, 9, 0, &e2), 0);
    assert_true(e2 > e1);
    assert_int_equal(ll_recstore_put(st, &r, 0), LL_WRITE_FENCED);
    assert_int_equal(ll_recstore_del(st, 9, e2), LL_WRITE_DONE);
    ll_buf_free(&frames);
    ll_buf_free(&bytes);
    sdk_store_close(st);
}

/* Raw bytes as session id's header, through the backend: what a broken writer could leave. */
static void raw_put(sdk_store *st, uint64_t id, uint64_t epoch, const uint8_t *p, size_t len)
{
    ll_recwrite w = {.id = id, .epoch = epoch, .header = p, .header_len = len, .replace = true};
    assert_int_equal(st->ops->write(st, &w, 1, 0), 0);
    assert_int_equal(w.owner, epoch);
}

/* Bytes in the store are input: what does not decode is refused, not believed. */
static void test_undecodable(void **state)
{
    sdk_store *st = open_ok(*state, 0);
    uint64_t epoch = 0;
    assert_int_equal(ll_recstore_claim(st, 11, 0, &epoch), 0);
    static const uint8_t junk[] = "this is not a session record at all, whatever its length";
    raw_put(st, 11, epoch, junk, sizeof(junk));
    ll_buf bytes = {0};
    ll_sessrec got;
    assert_int_equal(ll_recstore_get(st, 11, &bytes, &got), SDK_EPROTO);
    expect_detail(st, SDK_EPROTO, "session 11: not a session record");
    /* A valid record filed under another session's id. */
    ll_buf frames = {0}, enc = {0};
    ll_sessrec other = make_record(12, epoch, 0, 0, &frames);
    assert_int_equal(ll_sessrec_encode(&other, &enc), 0);
    raw_put(st, 11, epoch, ll_buf_head(&enc), ll_buf_size(&enc));
    assert_int_equal(ll_recstore_get(st, 11, &bytes, &got), SDK_EPROTO);
    expect_detail(st, SDK_EPROTO, "the stored record is session 12");
    assert_int_equal(ll_recstore_del(st, 11, epoch), LL_WRITE_DONE);
    ll_buf_free(&bytes);
    ll_buf_free(&frames);
    ll_buf_free(&enc);
    sdk_store_close(st);
}

static void test_open_errors(void **state)
{
    (void)state;
    sdk_store *st = (sdk_store *)1;
    char why[256];
    assert_int_equal(sdk_store_open("file:/tmp/x", 0, &st), SDK_EINVAL);
    assert_null(st);
    assert_int_equal(sdk_last_connect_error(why, sizeof(why)), SDK_EINVAL);
    assert_non_null(strstr(why, "must be \"memory:\""));
    assert_int_equal(sdk_store_open(NULL, 0, &st), SDK_EINVAL);
    assert_int_equal(sdk_store_open("memory:", -1, &st), SDK_EINVAL);
    assert_int_equal(sdk_store_open("memory:", 0, NULL), SDK_EINVAL);
    assert_int_equal(sdk_store_last_error(NULL, why, sizeof(why)), SDK_EINVAL);
    st = open_ok("memory:", 0);
    assert_int_equal(sdk_store_last_error(st, why, sizeof(why)), SDK_OK);
    assert_string_equal(why, "");
    sdk_store_close(st);
    sdk_store_close(NULL);
}

/* ---- Redis failures ---- */

static uint64_t elapsed_ms(uint64_t t0)
{
    return ll_now_ms() - t0;
}

static void test_unreachable(void **state)
{
    (void)state;
    char url[64], why[256];
    uint16_t port = redis_proc_free_port();
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", (unsigned)port);
    sdk_store *st = NULL;
    uint64_t t0 = ll_now_ms();
    assert_int_equal(sdk_store_open(url, 500, &st), SDK_ECONNREFUSED);
    assert_true(elapsed_ms(t0) < 500);
    assert_null(st);
    sdk_last_connect_error(why, sizeof(why));
    char want[64];
    snprintf(want, sizeof(want), "redis 127.0.0.1:%u: connect:", (unsigned)port);
    assert_non_null(strstr(why, want));
    assert_int_equal(sdk_store_open("redis://no-such-host.invalid:6379", 500, &st), SDK_ERESOLVE);
}

/* A listener that accepts (in the kernel's backlog) and never answers. */
static int silent_listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_silent_server(void **state)
{
    (void)state;
    uint16_t port;
    int fd = silent_listener(&port);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", (unsigned)port);
    sdk_store *st = open_ok(url, 300); /* no DB: nothing to ask while connecting */
    uint64_t epoch = 0, t0 = ll_now_ms();
    assert_int_equal(ll_recstore_claim(st, 1, 0, &epoch), SDK_ETIMEDOUT);
    uint64_t took = elapsed_ms(t0);
    assert_true(took >= 250 && took < 1500);
    expect_detail(st, SDK_ETIMEDOUT, "claim: no answer within 300 ms");
    sdk_store_close(st);

    snprintf(url, sizeof(url), "redis://127.0.0.1:%u/1", (unsigned)port);
    t0 = ll_now_ms();
    assert_int_equal(sdk_store_open(url, 300, &st), SDK_ETIMEDOUT); /* its SELECT gets no answer */
    assert_true(elapsed_ms(t0) < 1500);
    close(fd);
}

static void test_killed_and_restarted(void **state)
{
    (void)state;
    sdk_store *st = open_ok(redis.url, 1000);
    uint64_t epoch = 0;
    ll_buf frames = {0}, bytes = {0};
    assert_int_equal(ll_recstore_claim(st, 5, 0, &epoch), 0);
    redis_proc_kill(&redis);
    int rc = ll_recstore_claim(st, 5, 0, &epoch);
    assert_true(rc == SDK_EDISCONNECTED || rc == SDK_ECONNREFUSED);
    assert_int_equal(ll_recstore_claim(st, 5, 0, &epoch), SDK_ECONNREFUSED); /* reconnects, refused */
    expect_detail(st, SDK_ECONNREFUSED, "connect");
    assert_true(redis_proc_restart(&redis));
    /* The next call reconnects. This Redis kept nothing (no persistence): a fresh claim. */
    assert_int_equal(ll_recstore_claim(st, 5, 0, &epoch), 0);
    ll_sessrec r = make_record(5, epoch, 2, 50, &frames), got;
    assert_int_equal(ll_recstore_put(st, &r, 0), LL_WRITE_DONE);
    assert_int_equal(ll_recstore_get(st, 5, &bytes, &got), 0);
    assert_int_equal(got.nframes, 2);
    ll_buf_free(&frames);
    ll_buf_free(&bytes);
    sdk_store_close(st);
}

static void test_databases(void **state)
{
    (void)state;
    char url[80];
    snprintf(url, sizeof(url), "%s/3", redis.url);
    sdk_store *db3 = open_ok(url, 0), *db0 = open_ok(redis.url, 0);
    uint64_t epoch = 0;
    ll_buf frames = {0}, bytes = {0};
    assert_int_equal(ll_recstore_claim(db3, 77, 0, &epoch), 0);
    ll_sessrec r = make_record(77, epoch, 1, 5, &frames), got;
    assert_int_equal(ll_recstore_put(db3, &r, 0), LL_WRITE_DONE);
    assert_int_equal(ll_recstore_get(db0, 77, &bytes, &got), SDK_ENOTFOUND);
    assert_int_equal(ll_recstore_get(db3, 77, &bytes, &got), 0);
    sdk_store_close(db0);
    sdk_store_close(db3);

    sdk_store *st = NULL;
    char why[256];
    snprintf(url, sizeof(url), "%s/99", redis.url);
    assert_int_equal(sdk_store_open(url, 0, &st), SDK_EIO);
    sdk_last_connect_error(why, sizeof(why));
    assert_non_null(strstr(why, "SELECT: ERR DB index is out of range"));
    ll_buf_free(&frames);
    ll_buf_free(&bytes);
}

/* ---- credentials ---- */

/* One command as the store's default user, its reply freed; false if Redis refused it. */
static bool admin(sdk_store *st, int argc, const char **argv)
{
    size_t lens[9];
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    redisReply *r = NULL;
    int rc = ll_redis_command(st, argc, argv, lens, "admin", &r);
    freeReplyObject(r);
    return rc == 0;
}

static void on_nothing(const char *msg, size_t len, void *ctx)
{
    (void)msg, (void)len, (void)ctx;
}

/* A Redis ACL user: USER:PASSWORD@ in the URL (percent-decoded) authenticates every
 * connection, the subscription's too; a wrong password fails the open without printing it. */
static void test_credentials(void **state)
{
    (void)state;
    sdk_store *root = open_ok(redis.url, 0);
    /* The user docs/cluster.md suggests: Lifeline's keys and channels only, nothing dangerous. */
    const char *add[] = {"ACL",   "SETUSER",    "ll-user", "on", ">pa:ss@w%rd", "~lifeline:*", "&lifeline:instance:*",
                         "+@all", "-@dangerous"};
    assert_true(admin(root, 9, add));
    char url[160], why[256];
    snprintf(url, sizeof(url), "redis://ll-user:pa:ss%%40w%%25rd@127.0.0.1:%u/2", (unsigned)redis.port);
    sdk_store *st = open_ok(url, 0);
    uint64_t epoch = 0;
    assert_int_equal(ll_recstore_claim(st, 91, 0, &epoch), 0);
    ll_buf frames = {0}, bytes = {0};
    ll_sessrec r = make_record(91, epoch, 2, 7, &frames), got;
    assert_int_equal(ll_recstore_put(st, &r, 60000), LL_WRITE_DONE);
    assert_int_equal(ll_recstore_get(st, 91, &bytes, &got), 0);
    assert_int_equal(got.nframes, 2);
    assert_int_equal(ll_recstore_del(st, 91, epoch), LL_WRITE_DONE);
    ll_buf_free(&frames);
    ll_buf_free(&bytes);
    ll_store_sub *sub = NULL;
    assert_int_equal(ll_owner_sub_open(st, "lifeline:instance:test-credentials", &sub), 0);
    uint64_t receivers = 0;
    assert_int_equal(ll_owner_publish(st, "lifeline:instance:test-credentials", "x", &receivers), 0);
    assert_int_equal(receivers, 1);
    assert_true(ll_owner_sub_read(st, sub, on_nothing, NULL) >= 0);
    ll_owner_sub_close(st, sub);
    sdk_store_close(st);

    snprintf(url, sizeof(url), "redis://ll-user:not-it@127.0.0.1:%u", (unsigned)redis.port);
    st = (sdk_store *)1;
    assert_int_equal(sdk_store_open(url, 0, &st), SDK_EIO);
    assert_null(st);
    sdk_last_connect_error(why, sizeof(why));
    assert_non_null(strstr(why, "AUTH: WRONGPASS"));
    assert_null(strstr(why, "not-it"));
    const char *del[] = {"ACL", "DELUSER", "ll-user"};
    assert_true(admin(root, 3, del));
    sdk_store_close(root);
}

/* Not a check: the figures a reader of this test wants (printed; nothing timed is asserted). */
static void test_measure(void **state)
{
    const char *url = *state;
    sdk_store *st = open_ok(url, 0);
    uint64_t epoch = 0;
    ll_buf frames = {0}, none = {0}, bytes = {0};
    assert_int_equal(ll_recstore_claim(st, 99, 0, &epoch), 0);
    ll_sessrec r = make_record(99, epoch, 100, 100, &frames), got, empty = make_record(98, epoch, 0, 0, &none);
    enum { N = 2000 };
    uint64_t t0 = ll_now_us();
    for (int i = 0; i < N; i++) {
        assert_int_equal(ll_recstore_put(st, &r, 0), LL_WRITE_DONE);
    }
    uint64_t t1 = ll_now_us();
    for (int i = 0; i < N; i++) {
        assert_int_equal(ll_recstore_get(st, 99, &bytes, &got), 0);
    }
    uint64_t t2 = ll_now_us();
    printf("store %s: record %zu bytes (100 messages of 100 bytes), %zu bytes empty; put %.1f us, get %.1f us "
           "(mean of %d)\n",
           url, LL_SESSREC_HEADER + r.frames_len, LL_SESSREC_HEADER + empty.frames_len, (double)(t1 - t0) / N,
           (double)(t2 - t1) / N, N);
    ll_buf_free(&frames);
    ll_buf_free(&none);
    ll_buf_free(&bytes);
    sdk_store_close(st);
}

/* A contract test on both backends, named after each. */
#define ON_BOTH(fn)                                      \
    {"memory: " #fn, fn, NULL, NULL, (void *)"memory:"}, \
    {                                                    \
        "redis: " #fn, fn, NULL, NULL, redis.url         \
    }

int main(void)
{
    /* The URL is known once Redis runs: start it here, before the table takes redis.url. */
    if (start_redis(NULL) != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        ON_BOTH(test_round_trip),
        ON_BOTH(test_fencing),
        ON_BOTH(test_deltas),
        ON_BOTH(test_batches),
        ON_BOTH(test_batches_fenced_and_expiring),
        ON_BOTH(test_large_batches),
        ON_BOTH(test_bad_frames),
        ON_BOTH(test_expiry),
        ON_BOTH(test_undecodable),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_silent_server),
        cmocka_unit_test(test_databases),
        cmocka_unit_test(test_credentials),
        ON_BOTH(test_measure),
        cmocka_unit_test(test_killed_and_restarted),
    };
    int failed = cmocka_run_group_tests(tests, NULL, stop_redis);
    return failed;
}
