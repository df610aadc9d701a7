/*
 * The session store's front (lifeline/store.h and recstore.h): opening by URL, one call at a
 * time, the last error, and records encoded and decoded around the backend's bytes.
 */
#include "recstore.h"

#include "codec.h"
#include "ll.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int ll_recstore_fail(sdk_store *st, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(st->detail, sizeof(st->detail), fmt, ap);
    va_end(ap);
    st->err = err;
    return err;
}

static int open_backend(sdk_store *st, const char *url)
{
    ll_store_url u;
    int rc = ll_store_url_parse(url, &u, st->detail, sizeof(st->detail));
    if (rc != 0) {
        st->err = rc;
        return rc;
    }
    rc = u.kind == LL_STORE_REDIS ? ll_store_redis_open(st, &u) : ll_store_mem_open(st);
    explicit_bzero(u.password, sizeof(u.password)); /* the backend keeps its own copy */
    return rc;
}

sdk_err sdk_store_open(const char *url, int timeout_ms, sdk_store **out)
{
    if (out) {
        *out = NULL;
    }
    if (!url || !out || timeout_ms < 0) {
        return (sdk_err)ll_set_connect_error(SDK_EINVAL, "sdk_store_open: url, out and timeout_ms >= 0 are required");
    }
    sdk_store *st = calloc(1, sizeof(*st));
    if (!st) {
        return (sdk_err)ll_set_connect_error(SDK_ENOMEM, NULL);
    }
    st->timeout_ms = timeout_ms ? (uint32_t)timeout_ms : SDK_STORE_TIMEOUT_DEFAULT_MS;
    st->max_record = LL_SESSREC_MAX_DEFAULT;
    int rc = open_backend(st, url);
    if (rc != 0) {
        ll_set_connect_error(rc, st->detail);
        free(st);
        return (sdk_err)rc;
    }
    pthread_mutex_init(&st->mu, NULL);
    *out = st;
    return SDK_OK;
}

sdk_err sdk_store_last_error(sdk_store *st, char *buf, size_t buflen)
{
    if (!st) {
        return SDK_EINVAL;
    }
    pthread_mutex_lock(&st->mu);
    int err = st->err;
    if (buf && buflen > 0) {
        LL_DETAIL(buf, buflen, "%s", err ? st->detail : "");
    }
    pthread_mutex_unlock(&st->mu);
    return (sdk_err)err;
}

