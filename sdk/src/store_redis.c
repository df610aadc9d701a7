/*
 * The Redis backend of the session store; with store_redis_owner.c the only files that include hiredis.
 *
 * One blocking connection, every round trip bounded by the store's timeout (connect with
 * redisConnectWithTimeout, then redisSetTimeout for each read and write). A failed round trip
 * drops the connection and the next call connects again, so a restarted Redis is picked up
 * without a restart of ours; nothing retries inside a call, so a call's bound stays one
 * timeout (two for the call that reconnects: connect, then SELECT if a DB is named).
 *
 * Keys (lifeline/store.h): "lifeline:session:<id>", a hash of "epoch" and "rec" (the record's
 * header); "lifeline:session:<id>:frames", a list of its unacknowledged frames, two elements per
 * piece of a batch written (the piece's last sequence, then its frames back to back, up to
 * 64 KiB of them); "lifeline:epoch",
 * the counter every claim draws from; and "lifeline:ticketkey:<rotation_ms>:<period>", the TLS
 * ticket keys. A write pushes its batch in one RPUSH and trims whole acknowledged pieces, so a
 * session streaming under sync "always" costs each batch a few commands, whatever its frame
 * count, and no frame byte ever passes through Lua (Redis hashes every byte of a Lua string:
 * about 1.5 us per KiB, measured, and more than the rest of a write). A write with frames is a
 * MULTI of RPUSH and the fencing script, so nobody sees a batch its script has not accepted.
 * The scripts below are the whole fencing protocol: each runs atomically in Redis. EVAL, not
 * EVALSHA: inside MULTI a NOSCRIPT (a flushed script cache, a failover) comes only at EXEC,
 * after RPUSH ran unfenced; sending the script costs about 2 us of Redis CPU per batch.
 */
#include "recstore.h"
#include "store_owner.h"
#include "store_redis.h"

#include "codec.h"
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
/* KEYS[1] session, KEYS[2] its frames: a list holding, for each piece of a batch written (its
 * frames up to CHUNK_MAX bytes), two elements, the piece's last sequence (decimal) and its Data
 * frames back to back (each with its 4-byte big-endian length), oldest first. ARGV[1] epoch,
 * ARGV[2] header, ARGV[3] acked, ARGV[4] "1" to replace every stored frame, ARGV[5] ttl ms,
 * ARGV[6] how many elements this write's MULTI has just pushed (RPUSH, before this script:
 * frame bytes never pass through Lua, whose strings Redis hashes byte by byte on creation).
 * Written only by the owner: anyone else's pushed elements are taken off again, in the same
 * transaction. Trimming pops whole pieces whose last sequence is acked or less; a reader
 * skips what is left of the first one (and anything a repeated write pushed twice). Returns
 * the owner epoch found (0: none). Sequences pass through Lua numbers: exact below 2^53,
 * which no session reaches. */
static const char WRITE_LUA[] =
    "local e = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')\n"
    "local pushed = tonumber(ARGV[6])\n"
    "if e == 0 or e ~= tonumber(ARGV[1]) then\n"
    "  if pushed > 0 then redis.call('LTRIM', KEYS[2], 0, -pushed - 1) end\n"
    "  return e\n"
    "end\n"
    "if ARGV[4] == '1' then\n"
    "  if pushed > 0 then redis.call('LTRIM', KEYS[2], -pushed, -1) else redis.call('DEL', KEYS[2]) end\n"
    "else\n"
    "  local acked, drop = tonumber(ARGV[3]), 0\n"
    "  while true do\n"
    "    local last = tonumber(redis.call('LINDEX', KEYS[2], drop) or '')\n"
    "    if not last or last > acked then break end\n"
    "    drop = drop + 2\n"
    "  end\n"
    "  if drop > 0 then redis.call('LTRIM', KEYS[2], drop, -1) end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'rec', ARGV[2])\n"
    "if tonumber(ARGV[5]) > 0 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
    "  redis.call('PEXPIRE', KEYS[2], ARGV[5])\n"
    "end\n"
    "return e\n";
/* KEYS[1] session, KEYS[2] frames; ARGV[1] epoch. Deleted only by the owner; returns the
 * owner epoch found. */
static const char DEL_LUA[] = "local e = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')\n"
                              "if e ~= 0 and e == tonumber(ARGV[1]) then redis.call('DEL', KEYS[1], KEYS[2]) end\n"
                              "return e\n";

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

