/*
 * The memory backend of the session store: this process only, with the same fencing and
 * expiry rules as Redis, so that code written against one behaves the same on the other.
 * Entries live in the id map of store.c; the front's lock (recstore.h) guards them.
 */
#include "recstore.h"

#include "codec.h"
#include "ll.h"
#include "net.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

typedef struct mem_entry {
    uint64_t epoch;
    uint64_t expires_ms; /* monotonic; 0: never */
    bool written;        /* false: claimed, never written */
    ll_buf header;       /* the record's header (ll_sessrec_encode_header) */
    ll_buf frames;       /* its frames back to back, the first the one after acked */
    uint32_t nframes;
    uint64_t acked;
} mem_entry;

/* A TLS ticket key of one period of one rotation (few: a handful per server). */
typedef struct mem_ticket_key {
    uint64_t rotation_ms, period;
    uint64_t expires_ms; /* monotonic */
    uint8_t blob[LL_TK_BLOB_LEN];
} mem_ticket_key;

typedef struct mem_be {
    ll_store entries;    /* id -> mem_entry */
    uint64_t last_epoch; /* epochs never repeat, as Redis's counter key */
    mem_ticket_key *tkeys;
    size_t ntkeys, tkeys_cap;
} mem_be;

static void free_entry(void *val, void *ctx)
{
    (void)ctx;
    mem_entry *e = val;
    ll_buf_free(&e->header);
    ll_buf_free(&e->frames);
    free(e);
}

/* The live entry of id, or NULL; an expired one is removed first, as Redis would have. */
static mem_entry *live(mem_be *b, uint64_t id)
{
    mem_entry *e = ll_store_get(&b->entries, id);
    if (e && e->expires_ms && ll_now_ms() >= e->expires_ms) {
        free_entry(ll_store_del(&b->entries, id), NULL);
        e = NULL;
    }
    return e;
}

static void touch(mem_entry *e, uint64_t ttl_ms)
{
    if (ttl_ms > 0) {
        e->expires_ms = ll_now_ms() + ttl_ms;
    }
}

static int mem_claim(sdk_store *st, uint64_t id, uint64_t ttl_ms, uint64_t *epoch)
{
    mem_be *b = st->be;
    mem_entry *e = live(b, id);
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e || ll_store_put(&b->entries, id, e) != 0) {
            free(e);
            return ll_recstore_fail(st, SDK_ENOMEM, "out of memory claiming session %llu", (unsigned long long)id);
        }
    }
    e->epoch = *epoch = ++b->last_epoch;
    touch(e, ttl_ms);
    return 0;
}

/* Drop the n oldest stored frames (all of them if there are fewer). */
static void drop_frames(mem_entry *e, uint64_t n)
{
    const uint8_t *p = ll_buf_head(&e->frames);
    size_t len = ll_buf_size(&e->frames), off = 0;
    for (; n > 0 && e->nframes > 0 && len - off >= LL_FRAME_HEADER; n--, e->nframes--) {
        off += LL_FRAME_HEADER + (size_t)ll_get_be32(p + off);
    }
    ll_buf_consume(&e->frames, LL_MIN(off, len));
}

/* Where the frames of w that the entry does not hold yet start (the store's Redis files the
 * same way: a write sent again after a lost answer adds nothing twice); into *skip, how many
 * it holds. held_last: the last sequence the entry holds. */
static size_t new_frames_at(const ll_recwrite *w, uint64_t held_last, uint32_t *skip)
{
    *skip = w->nframes > 0 && held_last >= w->first_seq
                ? (uint32_t)LL_MIN((uint64_t)w->nframes, held_last - w->first_seq + 1)
                : 0;
    size_t off = 0;
    for (uint32_t i = 0; i < *skip; i++) {
        off += LL_FRAME_HEADER + (size_t)ll_get_be32(w->frames + off);
    }
    return off;
}

static int apply(mem_entry *e, const ll_recwrite *w)
{
    ll_buf header = {0};
    if (ll_buf_append(&header, w->header, w->header_len) != 0 || ll_buf_reserve(&e->frames, w->frames_len) != 0) {
        ll_buf_free(&header);
        return SDK_ENOMEM;
    }
    uint64_t held_last = w->acked; /* frames up to acked are never kept */
    if (w->replace) {
        ll_buf_clear(&e->frames);
        e->nframes = 0;
    } else {
        held_last = LL_MAX(e->acked + e->nframes, held_last);
        if (w->acked > e->acked) {
            drop_frames(e, w->acked - e->acked);
        }
    }
    uint32_t skip;
    size_t from = new_frames_at(w, held_last, &skip);
    (void)ll_buf_append(&e->frames, w->frames + from, w->frames_len - from); /* reserved above */
    e->nframes += w->nframes - skip;
    e->acked = w->acked;
    ll_buf_free(&e->header);
    e->header = header;
    e->written = true;
    return 0;
}