void sdk_store_close(sdk_store *st)
{
    if (!st) {
        return;
    }
    st->ops->close(st);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

int ll_recstore_claim(sdk_store *st, uint64_t id, uint64_t ttl_ms, uint64_t *epoch)
{
    pthread_mutex_lock(&st->mu);
    int rc = id ? st->ops->claim(st, id, ttl_ms, epoch) : ll_recstore_fail(st, SDK_EINVAL, "claim of session 0");
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* What a fenced write found: done, or fenced with the owner named in the detail. */
static ll_write_result fenced_by(sdk_store *st, uint64_t id, uint64_t epoch, uint64_t owner)
{
    if (owner == epoch) {
        return LL_WRITE_DONE;
    }
    if (owner == 0) {
        ll_recstore_fail(st, SDK_ENOTFOUND, "fenced: session %llu is not claimed (expired or deleted)",
                         (unsigned long long)id);
    } else {
        ll_recstore_fail(st, SDK_EREJECTED, "fenced: session %llu is owned by epoch %llu, not %llu",
                         (unsigned long long)id, (unsigned long long)owner, (unsigned long long)epoch);
    }
    return LL_WRITE_FENCED;
}

/* The count and sequences of the len bytes of frames at p into w: false unless they are
 * whole Data frames numbered one after another (the backends file them by sequence). */
static bool frames_span(const uint8_t *p, size_t len, ll_recwrite *w)
{
    ll_data_view first = {0}, last = {0};
    size_t off = 0;
    w->nframes = 0;
    while (off < len) {
        size_t size = len - off >= LL_FRAME_HEADER ? LL_FRAME_HEADER + (size_t)ll_get_be32(p + off) : SIZE_MAX;
        if (size > len - off || w->nframes == UINT32_MAX || !ll_data_frame_read(p + off, size, &last)) {
            return false;
        }
        first = w->nframes++ == 0 ? last : first;
        off += size;
    }
    w->first_seq = first.seq;
    w->last_seq = last.seq;
    return w->nframes == 0 || (first.seq > 0 && last.seq - first.seq == w->nframes - 1);
}

/* Fill w (its header encoded into hdr) for a write of r with the given frames. */
static int prepare(sdk_store *st, const ll_sessrec *r, const uint8_t *frames, size_t len, ll_buf *hdr, ll_recwrite *w)
{
    if (r->owner_epoch == 0 || r->id == 0) {
        return ll_recstore_fail(st, SDK_EINVAL, "write of session %llu without a claimed epoch",
                                (unsigned long long)r->id);
    }
    ll_recwrite span = {0};
    if (!frames_span(frames, len, &span)) {
        return ll_recstore_fail(st, SDK_EINVAL, "write of session %llu: frames that are not Data frames in sequence",
                                (unsigned long long)r->id);
    }
    if (ll_sessrec_encode_header(r, hdr) != 0) {
        return ll_recstore_fail(st, SDK_ENOMEM, "out of memory encoding session %llu", (unsigned long long)r->id);
    }
    *w = (ll_recwrite){.id = r->id,
                       .epoch = r->owner_epoch,
                       .header = ll_buf_head(hdr),
                       .header_len = ll_buf_size(hdr),
                       .acked = r->acked,
                       .frames = frames,
                       .frames_len = len,
                       .nframes = span.nframes,
                       .first_seq = span.first_seq,
                       .last_seq = span.last_seq};
    return 0;
}

ll_write_result ll_recstore_put(sdk_store *st, const ll_sessrec *r, uint64_t ttl_ms)
{
    ll_buf hdr = {0};
    ll_recwrite w;
    ll_write_result res = LL_WRITE_FAILED;
    pthread_mutex_lock(&st->mu);
    if (prepare(st, r, r->frames, r->frames_len, &hdr, &w) == 0) {
        w.replace = true;
        if (st->ops->write(st, &w, 1, ttl_ms) == 0) {
            res = fenced_by(st, r->id, r->owner_epoch, w.owner);
        }
    }
    pthread_mutex_unlock(&st->mu);
    ll_buf_free(&hdr);
    return res;
}

/* The deltas as backend writes, their headers in hdrs (n of them). */
static int prepare_all(sdk_store *st, ll_recdelta *d, size_t n, ll_buf *hdrs, ll_recwrite *w)
{
    for (size_t i = 0; i < n; i++) {
        LL_GUARD(prepare(st, d[i].r, d[i].frames, d[i].frames_len, &hdrs[i], &w[i]));
        w[i].replace = d[i].replace;
    }
    return 0;
}

int ll_recstore_write(sdk_store *st, ll_recdelta *d, size_t n, uint64_t ttl_ms)
{
    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        d[i].result = LL_WRITE_FAILED;
    }
    ll_buf *hdrs = calloc(n ? n : 1, sizeof(*hdrs));
    ll_recwrite *w = calloc(n ? n : 1, sizeof(*w));
    pthread_mutex_lock(&st->mu);
    int rc = !hdrs || !w ? ll_recstore_fail(st, SDK_ENOMEM, "out of memory writing %zu sessions", n)
                         : prepare_all(st, d, n, hdrs, w);
    if (rc == 0) {
        rc = st->ops->write(st, w, n, ttl_ms);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        d[i].result = fenced_by(st, w[i].id, w[i].epoch, w[i].owner);
        d[i].owner = w[i].owner;
    }
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; hdrs && i < n; i++) {
        ll_buf_free(&hdrs[i]);
    }
    free(hdrs);
    free(w);
    return rc;
}

int ll_recstore_get(sdk_store *st, uint64_t id, ll_buf *bytes, ll_sessrec *r)
{
    ll_buf_clear(bytes);
    pthread_mutex_lock(&st->mu);
    int rc = st->ops->get(st, id, bytes);
    if (rc == 0) {
        char why[160];
        rc = ll_sessrec_decode(ll_buf_head(bytes), ll_buf_size(bytes), st->max_record, r, why, sizeof(why));
        if (rc != 0) {
            ll_recstore_fail(st, rc, "session %llu: %s", (unsigned long long)id, why);
        } else if (r->id != id) {
            rc = ll_recstore_fail(st, SDK_EPROTO, "session %llu: the stored record is session %llu",
                                  (unsigned long long)id, (unsigned long long)r->id);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

ll_write_result ll_recstore_del(sdk_store *st, uint64_t id, uint64_t epoch)
{
    uint64_t owner = 0;
    ll_write_result res = LL_WRITE_FAILED;
    pthread_mutex_lock(&st->mu);
    if (st->ops->del(st, id, epoch, &owner) == 0) {
        /* Nothing left (it expired) is as good as deleted. */
        res = owner == 0 ? LL_WRITE_DONE : fenced_by(st, id, epoch, owner);
    }
    pthread_mutex_unlock(&st->mu);
    return res;
}

int ll_recstore_ticket_keys(sdk_store *st, uint64_t rotation_ms, const uint64_t *periods,
                            uint8_t (*blobs)[LL_TK_BLOB_LEN], size_t n, uint64_t ttl_ms)
{
    pthread_mutex_lock(&st->mu);
    int rc = n > 0 && n <= LL_TK_LIVE_MAX && rotation_ms > 0
                 ? st->ops->ticket_keys(st, rotation_ms, periods, blobs, n, ttl_ms)
                 : ll_recstore_fail(st, SDK_EINVAL, "ticket keys: %zu periods of %llu ms", n,
                                    (unsigned long long)rotation_ms);
    pthread_mutex_unlock(&st->mu);
    return rc;
}