size_t ll_redis_auth_args(const ll_store_url *u, const char *argv[3], size_t lens[3])
{
    if (!u->password[0]) {
        return 0;
    }
    size_t n = 0;
    argv[n] = "AUTH";
    lens[n++] = 4;
    if (u->user[0]) {
        argv[n] = u->user;
        lens[n++] = strlen(u->user);
    }
    argv[n] = u->password;
    lens[n++] = strlen(u->password);
    return n;
}

/* A new connection's AUTH (with credentials) and SELECT (a DB other than 0): refused, the
 * connection goes, since it would work as someone else or write elsewhere. */
static int set_up(sdk_store *st)
{
    redis_be *b = st->be;
    const char *auth[3];
    size_t auth_lens[3], nauth = ll_redis_auth_args(&b->url, auth, auth_lens);
    char db[16];
    LL_DETAIL(db, sizeof(db), "%u", (unsigned)b->url.db);
    const char *select[] = {"SELECT", db};
    const size_t select_lens[] = {6, strlen(db)};
    redisReply *r = NULL;
    int rc = nauth ? roundtrip(st, (int)nauth, auth, auth_lens, "AUTH", &r) : 0;
    freeReplyObject(r);
    r = NULL;
    if (rc == 0 && b->url.db != 0) {
        rc = roundtrip(st, 2, select, select_lens, "SELECT", &r);
        freeReplyObject(r);
    }
    if (rc != 0 && b->c) {
        redisFree(b->c);
        b->c = NULL;
    }
    return rc;
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
    return set_up(st);
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

/* Frames per list element at most this many bytes (a bigger frame is an element alone):
 * Redis copies each element into an allocation of its own, and elements of a few MB, of a
 * new size every batch, each cost it fresh pages (measured: 1.8 us of Redis CPU per KiB for
 * whole batches of 0.1-2.9 MB, 1.1 for the same in 64 KiB pieces). It also lets trimming
 * free memory before a whole large batch is acknowledged. */
#define CHUNK_MAX (64u * 1024)

/* One RPUSH of a write's frames, cut at frame boundaries into pieces of up to CHUNK_MAX
 * bytes, each after its last sequence: arguments for redisAppendCommandArgv. */
typedef struct push_args {
    size_t argc;
    const char **argv;
    size_t *lens;
    num *tags;
} push_args;

static void push_args_free(push_args *p)
{
    free(p->argv);
    free(p->lens);
    free(p->tags);
}

/* Fill p for w (w->nframes > 0) onto frames key f; false if out of memory. */
static bool push_args_of(const ll_recwrite *w, const key *f, push_args *p)
{
    size_t max = 2 + 2 * (size_t)w->nframes;
    *p = (push_args){.argv = malloc(max * sizeof(*p->argv)),
                     .lens = malloc(max * sizeof(*p->lens)),
                     .tags = malloc(w->nframes * sizeof(*p->tags))};
    if (!p->argv || !p->lens || !p->tags) {
        push_args_free(p);
        return false;
    }
    p->argv[0] = "RPUSH";
    p->lens[0] = 5;
    p->argv[1] = f->s;
    p->lens[1] = strlen(f->s);
    p->argc = 2;
    size_t off = 0, ntags = 0;
    for (uint64_t seq = w->first_seq; off < w->frames_len; ntags++) {
        size_t start = off;
        do { /* frames_span checked them whole */
            off += LL_FRAME_HEADER + (size_t)ll_get_be32(w->frames + off);
            seq++;
        } while (off < w->frames_len && off - start + LL_FRAME_HEADER + ll_get_be32(w->frames + off) <= CHUNK_MAX);
        p->tags[ntags] = num_of(seq - 1);
        p->argv[p->argc] = p->tags[ntags].s;
        p->lens[p->argc++] = strlen(p->tags[ntags].s);
        p->argv[p->argc] = (const char *)w->frames + start;
        p->lens[p->argc++] = off - start;
    }
    return true;
}

/* Queue one write on the connection's output (hiredis copies the arguments): with frames,
 * MULTI, RPUSH of the batch's pieces, the script, EXEC; without, the script alone. */
static int append_write(redisContext *c, const ll_recwrite *w, uint64_t ttl_ms)
{
    key k = session_key(w->id), f = frames_key(w->id);
    num e = num_of(w->epoch), a = num_of(w->acked), ttl = num_of(ttl_ms);
    push_args p = {0};
    if (w->nframes > 0 && !push_args_of(w, &f, &p)) {
        return SDK_ENOMEM;
    }
    num pushed = num_of(p.argc ? p.argc - 2 : 0);
    const char *argv[] = {"EVAL", WRITE_LUA, "2", k.s, f.s, e.s, (const char *)w->header, a.s, w->replace ? "1" : "0",
                          ttl.s,  pushed.s};
    const size_t lens[] = {4,
                           strlen(WRITE_LUA),
                           1,
                           strlen(k.s),
                           strlen(f.s),
                           strlen(e.s),
                           w->header_len,
                           strlen(a.s),
                           1,
                           strlen(ttl.s),
                           strlen(pushed.s)};
    bool ok = !p.argc || (redisAppendCommand(c, "MULTI") == REDIS_OK &&
                          redisAppendCommandArgv(c, (int)p.argc, p.argv, p.lens) == REDIS_OK);
    ok = ok && redisAppendCommandArgv(c, 11, argv, lens) == REDIS_OK;
    ok = ok && (!p.argc || redisAppendCommand(c, "EXEC") == REDIS_OK);
    push_args_free(&p);
    return ok ? 0 : SDK_ENOMEM;
}

/* How many replies append_write's commands get. */
static size_t replies_of(const ll_recwrite *w)
{
    return w->nframes > 0 ? 4 : 1;
}

/* The owner epoch in a write's last reply: the script's integer, or EXEC's array of RPUSH's
 * and the script's answers (an error reply, such as EXECABORT, fails it). */
static int owner_of(sdk_store *st, const redisReply *r, const ll_recwrite *w, uint64_t *owner)
{
    if (w->nframes == 0 || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        return int_of(st, r, "write", owner);
    }
    if (r->element[0]->type == REDIS_REPLY_ERROR) {
        return int_of(st, r->element[0], "write", owner);
    }
    return int_of(st, r->element[1], "write", owner);
}

/* Read the next n replies of the pipeline into rs (the caller frees them); on a failure of the
 * connection, every rs[i] is NULL. */
static int read_replies(sdk_store *st, redisReply **rs, size_t n, const char *what)
{
    redis_be *b = st->be;
    ll_sigpipe_guard g;
    ll_net_sigpipe_block(&g); /* the first read sends the pipeline */
    for (size_t i = 0; i < n; i++) {
        if (redisGetReply(b->c, (void **)&rs[i]) != REDIS_OK) {
            int err = errno;
            ll_net_sigpipe_restore(&g);
            for (size_t k = 0; k < i; k++) {
                freeReplyObject(rs[k]);
                rs[k] = NULL;
            }
            return context_failed(st, b, err, what);
        }
    }
    ll_net_sigpipe_restore(&g);
    return 0;
}

/* Every write in one pipeline: all sent, then every answer read. */
static int redis_write(sdk_store *st, ll_recwrite *w, size_t n, uint64_t ttl_ms)
{
    redis_be *b = st->be;
    if (!b->c) {
        LL_GUARD(connect_redis(st));
    }
    size_t nreplies = 0;
    for (size_t i = 0; i < n; i++) {
        nreplies += replies_of(&w[i]);
    }
    redisReply **rs = calloc(nreplies ? nreplies : 1, sizeof(*rs));
    for (size_t i = 0; rs && i < n; i++) {
        if (append_write(b->c, &w[i], ttl_ms) != 0) {
            free(rs);
            rs = NULL;
        }
    }
    if (!rs) { /* a half-queued pipeline cannot be sent */
        redisFree(b->c);
        b->c = NULL;
        return ll_recstore_fail(st, SDK_ENOMEM, "out of memory writing %zu sessions", n);
    }
    int rc = read_replies(st, rs, nreplies, "write");
    for (size_t i = 0, at = 0; rc == 0 && i < n; i++) {
        at += replies_of(&w[i]);
        rc = owner_of(st, rs[at - 1], &w[i], &w[i].owner);
    }
    for (size_t i = 0; i < nreplies; i++) {
        if (rs[i]) {
            freeReplyObject(rs[i]);
        }
    }
    free(rs);
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

/* Where the k-th of the frames at p (len bytes) starts, into *off, and how many whole frames
 * there are, into *count: false unless they fill the len bytes exactly. */
static bool walk_frames(const uint8_t *p, size_t len, uint64_t k, size_t *off, uint64_t *count)
{
    size_t at = 0;
    for (*count = 0; at < len; (*count)++) {
        if (*count == k) {
            *off = at;
        }
        if (len - at < LL_FRAME_HEADER || (size_t)ll_get_be32(p + at) > len - at - LL_FRAME_HEADER) {
            return false;
        }
        at += LL_FRAME_HEADER + (size_t)ll_get_be32(p + at);
    }
    return true;
}

/* One stored batch (its last sequence as text, then its frames), with the frames after
 * *next - 1 appended to out; *next then follows its last. SDK_EPROTO for a batch that is
 * malformed or leaves a gap. */
static int take_batch(const redisReply *tag, const redisReply *batch, uint64_t *next, ll_buf *out, uint64_t *n)
{
    char *end = NULL;
    errno = 0;
    uint64_t last = tag->type == REDIS_REPLY_STRING && tag->len > 0 ? strtoull(tag->str, &end, 10) : 0;
    LL_ENSURE(end == tag->str + tag->len && errno == 0 && batch->type == REDIS_REPLY_STRING, SDK_EPROTO);
    if (last < *next) { /* held already: acknowledged, or pushed twice */
        return 0;
    }
    uint64_t count = 0;
    size_t off = 0;
    LL_ENSURE(walk_frames((const uint8_t *)batch->str, batch->len, 0, &off, &count) && count > 0 && count <= last,
              SDK_EPROTO);
    uint64_t first = last - count + 1;
    LL_ENSURE(first <= *next, SDK_EPROTO); /* frames before this batch are missing */
    (void)walk_frames((const uint8_t *)batch->str, batch->len, *next - first, &off, &count);
    LL_GUARD(ll_buf_append(out, batch->str + off, batch->len - off));
    *n += last - *next + 1;
    *next = last + 1;
    return 0;
}

/* The transaction's answer, {header, {last, frames, last, frames, ...}}, as one record of the
 * frames after the header's acked appended to out. */
static int record_of(sdk_store *st, const redisReply *r, uint64_t id, ll_buf *out)
{
    const redisReply *hdr = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[0] : NULL;
    const redisReply *list = hdr ? r->element[1] : NULL;
    uint64_t acked = 0, n = 0;
    int rc = hdr && hdr->type == REDIS_REPLY_STRING && list->type == REDIS_REPLY_ARRAY && list->elements % 2 == 0
                 ? ll_sessrec_header_acked((const uint8_t *)hdr->str, hdr->len, &acked)
                 : SDK_EPROTO;
    ll_buf frames = {0};
    for (uint64_t i = 0, next = acked + 1; rc == 0 && i < list->elements; i += 2) {
        rc = take_batch(list->element[i], list->element[i + 1], &next, &frames, &n);
    }
    rc = rc == 0 && n > UINT32_MAX ? SDK_EPROTO : rc;
    if (rc == 0) {
        rc = ll_sessrec_assemble((const uint8_t *)hdr->str, hdr->len, ll_buf_head(&frames), ll_buf_size(&frames),
                                 (uint32_t)n, out);
    }
    ll_buf_free(&frames);
    if (rc != 0) {
        ll_recstore_fail(st, rc, "redis: get of session %llu: %s", (unsigned long long)id,
                         rc == SDK_ENOMEM ? "out of memory" : "not a session record");
    }
    return rc;
}

/* The header and every stored batch, read in one transaction (no Lua: its strings would hash
 * every byte of the frames). */
static int redis_get(sdk_store *st, uint64_t id, ll_buf *out)
{
    redis_be *b = st->be;
    if (!b->c) {
        LL_GUARD(connect_redis(st));
    }
    key k = session_key(id), f = frames_key(id);
    if (redisAppendCommand(b->c, "MULTI") != REDIS_OK || redisAppendCommand(b->c, "HGET %s rec", k.s) != REDIS_OK ||
        redisAppendCommand(b->c, "LRANGE %s 0 -1", f.s) != REDIS_OK || redisAppendCommand(b->c, "EXEC") != REDIS_OK) {
        redisFree(b->c); /* a half-queued pipeline cannot be sent */
        b->c = NULL;
        return ll_recstore_fail(st, SDK_ENOMEM, "out of memory reading session %llu", (unsigned long long)id);
    }
    redisReply *rs[4] = {0};
    LL_GUARD(read_replies(st, rs, 4, "get"));
    const redisReply *r = rs[3];
    int rc = r->type == REDIS_REPLY_ERROR
                 ? ll_recstore_fail(st, SDK_EIO, "redis %s:%u: get: %s", b->url.host, (unsigned)b->url.port, r->str)
             : r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_NIL
                 ? ll_recstore_fail(st, SDK_ENOTFOUND, "no record of session %llu", (unsigned long long)id)
                 : record_of(st, r, id, out);
    for (size_t i = 0; i < 4; i++) {
        freeReplyObject(rs[i]);
    }
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
    explicit_bzero(b->url.password, sizeof(b->url.password)); /* freed memory keeps no secret */
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

int ll_redis_run_int(sdk_store *st, int argc, const char **argv, const size_t *lens, const char *what, uint64_t *out)
{
    return run_int(st, argc, argv, lens, what, out);
}

int ll_redis_code_of(int kind, int err)
{
    return code_of(kind, err);
}
