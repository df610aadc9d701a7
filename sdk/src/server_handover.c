/*
 * The server's sessions and its session store (lifeline/store.h), on its I/O thread and
 * under mu: at a graceful stop every session is handed over (claimed, then written as a
 * record), and a Hello naming a session this process does not know is looked up there.
 * Only called when a store is configured (srv->store): without one nothing here runs, and
 * the server behaves as it always did.
 *
 * Store calls here block for up to the store's timeout each, with mu held: a stop or a
 * resume from another instance waits on the store, and so do application threads
 * meanwhile. Writes while sessions live go through server_sync.c, without mu.
 */
#include "server_impl.h"

#include "ll.h"
#include "net.h"
#include "recstore.h"
#include "sessrec.h"

#include <stdlib.h>
#include <string.h>

/* ---- a session as a record ---- */

int ll_server_capture(const srv_session *ss, size_t first, ll_buf *frames, ll_sessrec *r)
{
    *r = (ll_sessrec){.id = ss->id,
                      .hb_interval_ms = ss->hb_interval_ms,
                      .hb_timeout_ms = ss->hb_timeout_ms,
                      .owner_epoch = ss->owner_epoch};
    LL_GUARD(ll_tls_sha256(ss->token, sizeof(ss->token), r->token_hash));
    LL_GUARD(ll_sessrec_capture_from(&ss->s, first, frames, r));
    /* a dead owner's deliveries stay flagged if we go too */
    r->received = LL_MAX(r->received, ss->redeliver_upto);
    return 0;
}

/* ---- handover, at stop ---- */

typedef struct handover {
    sdk_server *srv;
    ll_buf frames; /* reused for each session's frames */
} handover;

/* Claim ss (unless it is ours already) and write its record: from then on any instance with
 * the store can resume it. */
static int hand_over(handover *ho, srv_session *ss)
{
    uint64_t ttl = (uint64_t)ho->srv->cfg.session_ttl_ms;
    ll_sessrec r;
    ll_buf_clear(&ho->frames);
    LL_GUARD(ll_server_capture(ss, 0, &ho->frames, &r));
    if (r.owner_epoch == 0) {
        LL_GUARD(ll_recstore_claim(ho->srv->store, ss->id, ttl, &r.owner_epoch));
    }
    return ll_recstore_put(ho->srv->store, &r, ttl) == LL_WRITE_DONE ? 0 : SDK_EIO;
}

static void hand_over_one(void *val, void *ctx)
{
    srv_session *ss = val;
    if (ss->gone_away) {
        return; /* handed over (or not) at its turn in the lame-duck window */
    }
    /* A session that failed to go is lost, as it would be without a store: its client
     * opens a new one (SDK_EVENT_SESSION_LOST) and sends again what was not acknowledged. */
    ss->handed_over = !ss->close_requested && hand_over(ctx, ss) == 0;
}

/* Messages of handed-over (or gone-away) sessions still in the inbox leave it: the record
 * says they were not consumed, so the client sends them again to the next owner; taken here
 * too, they would reach the application twice. (Those not yet delivered, under sync always, go with
 * the session when it is freed.) */
void ll_server_drop_handed_over_locked(sdk_server *srv)
{
    for (size_t n = srv->inbox.count; n > 0; n--) {
        ll_msg *m = ll_msgq_pop(&srv->inbox);
        srv_session *ss = ll_store_get(&srv->sessions, m->pub.session);
        if (ss && (ss->handed_over || ss->gone_away)) {
            ss->in_inbox--;
            ll_msg_free(m);
        } else {
            (void)ll_msgq_push(&srv->inbox, m); /* into the slot just freed: cannot fail */
        }
    }
}

