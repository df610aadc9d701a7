/*
 * Owner marks and instance channels on Redis (store_owner.h).
 *
 * Keys: "lifeline:session:<id>:owner", a string naming the instance that holds the session
 * live and its token's hash, expiring unless refreshed. Channels: whatever the caller names
 * (server_takeover.c uses "lifeline:instance:<instance id>"). Redis channels are not per DB:
 * instance ids are random, so servers on different DBs of one Redis do not meet.
 *
 * A subscription is a connection of its own. hiredis 0.14 turns a read timeout on a blocking
 * connection into a dead context, so it is never read blind: the caller polls its socket and
 * sub_read takes only what has arrived (redisBufferRead once, then every complete reply).
 */
#include "store_owner.h"
#include "store_redis.h"

#include "ll.h"
#include "net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EPOCH_KEY "lifeline:epoch"

/* KEYS: marks; ARGV[1] ttl ms, ARGV[2] "1" to leave a mark naming something else alone,
 * ARGV[2 + i] the value for KEYS[i]. Returns how many were written. */
static const char MARK_LUA[] = "local keep, n = ARGV[2] == '1', 0\n"
                               "for i, k in ipairs(KEYS) do\n"
                               "  local v = ARGV[i + 2]\n"
                               "  local cur = keep and redis.call('GET', k)\n"
                               "  if not cur or cur == v then redis.call('SET', k, v, 'PX', ARGV[1]); n = n + 1 end\n"
                               "end\n"
                               "return n\n";
/* KEYS[1] session, KEYS[2] the epoch counter; ARGV[1] ttl ms (0: none). A claim as
 * store_redis.c's CLAIM_LUA, but only while nobody holds one: 0 if somebody does. */
static const char CLAIM_FREE_LUA[] = "if redis.call('HEXISTS', KEYS[1], 'epoch') == 1 then return 0 end\n"
                                     "local e = redis.call('INCR', KEYS[2])\n"
                                     "redis.call('HSET', KEYS[1], 'epoch', e)\n"
                                     "if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end\n"
                                     "return e\n";

enum { MARK_BATCH = 256 };

typedef struct mark_key {
    char s[64];
} mark_key;

static mark_key mark_key_of(uint64_t id)
{
    mark_key k;
    LL_DETAIL(k.s, sizeof(k.s), "lifeline:session:%llu:owner", (unsigned long long)id);
    return k;
}

/* One script call of up to MARK_BATCH marks. */
static int mark_some(sdk_store *st, const ll_owner_mark *m, size_t n, uint64_t ttl_ms, bool keep_others)
{
    enum { MAX_ARGS = 5 + 2 * MARK_BATCH };
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    mark_key keys[MARK_BATCH];
    char count[24], ttl[24];
    LL_DETAIL(count, sizeof(count), "%zu", n);
    LL_DETAIL(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
    int argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = MARK_LUA;
    argv[argc++] = count;
    for (size_t i = 0; i < n; i++) {
        keys[i] = mark_key_of(m[i].id);
        argv[argc++] = keys[i].s;
    }
    argv[argc++] = ttl;
    argv[argc++] = keep_others ? "1" : "0";
    for (size_t i = 0; i < n; i++) {
        argv[argc++] = m[i].value;
    }
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    uint64_t written = 0;
    return ll_redis_run_int(st, argc, argv, lens, "owner marks", &written);
}

static int redis_mark(sdk_store *st, const ll_owner_mark *m, size_t n, uint64_t ttl_ms, bool keep_others)
{
    for (size_t at = 0; at < n; at += MARK_BATCH) {
        LL_GUARD(mark_some(st, m + at, LL_MIN(n - at, (size_t)MARK_BATCH), ttl_ms, keep_others));
    }
    return 0;
}

static int redis_get_mark(sdk_store *st, uint64_t id, char *buf, size_t len)
{
    mark_key k = mark_key_of(id);
    const char *argv[] = {"GET", k.s};
    const size_t lens[] = {3, strlen(k.s)};
    redisReply *r = NULL;
    LL_GUARD(ll_redis_command(st, 2, argv, lens, "owner mark", &r));
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING) {
        LL_DETAIL(buf, len, "%.*s", (int)r->len, r->str);
    } else {
        rc = ll_recstore_fail(st, SDK_ENOTFOUND, "no owner mark of session %llu", (unsigned long long)id);
    }
    freeReplyObject(r);
    return rc;
}

