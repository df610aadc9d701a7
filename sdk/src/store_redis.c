/*
 * The Redis backend of the session store; with store_redis_owner.c the only files that include hiredis.
 *
 * One blocking connection, every round trip bounded by the store's timeout (connect with
 * redisConnectWithTimeout, then redisSetTimeout for each read and write). A failed round trip
 * drops the connection and the next call connects again, so a restarted Redis is picked up
 * without a restart of ours; nothing retries inside a call, so a call's bound stays one
 * timeout (two for the call that reconnects: connect, then SELECT if a DB is named).
 *
 * Keys (lifeline/store.h): "lifeline:session:<id>", a hash of "epoch", "rec" (the record's
 * header) and "acked"; "lifeline:session:<id>:frames", a list of its unacknowledged frames;
 * "lifeline:epoch", the counter every claim draws from; and
 * "lifeline:ticketkey:<rotation_ms>:<period>", the TLS ticket keys. A write appends new frames and
 * trims acknowledged ones, so a session streaming under sync "always" costs each batch what
 * changed, not its whole queue. The scripts below are the whole
 * fencing protocol: each runs atomically in Redis.
 */
#include "recstore.h"
#include "store_owner.h"
#include "store_redis.h"

#include "ll.h"
#include "net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EPOCH_KEY "lifeline:epoch"

/* KEYS[1] session, KEYS[2] counter; ARGV[1] ttl ms (0: none). A new epoch, never seen before
 * (even if the session's key expired meanwhile), becomes the session's owner. */
static const char CLAIM_LUA[] = "local e = redis.call('INCR', KEYS[2])\n"
                                "redis.call('HSET', KEYS[1], 'epoch', e)\n"
                                "if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end\n"
                                "return e\n";
/* KEYS[1] session, KEYS[2] its frames (a list, one Data frame per element, the first the
 * one after "acked"); ARGV[1] epoch, ARGV[2] header, ARGV[3] acked, ARGV[4] frames to append
 * (back to back, each with its 4-byte big-endian length), ARGV[5] "1" to replace every stored
 * frame, ARGV[6] ttl ms. Written only by the owner; returns the owner epoch found (0: none).
 * Sequences pass through Lua numbers: exact below 2^53, which no session reaches. */
static const char WRITE_LUA[] =
    "local e = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')\n"
    "if e == 0 or e ~= tonumber(ARGV[1]) then return e end\n"
    "if ARGV[5] == '1' then redis.call('DEL', KEYS[2]) else\n"
    "  local drop = tonumber(ARGV[3]) - tonumber(redis.call('HGET', KEYS[1], 'acked') or '0')\n"
    "  if drop > 0 then redis.call('LTRIM', KEYS[2], drop, -1) end\n"
    "end\n"
    "local blob, pos = ARGV[4], 1\n"
    "while pos <= #blob do\n"
    "  local len = struct.unpack('>I4', blob, pos)\n"
    "  redis.call('RPUSH', KEYS[2], string.sub(blob, pos, pos + 3 + len))\n"
    "  pos = pos + 4 + len\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'acked', ARGV[3])\n"
    "if tonumber(ARGV[6]) > 0 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[6])\n"
    "  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[6]) end\n"
    "end\n"
    "return e\n";
/* KEYS[1] session, KEYS[2] frames; ARGV[1] epoch. Deleted only by the owner; returns the
 * owner epoch found. */
static const char DEL_LUA[] = "local e = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')\n"
                              "if e ~= 0 and e == tonumber(ARGV[1]) then redis.call('DEL', KEYS[1], KEYS[2]) end\n"
                              "return e\n";
/* KEYS[1] session, KEYS[2] frames: {header, {frames...}}, or nil without a record. */
static const char GET_LUA[] = "local rec = redis.call('HGET', KEYS[1], 'rec')\n"
                              "if not rec then return false end\n"
                              "return {rec, redis.call('LRANGE', KEYS[2], 0, -1)}\n";

