#include "session.h"

#include "codec.h"
#include "ll.h"

#include <stdlib.h>
#include <string.h>

void ll_session_init(ll_session *s, uint32_t window_messages, uint64_t window_bytes)
{
    *s = (ll_session){0};
    s->window_messages = window_messages ? window_messages : 1;
    s->window_bytes = window_bytes ? window_bytes : 1;
    /* A quarter window keeps the sender streaming while acks stay rare. */
    s->ack_every = LL_MAX(1u, s->window_messages / 4);
    s->write_limit = UINT64_MAX;
    s->ack_limit = UINT64_MAX;
}

/* How many frames ll_session_write may have copied on this connection: the window, within
 * the durability gate. */
static size_t writable_count(const ll_session *s)
{
    uint64_t gate = s->write_limit > s->acked ? s->write_limit - s->acked : 0;
    return (size_t)LL_MIN((uint64_t)s->window_messages, gate);
}

void ll_session_free(ll_session *s)
{
    ll_frameq_free(&s->sendq);
}

int ll_session_check_msg(const void *data, size_t len, const char *type, uint32_t max_frame, uint64_t max_bytes,
                         ll_outgoing *out)
{
    *out = (ll_outgoing){data, len, type, ll_data_frame_size(UINT64_MAX, len, type)};
    LL_ENSURE(data || len == 0, SDK_EINVAL);
    LL_ENSURE(out->frame_size <= max_frame && len <= max_bytes, SDK_ETOOBIG);
    return 0;
}

int ll_session_check_send(const void *data, size_t len, const char *type, uint32_t max_frame, uint64_t max_bytes,
                          const char *self, const char *peer, ll_outgoing *out)
{
    int rc = ll_session_check_msg(data, len, type, max_frame, max_bytes, out);
    return rc == SDK_ETOOBIG ? ll_session_too_big(NULL, out, max_frame, max_bytes, self, peer) : rc;
}

int ll_session_too_big(const ll_session *s, const ll_outgoing *m, uint32_t max_frame, uint64_t max_bytes,
                       const char *self, const char *peer)
{
    char d[256];
    if (m->frame_size > max_frame) {
        LL_DETAIL(d, sizeof d,
                  "a message of %zu bytes makes a frame of up to %zu bytes, over %s's max_frame of %u bytes", m->len,
                  m->frame_size, self, max_frame);
    } else if (m->len > max_bytes) {
        LL_DETAIL(d, sizeof d, "a message of %zu bytes is over %s's queue_max_bytes of %llu bytes", m->len, self,
                  (unsigned long long)max_bytes);
    } else if (s != NULL && s->peer_max_frame && m->frame_size > s->peer_max_frame) {
        LL_DETAIL(d, sizeof d,
                  "a message of %zu bytes makes a frame of up to %zu bytes, over %s's max_frame of %u bytes", m->len,
                  m->frame_size, peer, s->peer_max_frame);
    } else {
        LL_DETAIL(d, sizeof d, "a message of %zu bytes is too big", m->len);
    }
    return ll_set_call_error(SDK_ETOOBIG, d);
}

int ll_session_offer(ll_session *s, const ll_outgoing *m, size_t max_messages, uint64_t max_bytes)
{
    if (s->peer_max_frame && m->frame_size > s->peer_max_frame) {
        return SDK_ETOOBIG;
    }
    if (s->sendq.count >= max_messages || s->sendq.bytes + m->len > max_bytes) {
        return SDK_EQUEUEFULL;
    }
    return ll_session_enqueue(s, m->data, m->len, m->type);
}

int ll_session_enqueue(ll_session *s, const void *data, size_t len, const char *type)
{
    uint64_t seq = s->acked + s->sendq.count + 1;
    LL_GUARD(ll_frameq_push(&s->sendq, seq, data, len, type, type ? strlen(type) : 0));
    s->enqueued_total++;
    return 0;
}

bool ll_session_can_write(const ll_session *s)
{
    const ll_frameq *q = &s->sendq;
    if (q->copied >= q->count || q->copied >= writable_count(s)) {
        return false;
    }
    /* The byte window as ll_frameq_copy applies it: the next message must fit, unless it
     * would be alone in flight. */
    return q->copied == 0 || q->copied_bytes + ll_frameq_entry_at(q, q->copied).payload_len <= s->window_bytes;
}