static int mem_write(sdk_store *st, ll_recwrite *w, size_t n, uint64_t ttl_ms)
{
    for (size_t i = 0; i < n; i++) {
        mem_entry *e = live(st->be, w[i].id);
        w[i].owner = e ? e->epoch : 0;
        if (!e || e->epoch != w[i].epoch) {
            continue;
        }
        if (apply(e, &w[i]) != 0) {
            return ll_recstore_fail(st, SDK_ENOMEM, "out of memory storing session %llu", (unsigned long long)w[i].id);
        }
        touch(e, ttl_ms);
    }
    return 0;
}

static int mem_get(sdk_store *st, uint64_t id, ll_buf *out)
{
    mem_entry *e = live(st->be, id);
    if (!e || !e->written) {
        return ll_recstore_fail(st, SDK_ENOTFOUND, "no record of session %llu", (unsigned long long)id);
    }
    int rc = ll_sessrec_assemble(ll_buf_head(&e->header), ll_buf_size(&e->header), ll_buf_head(&e->frames),
                                 ll_buf_size(&e->frames), e->nframes, out);
    if (rc != 0) {
        return ll_recstore_fail(st, rc, "session %llu: %s", (unsigned long long)id,
                                rc == SDK_ENOMEM ? "out of memory reading it" : "not a session record");
    }
    return 0;
}

static int mem_del(sdk_store *st, uint64_t id, uint64_t epoch, uint64_t *owner)
{
    mem_be *b = st->be;
    mem_entry *e = live(b, id);
    *owner = e ? e->epoch : 0;
    if (e && e->epoch == epoch) {
        free_entry(ll_store_del(&b->entries, id), NULL);
    }
    return 0;
}

/* Expired ticket keys leave, as Redis's would. */
static void prune_ticket_keys(mem_be *b, uint64_t now)
{
    size_t kept = 0;
    for (size_t i = 0; i < b->ntkeys; i++) {
        if (b->tkeys[i].expires_ms > now) {
            b->tkeys[kept++] = b->tkeys[i];
        }
    }
    if (kept < b->ntkeys) { /* (tkeys is NULL until the first key) */
        memset(b->tkeys + kept, 0, (b->ntkeys - kept) * sizeof(*b->tkeys));
    }
    b->ntkeys = kept;
}

static mem_ticket_key *find_ticket_key(mem_be *b, uint64_t rotation_ms, uint64_t period)
{
    for (size_t i = 0; i < b->ntkeys; i++) {
        if (b->tkeys[i].rotation_ms == rotation_ms && b->tkeys[i].period == period) {
            return &b->tkeys[i];
        }
    }
    return NULL;
}

static mem_ticket_key *add_ticket_key(mem_be *b)
{
    if (b->ntkeys == b->tkeys_cap) {
        size_t cap = b->tkeys_cap ? b->tkeys_cap * 2 : 8;
        mem_ticket_key *k = realloc(b->tkeys, cap * sizeof(*k));
        if (!k) {
            return NULL;
        }
        b->tkeys = k;
        b->tkeys_cap = cap;
    }
    return &b->tkeys[b->ntkeys++];
}

static int mem_ticket_keys(sdk_store *st, uint64_t rotation_ms, const uint64_t *periods,
                           uint8_t (*blobs)[LL_TK_BLOB_LEN], size_t n, uint64_t ttl_ms)
{
    mem_be *b = st->be;
    uint64_t now = ll_now_ms();
    prune_ticket_keys(b, now);
    for (size_t i = 0; i < n; i++) {
        mem_ticket_key *k = find_ticket_key(b, rotation_ms, periods[i]);
        if (!k) {
            if ((k = add_ticket_key(b)) == NULL) {
                return ll_recstore_fail(st, SDK_ENOMEM, "out of memory storing a ticket key");
            }
            *k = (mem_ticket_key){.rotation_ms = rotation_ms, .period = periods[i], .expires_ms = now + ttl_ms};
            memcpy(k->blob, blobs[i], LL_TK_BLOB_LEN);
        }
        memcpy(blobs[i], k->blob, LL_TK_BLOB_LEN);
    }
    return 0;
}

static void mem_close(sdk_store *st)
{
    mem_be *b = st->be;
    if (b->tkeys) {
        memset(b->tkeys, 0, b->tkeys_cap * sizeof(*b->tkeys)); /* secrets */
        free(b->tkeys);
    }
    ll_store_each(&b->entries, free_entry, NULL);
    ll_store_free(&b->entries);
    free(b);
}

static const ll_recstore_ops MEM_OPS = {mem_claim, mem_write, mem_get, mem_del, mem_close, mem_ticket_keys};

int ll_store_mem_open(sdk_store *st)
{
    st->be = calloc(1, sizeof(mem_be));
    if (!st->be) {
        return ll_recstore_fail(st, SDK_ENOMEM, "out of memory opening a memory store");
    }
    st->ops = &MEM_OPS;
    return 0;
}