/* KEYS: one ticket key per period; ARGV[1] ttl ms, ARGV[1 + i] a fresh key for KEYS[i]. Each
 * period's key is set only if it has none (the first instance to ask wins), then read back:
 * every instance ends up with the same keys. */
static const char TICKET_KEYS_LUA[] = "local out = {}\n"
                                      "for i, k in ipairs(KEYS) do\n"
                                      "  redis.call('SET', k, ARGV[i + 1], 'NX', 'PX', ARGV[1])\n"
                                      "  out[i] = redis.call('GET', k)\n"
                                      "end\n"
                                      "return out\n";

typedef struct redis_be {
    redisContext *c; /* NULL: connect on the next call */
    ll_store_url url;
} redis_be;

static struct timeval timeout_of(const sdk_store *st)
{
    return (struct timeval){.tv_sec = st->timeout_ms / 1000, .tv_usec = (st->timeout_ms % 1000) * 1000};
}

static int code_of(int kind, int err)
{
    if (kind == REDIS_ERR_EOF) {
        return SDK_EDISCONNECTED;
    }
    if (kind == REDIS_ERR_OOM) {
        return SDK_ENOMEM;
    }
    if (kind != REDIS_ERR_IO) {
        return SDK_EIO;
    }
    switch (err) {
    case EAGAIN: /* SO_RCVTIMEO / SO_SNDTIMEO ran out (EWOULDBLOCK is the same on Linux) */
    case ETIMEDOUT:
    case EINPROGRESS:
        return SDK_ETIMEDOUT;
    case ECONNREFUSED:
        return SDK_ECONNREFUSED;
    case ECONNRESET:
    case EPIPE:
        return SDK_EDISCONNECTED;
    default:
        return SDK_ECONNECT;
    }
}

/* The connection failed doing `what`: record why, drop it (the next call reconnects). */
static int context_failed(sdk_store *st, redis_be *b, int err, const char *what)
{
    int code = code_of(b->c->err, err);
    if (code == SDK_ETIMEDOUT) {
        ll_recstore_fail(st, code, "redis %s:%u: %s: no answer within %u ms", b->url.host, (unsigned)b->url.port, what,
                         (unsigned)st->timeout_ms);
    } else {
        ll_recstore_fail(st, code, "redis %s:%u: %s: %s", b->url.host, (unsigned)b->url.port, what, b->c->errstr);
    }
    redisFree(b->c);
    b->c = NULL;
    return code;
}