void ll_server_hand_over_one(sdk_server *srv, srv_session *ss)
{
    handover ho = {.srv = srv};
    if (srv->store && srv->cfg.session_ttl_ms > 0) {
        ll_server_sync_wait_idle(srv); /* else a batch landing after the record would append to it */
        ll_server_sync_forget_locked(srv, ss);
        hand_over_one(ss, &ho);
    }
    ss->gone_away = true;
    ll_buf_free(&ho.frames);
    ll_server_drop_handed_over_locked(srv);
}

void ll_server_handover_all(sdk_server *srv)
{
    if (srv->cfg.session_ttl_ms <= 0) {
        return; /* sessions that cannot wait for a resume have nothing to hand over */
    }
    handover ho = {.srv = srv};
    ll_store_each(&srv->sessions, hand_over_one, &ho);
    ll_buf_free(&ho.frames);
    ll_server_drop_handed_over_locked(srv);
}

/* ---- adoption, at a Hello ---- */

/* The stored record of the hello's session, if its token hashes to the stored hash. */
static int fetch(sdk_server *srv, const Lifeline__Hello *h, ll_buf *bytes, ll_sessrec *r)
{
    uint8_t hash[LL_SHA256_LEN];
    LL_GUARD(ll_recstore_get(srv->store, h->session_id, bytes, r));
    LL_GUARD(ll_tls_sha256(h->resume_token.data, h->resume_token.len, hash));
    return ll_tls_equal_ct(hash, r->token_hash, sizeof(hash)) ? 0 : SDK_EPEERAUTH;
}

/* A live session from record r, with the token the client proved it holds. Messages the
 * record's writer may have delivered (received beyond consumed: it died, or another
 * instance took the session from it) come again, flagged as redelivered. */
static srv_session *restore_session(sdk_server *srv, const ll_sessrec *r, const uint8_t *token)
{
    srv_session *ss = calloc(1, sizeof(*ss));
    if (!ss) {
        return NULL;
    }
    ss->id = r->id;
    memcpy(ss->token, token, sizeof(ss->token));
    ss->hb_interval_ms = r->hb_interval_ms;
    ss->hb_timeout_ms = r->hb_timeout_ms;
    ss->redeliver_upto = r->received > r->consumed ? r->received : 0;
    ll_session_init(&ss->s, srv->cfg.window_messages, srv->cfg.window_bytes);
    if (ll_sessrec_restore(r, &ss->s) != 0 || ll_store_put(&srv->sessions, ss->id, ss) != 0) {
        ll_session_free(&ss->s);
        free(ss);
        return NULL;
    }
    ss->synced_seq = r->acked + r->nframes;
    ss->synced_ms = ll_now_ms();
    ll_server_gate_session(srv, ss);
    return ss;
}

srv_session *ll_server_adopt_stored(sdk_server *srv, const Lifeline__Hello *h)
{
    ll_buf bytes = {0};
    ll_sessrec r;
    uint64_t epoch = 0;
    srv_session *ss = NULL;
    ll_server_takeover_ask_locked(srv, h); /* a live owner elsewhere writes what it holds first */
    /* The token first, so that a client knowing only an id cannot take a session over; then
     * the claim fences the previous owner out, and the record read after it is final. */
    if (h->resume_token.len == sizeof(ss->token) && fetch(srv, h, &bytes, &r) == 0 &&
        ll_recstore_claim(srv->store, h->session_id, (uint64_t)srv->cfg.session_ttl_ms, &epoch) == 0 &&
        fetch(srv, h, &bytes, &r) == 0) {
        ss = restore_session(srv, &r, h->resume_token.data);
    }
    ll_buf_free(&bytes);
    if (!ss) {
        return NULL;
    }
    if (ll_server_sync_always(srv)) {
        ss->owner_epoch = epoch; /* the record stays the truth, kept in step from now on */
    } else {
        /* The live session is the truth from now on: a record left behind must not be
         * resumed elsewhere. If the delete fails, it expires with the session's TTL. */
        (void)ll_recstore_del(srv->store, ss->id, epoch);
    }
    return ss;
}