int ll_session_write(ll_session *s, ll_buf *out, size_t out_limit)
{
    ll_frameq *q = &s->sendq;
    size_t before = q->copied;
    uint64_t before_bytes = q->copied_bytes;
    LL_GUARD(ll_frameq_copy(q, out, writable_count(s), s->window_bytes, out_limit));
    /* Sequences acked+before+1 .. acked+copied went out; those up to high_written again. */
    uint64_t first = s->acked + before + 1;
    uint64_t last = s->acked + q->copied;
    if (last >= first) {
        s->msgs_sent += last - first + 1;
        s->bytes_sent += q->copied_bytes - before_bytes;
        uint64_t seen = LL_MAX(s->high_written, s->written_before);
        if (seen >= first) {
            s->retransmits += LL_MIN(last, seen) - first + 1;
        }
        s->high_written = LL_MAX(s->high_written, last);
    }
    return 0;
}

/* Free the n oldest messages, which the peer has. */
static void drop_front(ll_session *s, size_t n)
{
    ll_frameq_drop(&s->sendq, n);
    s->acked += n;
    s->acked_total += n;
}

int ll_session_on_ack(ll_session *s, uint64_t seq, size_t *freed)
{
    if (seq > s->acked + s->sendq.copied) {
        return SDK_EPROTO;
    }
    s->acks_received++;
    size_t n = seq > s->acked ? (size_t)(seq - s->acked) : 0; /* older acks are harmless */
    drop_front(s, n);
    if (freed) {
        *freed = n;
    }
    return 0;
}

ll_data_verdict ll_session_on_data(ll_session *s, uint64_t seq, size_t len)
{
    if (seq == 0) {
        return LL_DATA_INVALID;
    }
    if (seq <= s->received) {
        s->duplicates++;
        return LL_DATA_DUPLICATE;
    }
    if (seq != s->received + 1) {
        return LL_DATA_INVALID;
    }
    s->received = seq;
    s->msgs_received++;
    s->bytes_received += len;
    return LL_DATA_ACCEPT;
}

int ll_session_deliver(ll_session *s, ll_carver *cv, const ll_data_view *d, const char *peer, ll_msgq *q, bool taken,
                       ll_msg **out)
{
    ll_msg *m = ll_msg_carve(cv, d->payload, d->len, d->type, d->type_len, peer);
    LL_ENSURE(m, SDK_ENOMEM);
    m->pub.seq = d->seq;
    m->epoch = s->epoch;
    if (ll_msgq_push(q, m) != 0) {
        ll_msg_free(m);
        return SDK_ENOMEM;
    }
    if (taken) {
        ll_session_consumed(s, m); /* acked by the next write, after the callback */
    }
    *out = m;
    return 0;
}

void ll_session_consumed_upto(ll_session *s, uint64_t seq)
{
    if (seq > s->consumed) {
        s->consumed = seq;
    }
}

void ll_session_consumed(ll_session *s, const ll_msg *m)
{
    if (m->epoch == s->epoch) {
        ll_session_consumed_upto(s, m->pub.seq);
    }
}

uint64_t ll_session_ackable(const ll_session *s)
{
    return LL_MIN(s->consumed, s->ack_limit);
}

uint64_t ll_session_resume_point(const ll_session *s)
{
    return s->ack_limit == UINT64_MAX ? s->received : LL_MIN(s->received, s->ack_limit);
}

bool ll_session_ack_due(const ll_session *s, bool idle)
{
    uint64_t ackable = ll_session_ackable(s);
    if (ackable <= s->ack_sent) {
        return false;
    }
    return idle || ackable - s->ack_sent >= s->ack_every;
}

uint64_t ll_session_ack_take(ll_session *s)
{
    s->acks_sent++;
    s->ack_sent = ll_session_ackable(s);
    return s->ack_sent;
}

int ll_session_resume(ll_session *s, uint64_t peer_received)
{
    /* The peer cannot have received what was never written, nor un-received what it acked. */
    if (peer_received < s->acked || peer_received > s->high_written || peer_received - s->acked > s->sendq.count) {
        return SDK_EPROTO;
    }
    ll_frameq_rewind(&s->sendq);
    drop_front(s, (size_t)(peer_received - s->acked));
    s->ack_sent = 0; /* say again what we consumed, on the new connection */
    return 0;
}

int ll_session_restart(ll_session *s)
{
    uint64_t seen = LL_MAX(s->high_written, s->written_before);
    LL_GUARD(ll_frameq_renumber(&s->sendq, 1));
    s->epoch++;
    /* The counters (retransmits, msgs_sent, ...) are the client's, for its whole life: only
     * the numbering restarts. Messages written before count as retransmits when written
     * again; high_written restarts, so a resume is still checked against this session. */
    s->written_before = LL_MIN(seen > s->acked ? seen - s->acked : 0, (uint64_t)s->sendq.count);
    s->acked = 0;
    s->high_written = 0;
    s->received = 0;
    s->consumed = 0;
    s->ack_sent = 0;
    return 0;
}