/* One command on the open connection. On 0, *out is a reply that is not an error. */
static int roundtrip(sdk_store *st, int argc, const char **argv, const size_t *lens, const char *what, redisReply **out)
{
    redis_be *b = st->be;
    ll_sigpipe_guard g;
    ll_net_sigpipe_block(&g);
    redisReply *r = redisCommandArgv(b->c, argc, argv, lens);
    int err = errno;
    ll_net_sigpipe_restore(&g);
    if (!r) {
        return context_failed(st, b, err, what);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int rc = ll_recstore_fail(st, SDK_EIO, "redis %s:%u: %s: %s", b->url.host, (unsigned)b->url.port, what, r->str);
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

static int connect_redis(sdk_store *st)
{
    redis_be *b = st->be;
    errno = 0;
    b->c = redisConnectWithTimeout(b->url.host, b->url.port, timeout_of(st));
    int err = errno;
    if (!b->c) {
        return ll_recstore_fail(st, SDK_ENOMEM, "redis %s:%u: out of memory", b->url.host, (unsigned)b->url.port);
    }
    if (b->c->err == REDIS_ERR_OTHER) { /* hiredis's connect says so when the name did not resolve */
        int rc =
            ll_recstore_fail(st, SDK_ERESOLVE, "redis %s:%u: %s", b->url.host, (unsigned)b->url.port, b->c->errstr);
        redisFree(b->c);
        b->c = NULL;
        return rc;
    }
    if (b->c->err || redisSetTimeout(b->c, timeout_of(st)) != REDIS_OK) {
        return context_failed(st, b, b->c->err ? err : errno, "connect");
    }
    if (b->url.db == 0) {
        return 0;
    }
    char db[16];
    LL_DETAIL(db, sizeof(db), "%u", (unsigned)b->url.db);
    const char *argv[] = {"SELECT", db};
    const size_t lens[] = {6, strlen(db)};
    redisReply *r = NULL;
    int rc = roundtrip(st, 2, argv, lens, "SELECT", &r);
    freeReplyObject(r);
    if (rc != 0 && b->c) { /* the DB is refused: this connection would write elsewhere */
        redisFree(b->c);
        b->c = NULL;
    }
    return rc;
}

/* One command, connecting first if the last call dropped the connection. */
static int command(sdk_store *st, int argc, const char **argv, const size_t *lens, const char *what, redisReply **out)
{
    redis_be *b = st->be;
    if (!b->c) {
        LL_GUARD(connect_redis(st));
    }
    return roundtrip(st, argc, argv, lens, what, out);
}

/* An integer answer into *out, or a failure naming `what`. */
static int int_of(sdk_store *st, const redisReply *r, const char *what, uint64_t *out)
{
    redis_be *b = st->be;
    if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
        *out = (uint64_t)r->integer;
        return 0;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        return ll_recstore_fail(st, SDK_EIO, "redis %s:%u: %s: %s", b->url.host, (unsigned)b->url.port, what, r->str);
    }
    return ll_recstore_fail(st, SDK_EPROTO, "redis %s:%u: %s: unexpected reply of type %d", b->url.host,
                            (unsigned)b->url.port, what, r->type);
}

/* A command expecting an integer answer. */
static int run_int(sdk_store *st, int argc, const char **argv, const size_t *lens, const char *what, uint64_t *out)
{
    redisReply *r = NULL;
    LL_GUARD(command(st, argc, argv, lens, what, &r));
    int rc = int_of(st, r, what, out);
    freeReplyObject(r);
    return rc;
}

/* Decimal strings for a command's arguments. */
typedef struct num {
    char s[24];
} num;
static num num_of(uint64_t v)
{
    num n;
    LL_DETAIL(n.s, sizeof(n.s), "%llu", (unsigned long long)v);
    return n;
}

#define KEY_PREFIX    "lifeline:session:"
#define FRAMES_SUFFIX ":frames"
typedef struct key {
    char s[sizeof(KEY_PREFIX) + 24 + sizeof(FRAMES_SUFFIX)];
} key;
static key session_key(uint64_t id)
{
    key k;
    LL_DETAIL(k.s, sizeof(k.s), KEY_PREFIX "%s", num_of(id).s);
    return k;
}
static key frames_key(uint64_t id)
{
    key k;
    LL_DETAIL(k.s, sizeof(k.s), KEY_PREFIX "%s" FRAMES_SUFFIX, num_of(id).s);
    return k;
}

static int redis_claim(sdk_store *st, uint64_t id, uint64_t ttl_ms, uint64_t *epoch)
{
    key k = session_key(id);
    num ttl = num_of(ttl_ms);
    const char *argv[] = {"EVAL", CLAIM_LUA, "2", k.s, EPOCH_KEY, ttl.s};
    const size_t lens[] = {4, strlen(CLAIM_LUA), 1, strlen(k.s), strlen(EPOCH_KEY), strlen(ttl.s)};
    return run_int(st, 6, argv, lens, "claim", epoch);
}

/* Queue one write's script on the connection's output (hiredis copies the arguments). */
static int append_write(redisContext *c, const ll_recwrite *w, uint64_t ttl_ms)
{
    key k = session_key(w->id), f = frames_key(w->id);
    num e = num_of(w->epoch), a = num_of(w->acked), ttl = num_of(ttl_ms);
    const char *frames = w->frames_len ? (const char *)w->frames : "";
    const char *argv[] = {
        "EVAL", WRITE_LUA, "2", k.s, f.s, e.s, (const char *)w->header, a.s, frames, w->replace ? "1" : "0", ttl.s};
    const size_t lens[] = {4,           strlen(WRITE_LUA), 1, strlen(k.s),  strlen(f.s), strlen(e.s), w->header_len,
                           strlen(a.s), w->frames_len,     1, strlen(ttl.s)};
    return redisAppendCommandArgv(c, 11, argv, lens) == REDIS_OK ? 0 : SDK_ENOMEM;
}

/* Every write's script in one pipeline: all sent, then every answer read. */
static int redis_write(sdk_store *st, ll_recwrite *w, size_t n, uint64_t ttl_ms)
{
    redis_be *b = st->be;
    if (!b->c) {
        LL_GUARD(connect_redis(st));
    }
    for (size_t i = 0; i < n; i++) {
        if (append_write(b->c, &w[i], ttl_ms) != 0) { /* a half-queued pipeline cannot be sent */
            redisFree(b->c);
            b->c = NULL;
            return ll_recstore_fail(st, SDK_ENOMEM, "out of memory writing %zu sessions", n);
        }
    }
    ll_sigpipe_guard g;
    ll_net_sigpipe_block(&g);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(b->c, (void **)&r) != REDIS_OK) {
            int err = errno;
            ll_net_sigpipe_restore(&g);
            return context_failed(st, b, err, "write");
        }
        if (rc == 0) {
            rc = int_of(st, r, "write", &w[i].owner);
        }
        freeReplyObject(r);
    }
    ll_net_sigpipe_restore(&g);
    return rc;
}