static int redis_claim_free(sdk_store *st, uint64_t id, uint64_t ttl_ms, uint64_t *epoch)
{
    char k[48], ttl[24];
    LL_DETAIL(k, sizeof(k), "lifeline:session:%llu", (unsigned long long)id);
    LL_DETAIL(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
    const char *argv[] = {"EVAL", CLAIM_FREE_LUA, "2", k, EPOCH_KEY, ttl};
    const size_t lens[] = {4, strlen(CLAIM_FREE_LUA), 1, strlen(k), strlen(EPOCH_KEY), strlen(ttl)};
    return ll_redis_run_int(st, 6, argv, lens, "claim", epoch);
}

static int redis_publish(sdk_store *st, const char *channel, const char *msg, uint64_t *receivers)
{
    const char *argv[] = {"PUBLISH", channel, msg};
    const size_t lens[] = {7, strlen(channel), strlen(msg)};
    return ll_redis_run_int(st, 3, argv, lens, "publish", receivers);
}

/* ---- subscriptions ---- */

struct ll_store_sub {
    redisContext *c;
};

static int sub_failed(ll_store_sub *s, int err)
{
    int code = s->c ? ll_redis_code_of(s->c->err, err) : SDK_ENOMEM;
    redisFree(s->c);
    free(s);
    return code;
}

/* One command on a subscription's own connection: 0 if answered with a reply of type `type`
 * (and, for an array, `elements` of them); EPROTO for another answer (a refused AUTH),
 * else errno of the failed round trip. */
static int sub_call(redisContext *c, int argc, const char **argv, const size_t *lens, int type, size_t elements)
{
    ll_sigpipe_guard g;
    ll_net_sigpipe_block(&g);
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    int err = errno;
    ll_net_sigpipe_restore(&g);
    if (!r) {
        return err ? err : EIO;
    }
    bool ok = r->type == type && (type != REDIS_REPLY_ARRAY || r->elements == elements);
    freeReplyObject(r);
    return ok ? 0 : EPROTO;
}

static int redis_sub_open(sdk_store *st, const char *channel, ll_store_sub **out)
{
    const ll_store_url *u = ll_redis_url(st);
    struct timeval tv = {.tv_sec = st->timeout_ms / 1000, .tv_usec = (st->timeout_ms % 1000) * 1000};
    ll_store_sub *s = calloc(1, sizeof(*s));
    if (!s) {
        return SDK_ENOMEM;
    }
    errno = 0;
    s->c = redisConnectWithTimeout(u->host, u->port, tv);
    if (!s->c || s->c->err || redisSetTimeout(s->c, tv) != REDIS_OK) {
        return sub_failed(s, errno);
    }
    const char *auth[3];
    size_t auth_lens[3], nauth = ll_redis_auth_args(u, auth, auth_lens);
    const char *sub[] = {"SUBSCRIBE", channel};
    const size_t sub_lens[] = {9, strlen(channel)};
    int err = nauth ? sub_call(s->c, (int)nauth, auth, auth_lens, REDIS_REPLY_STATUS, 0) : 0;
    err = err ? err : sub_call(s->c, 2, sub, sub_lens, REDIS_REPLY_ARRAY, 3); /* "subscribe", channel, 1 */
    if (err) {
        return sub_failed(s, err);
    }
    *out = s;
    return 0;
}

static int redis_sub_fd(const ll_store_sub *s)
{
    return s->c->fd;
}

/* A pushed reply: {"message", channel, payload} goes to fn; others are ignored. */
static void pass_message(const redisReply *r, ll_store_msg_fn fn, void *ctx)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
        fn(r->element[2]->str, r->element[2]->len, ctx);
    }
}

static int redis_sub_read(ll_store_sub *s, ll_store_msg_fn fn, void *ctx)
{
    if (redisBufferRead(s->c) != REDIS_OK) { /* readable: read() returns what is there */
        return ll_redis_code_of(s->c->err, errno);
    }
    for (;;) {
        void *r = NULL;
        if (redisGetReplyFromReader(s->c, &r) != REDIS_OK) {
            return SDK_EPROTO;
        }
        if (!r) {
            return 0;
        }
        pass_message(r, fn, ctx);
        freeReplyObject(r);
    }
}

static void redis_sub_close(ll_store_sub *s)
{
    redisFree(s->c);
    free(s);
}

const ll_owner_ops LL_REDIS_OWNER_OPS = {redis_mark,     redis_get_mark, redis_claim_free, redis_publish,
                                         redis_sub_open, redis_sub_fd,   redis_sub_read,   redis_sub_close};