static int redis_del(sdk_store *st, uint64_t id, uint64_t epoch, uint64_t *owner)
{
    key k = session_key(id), f = frames_key(id);
    num e = num_of(epoch);
    const char *argv[] = {"EVAL", DEL_LUA, "2", k.s, f.s, e.s};
    const size_t lens[] = {4, strlen(DEL_LUA), 1, strlen(k.s), strlen(f.s), strlen(e.s)};
    return run_int(st, 6, argv, lens, "delete", owner);
}

/* GET_LUA's answer, {header, {frames...}}, as one record appended to out. */
static int record_of(sdk_store *st, const redisReply *r, uint64_t id, ll_buf *out)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY || r->element[1]->elements > UINT32_MAX) {
        return ll_recstore_fail(st, SDK_EPROTO, "redis: get of session %llu: unexpected reply", (unsigned long long)id);
    }
    const redisReply *fr = r->element[1];
    ll_buf frames = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < fr->elements; i++) {
        rc = fr->element[i]->type != REDIS_REPLY_STRING
                 ? SDK_EPROTO
                 : ll_buf_append(&frames, fr->element[i]->str, fr->element[i]->len);
    }
    if (rc == 0) {
        rc = ll_sessrec_assemble((const uint8_t *)r->element[0]->str, r->element[0]->len, ll_buf_head(&frames),
                                 ll_buf_size(&frames), (uint32_t)fr->elements, out);
    }
    ll_buf_free(&frames);
    if (rc != 0) {
        ll_recstore_fail(st, rc, "redis: get of session %llu: %s", (unsigned long long)id,
                         rc == SDK_ENOMEM ? "out of memory" : "not a session record");
    }
    return rc;
}

static int redis_get(sdk_store *st, uint64_t id, ll_buf *out)
{
    key k = session_key(id), f = frames_key(id);
    const char *argv[] = {"EVAL", GET_LUA, "2", k.s, f.s};
    const size_t lens[] = {4, strlen(GET_LUA), 1, strlen(k.s), strlen(f.s)};
    redisReply *r = NULL;
    LL_GUARD(command(st, 5, argv, lens, "get", &r));
    int rc = r->type == REDIS_REPLY_NIL
                 ? ll_recstore_fail(st, SDK_ENOTFOUND, "no record of session %llu", (unsigned long long)id)
                 : record_of(st, r, id, out);
    freeReplyObject(r);
    return rc;
}

#define TICKET_KEY_PREFIX "lifeline:ticketkey:"
typedef struct tkey {
    char s[sizeof(TICKET_KEY_PREFIX) + 48];
} tkey;
static tkey ticket_key_name(uint64_t rotation_ms, uint64_t period)
{
    tkey k;
    LL_DETAIL(k.s, sizeof(k.s), TICKET_KEY_PREFIX "%s:%s", num_of(rotation_ms).s, num_of(period).s);
    return k;
}

/* The script's answer: n strings of LL_TK_BLOB_LEN bytes, into blobs. */
static int take_ticket_keys(sdk_store *st, const redisReply *r, uint8_t (*blobs)[LL_TK_BLOB_LEN], size_t n)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        return ll_recstore_fail(st, SDK_EPROTO, "redis: ticket keys: unexpected reply of type %d", r->type);
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len != LL_TK_BLOB_LEN) {
            return ll_recstore_fail(st, SDK_EPROTO, "redis: ticket key %zu is not a key of %d bytes", i,
                                    LL_TK_BLOB_LEN);
        }
        memcpy(blobs[i], e->str, LL_TK_BLOB_LEN);
    }
    return 0;
}

static int redis_ticket_keys(sdk_store *st, uint64_t rotation_ms, const uint64_t *periods,
                             uint8_t (*blobs)[LL_TK_BLOB_LEN], size_t n, uint64_t ttl_ms)
{
    enum { MAX_ARGS = 4 + 2 * LL_TK_LIVE_MAX };
    tkey names[LL_TK_LIVE_MAX];
    num count = num_of(n), ttl = num_of(ttl_ms);
    const char *argv[MAX_ARGS] = {"EVAL", TICKET_KEYS_LUA, count.s};
    size_t lens[MAX_ARGS] = {4, strlen(TICKET_KEYS_LUA), strlen(count.s)};
    int argc = 3;
    for (size_t i = 0; i < n; i++, argc++) {
        names[i] = ticket_key_name(rotation_ms, periods[i]);
        argv[argc] = names[i].s;
        lens[argc] = strlen(names[i].s);
    }
    argv[argc] = ttl.s;
    lens[argc++] = strlen(ttl.s);
    for (size_t i = 0; i < n; i++, argc++) {
        argv[argc] = (const char *)blobs[i];
        lens[argc] = LL_TK_BLOB_LEN;
    }
    redisReply *r = NULL;
    LL_GUARD(command(st, argc, argv, lens, "ticket keys", &r));
    int rc = take_ticket_keys(st, r, blobs, n);
    freeReplyObject(r);
    return rc;
}

static void redis_close(sdk_store *st)
{
    redis_be *b = st->be;
    if (b->c) {
        redisFree(b->c);
    }
    free(b);
}

static const ll_recstore_ops REDIS_OPS = {redis_claim, redis_write, redis_get,
                                          redis_del,   redis_close, redis_ticket_keys};

int ll_store_redis_open(sdk_store *st, const ll_store_url *u)
{
    redis_be *b = calloc(1, sizeof(*b));
    if (!b) {
        return ll_recstore_fail(st, SDK_ENOMEM, "out of memory opening a redis store");
    }
    b->url = *u;
    st->be = b;
    st->ops = &REDIS_OPS;
    st->owner_ops = &LL_REDIS_OWNER_OPS;
    int rc = connect_redis(st);
    if (rc != 0) {
        redis_close(st);
        st->be = NULL;
    }
    return rc;
}

int ll_redis_command(sdk_store *st, int argc, const char **argv, const size_t *lens, const char *what, redisReply **out)
{
    return command(st, argc, argv, lens, what, out);
}

const ll_store_url *ll_redis_url(const sdk_store *st)
{
    return &((const redis_be *)st->be)->url;
}

int ll_redis_code_of(int kind, int err)
{
    return code_of(kind, err);
}
