/*
 * The session store kept in step with live sessions, on the server's I/O thread (only with
 * srv->store; lifeline/store.h has the contract).
 *
 * Sessions with a write due sit on srv->sync_list. Once per loop turn ll_server_sync takes
 * up to SYNC_BATCH of them under mu and copies what each write needs (the record's header,
 * the frames the store does not hold yet) into a batch for the store thread, which makes the
 * round trips without mu: one to claim each session never claimed, then one pipelined batch
 * for every write. Neither the I/O thread nor application threads ever wait on the store
 * here, so a slow or unreachable store delays only what waits for it. The I/O thread applies
 * the answers on a later turn (the store thread wakes it). One batch is in flight at a time;
 * what changes meanwhile goes in the next, which is larger the slower the store.
 *
 * Sync "always" gates each session (session.h: write_limit, ack_limit) and holds accepted
 * messages in ss->unsynced: a Data frame leaves only once the store holds it, an ack only
 * once the store holds the consumption it reports, and a message reaches the application
 * only once the store holds it as received. So a killed server has said nothing the store
 * does not know, and the next owner can tell which messages its application may have seen
 * (ss->redeliver_upto, the stored `received`).
 */
#include "server_impl.h"

#include "ll.h"
#include "net.h"
#include "recstore.h"
#include "sessrec.h"

#include <stdlib.h>
#include <string.h>

#define SYNC_BATCH          256  /* sessions per round trip */
#define SYNC_BACKOFF_MIN_MS 20   /* after a failed write, the first retry */
#define SYNC_BACKOFF_MAX_MS 1000 /* ...doubling up to this */

typedef struct sync_job sync_job;
struct sync_job {
    uint64_t id;
    ll_sync_want want;
    uint64_t epoch;      /* the claim written under (0: claim first) */
    ll_sessrec rec;      /* the header's fields */
    ll_buf frames;       /* the frames to add (all of them for a FULL write) */
    uint64_t synced_seq; /* our last sequence, once written */
    ll_write_result result;
    uint64_t owner; /* the owner epoch the store found */
};

/* ---- the sync list (under mu) ---- */

void ll_server_want_sync_locked(sdk_server *srv, srv_session *ss, ll_sync_want want)
{
    if (!srv->store || want == LL_SYNC_NONE || ss->gone_away) {
        return; /* a session gone away was written once, for good: its next owner's now */
    }
    if (ss->sync_want == LL_SYNC_NONE) {
        ss->next_sync = srv->sync_list;
        srv->sync_list = ss;
    }
    if (want != LL_SYNC_DELTA || ss->sync_want == LL_SYNC_NONE) {
        ss->sync_want = (uint8_t)want;
    }
    ll_server_wake_locked(srv);
}

void ll_server_sync_forget_locked(sdk_server *srv, srv_session *ss)
{
    for (srv_session **p = &srv->sync_list; ss->sync_want != LL_SYNC_NONE && *p; p = &(*p)->next_sync) {
        if (*p == ss) {
            *p = ss->next_sync;
            break;
        }
    }
    ss->sync_want = LL_SYNC_NONE;
    srv->unsynced -= ss->unsynced.count;
    ll_msg *m;
    while ((m = ll_msgq_pop(&ss->unsynced)) != NULL) {
        ll_msg_free(m);
    }
    ll_msgq_free(&ss->unsynced);
}

/* ---- a write, prepared under mu ---- */

/* What the record says ss has received: the highest message that may reach our application
 * (delivered, queued for it, or about to be). */
static int build_job(const sdk_server *srv, const srv_session *ss, sync_job *j)
{
    const ll_session *s = &ss->s;
    *j = (sync_job){.id = ss->id, .want = (ll_sync_want)ss->sync_want, .epoch = ss->owner_epoch};
    if (j->want == LL_SYNC_DELETE) {
        return 0;
    }
    bool full = j->want == LL_SYNC_FULL;
    uint64_t from = full ? s->acked : LL_MAX(ss->synced_seq, s->acked);
    ll_sessrec *r = &j->rec;
    LL_GUARD(ll_server_capture(ss, (size_t)(from - s->acked), &j->frames, r));
    j->synced_seq = s->acked + s->sendq.count;
    /* Under sync always a stored frame may be written at once: the client may have any of
     * them. What was received counts, not only what was consumed: under sync always a
     * message reaches the application only once stored as received (the flag's bound). */
    r->high_written = ll_server_sync_always(srv) ? j->synced_seq : s->high_written;
    r->received = LL_MAX(s->received, ss->redeliver_upto);
    return 0;
}

/* Take up to SYNC_BATCH sessions off the sync list into jobs; returns how many. */
static size_t take_jobs(sdk_server *srv, sync_job *jobs)
{
    size_t n = 0;
    while (srv->sync_list && n < SYNC_BATCH) {
        srv_session *ss = srv->sync_list;
        if (build_job(srv, ss, &jobs[n]) != 0) {
            ll_buf_free(&jobs[n].frames);
            break; /* out of memory: it stays listed for the next turn */
        }
        srv->sync_list = ss->next_sync;
        ss->sync_want = LL_SYNC_NONE;
        n++;
    }
    return n;
}

/* ---- the round trips, without mu ---- */

/* Claim the job's session if it has no claim yet: false if the store failed. */
static bool claimed(sdk_server *srv, sync_job *j)
{
    if (j->epoch == 0 && ll_recstore_claim(srv->store, j->id, (uint64_t)srv->cfg.session_ttl_ms, &j->epoch) != 0) {
        j->epoch = 0;
        return false;
    }
    j->rec.owner_epoch = j->epoch;
    return true;
}

static void run_jobs(sdk_server *srv, sync_job *jobs, size_t n)
{
    ll_recdelta d[SYNC_BATCH];
    size_t at[SYNC_BATCH], nd = 0;
    for (size_t i = 0; i < n; i++) {
        sync_job *j = &jobs[i];
        j->result = LL_WRITE_FAILED;
        if (j->want == LL_SYNC_DELETE) {
            j->result = j->epoch ? ll_recstore_del(srv->store, j->id, j->epoch) : LL_WRITE_DONE;
        } else if (claimed(srv, j)) {
            d[nd] = (ll_recdelta){.r = &j->rec,
                                  .frames = ll_buf_head(&j->frames),
                                  .frames_len = ll_buf_size(&j->frames),
                                  .replace = j->want == LL_SYNC_FULL};
            at[nd++] = i;
        }
    }
    (void)ll_recstore_write(srv->store, d, nd, (uint64_t)srv->cfg.session_ttl_ms); /* results say it */
    for (size_t k = 0; k < nd; k++) {
        jobs[at[k]].result = d[k].result;
        jobs[at[k]].owner = d[k].owner;
    }
}

/* ---- the answers, under mu ---- */

/* Messages the store now holds as received go to the application. */
static void release_unsynced(sdk_server *srv, srv_session *ss, uint64_t upto, bool *got)
{
    bool callback = srv->cfg.on_message != NULL;
    while (ss->unsynced.count > 0 && ll_msgq_at(&ss->unsynced, 0)->pub.seq <= upto) {
        ll_msg *m = ll_msgq_at(&ss->unsynced, 0);
        if (ll_msgq_push(callback ? &srv->deliver : &srv->inbox, m) != 0) {
            ll_server_want_sync_locked(srv, ss, LL_SYNC_DELTA); /* out of memory: try again next turn */
            return;
        }
        (void)ll_msgq_pop(&ss->unsynced);
        srv->unsynced--;
        if (callback && ll_server_taken_at_queue(srv)) {
            ll_session_consumed(&ss->s, m); /* taken by the callback before the next write */
        }
        ss->in_inbox += !callback;
        *got = *got || !callback;
    }
}

/* Another instance claimed the session: it is theirs now. Our client (if its link is still
 * up) is sent to reconnect, which finds the new owner, or takes the session back. */
void ll_server_let_go_locked(sdk_server *srv, srv_session *ss)
{
    if (ss->conn && srv->nloops > 1 && !ll_server_on_loop(srv, ss->conn->loop)) {
        ss->letting_go = true; /* its connection's loop does it (service_session) */
        ll_server_mark_dirty_locked(srv, ss);
        return;
    }
    if (ss->conn) {
        ll_server_conn_closing(srv, ss->conn, LIFELINE__CLOSE__CODE__NORMAL, "session taken over by another server",
                               true);
    }
    ll_server_end_session(srv, ss, SDK_SESSION_CLOSED, SDK_CAUSE_TAKEN_OVER);
}

static void written(sdk_server *srv, srv_session *ss, const sync_job *j, uint64_t now, bool *got)
{
    ss->synced_ms = now;
    if (j->want == LL_SYNC_DELETE) {
        ss->owner_epoch = 0; /* the entry is gone: a later write claims again */
        return;
    }
    ss->owner_epoch = j->epoch;
    ss->synced_seq = LL_MAX(ss->synced_seq, j->synced_seq);
    if (ll_server_sync_always(srv)) {
        ss->s.write_limit = ss->synced_seq;
        ss->s.ack_limit = LL_MAX(ss->s.ack_limit, j->rec.consumed);
        release_unsynced(srv, ss, j->rec.received, got);
        if (ss->conn) {
            ll_server_mark_dirty_locked(srv, ss); /* what the store now holds may go out */
        }
    }
}

/* Apply one answer; false if the store failed it. */
static bool apply_job(sdk_server *srv, sync_job *j, uint64_t now, bool *got)
{
    srv_session *ss = ll_store_get(&srv->sessions, j->id);
    if (!ss) {
        return j->result != LL_WRITE_FAILED; /* it ended meanwhile */
    }
    if (j->result == LL_WRITE_DONE) {
        written(srv, ss, j, now, got);
    } else if (j->result == LL_WRITE_FENCED && j->owner != 0) {
        ll_server_let_go_locked(srv, ss);
    } else if (j->result == LL_WRITE_FENCED) { /* our entry expired: nobody else has it */
        ss->owner_epoch = 0;
        ll_server_want_sync_locked(srv, ss, j->want == LL_SYNC_DELETE ? LL_SYNC_DELETE : LL_SYNC_FULL);
    } else {
        ss->owner_epoch = ss->owner_epoch ? ss->owner_epoch : j->epoch; /* a claim that went through */
        ll_server_want_sync_locked(srv, ss, j->want);
        return false;
    }
    return true;
}

static void apply_all(sdk_server *srv, sync_job *jobs, size_t n, uint64_t now, bool *got)
{
    bool failed = false;
    for (size_t i = 0; i < n; i++) {
        failed |= !apply_job(srv, &jobs[i], now, got);
        ll_buf_free(&jobs[i].frames);
    }
    if (failed) {
        srv->store_failures++;
        srv->store_err = sdk_store_last_error(srv->store, srv->store_detail, sizeof(srv->store_detail));
        srv->store_err = srv->store_err ? srv->store_err : SDK_EIO;
        srv->sync_backoff_ms = LL_MIN(LL_MAX(srv->sync_backoff_ms * 2, SYNC_BACKOFF_MIN_MS), SYNC_BACKOFF_MAX_MS);
        srv->sync_retry_at = now + srv->sync_backoff_ms;
    } else {
        srv->sync_backoff_ms = 0;
        srv->sync_retry_at = 0;
        srv->store_err = 0;
    }
}

/* ---- the refresh: a live session's record must not expire while nothing changes ---- */

typedef struct refresh_ctx {
    sdk_server *srv;
    uint64_t now;
    uint64_t period;
} refresh_ctx;

static void refresh_one(void *val, void *ctx)
{
    srv_session *ss = val;
    const refresh_ctx *rc = ctx;
    if (ss->conn && ss->owner_epoch && rc->now - ss->synced_ms >= rc->period) {
        ll_server_want_sync_locked(rc->srv, ss, LL_SYNC_DELTA);
    }
}

static void refresh_live(sdk_server *srv, uint64_t now)
{
    if (!ll_server_sync_always(srv) || srv->cfg.session_ttl_ms <= 0 || now < srv->sync_sweep_at) {
        return;
    }
    refresh_ctx rc = {.srv = srv, .now = now, .period = LL_MAX((uint64_t)srv->cfg.session_ttl_ms / 3, 1u)};
    srv->sync_sweep_at = now + rc.period;
    ll_store_each(&srv->sessions, refresh_one, &rc);
}

/* ---- the store thread: the round trips, one batch at a time ---- */

static void *store_main(void *arg)
{
    sdk_server *srv = arg;
    pthread_setname_np(pthread_self(), "lifeline-store");
    pthread_mutex_lock(&srv->mu);
    while (!srv->sync_quit) {
        if (srv->sync_state != LL_SYNC_QUEUED) {
            pthread_cond_wait(&srv->sync_cv, &srv->mu);
            continue;
        }
        srv->sync_state = LL_SYNC_RUNNING;
        pthread_mutex_unlock(&srv->mu);
        run_jobs(srv, srv->sync_batch, srv->sync_n);
        pthread_mutex_lock(&srv->mu);
        srv->sync_state = LL_SYNC_DONE;
        pthread_cond_broadcast(&srv->sync_cv); /* a stop may be waiting for it */
        ll_server_wake_locked(srv);            /* the I/O thread applies the answers */
    }
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

int ll_server_sync_start(sdk_server *srv)
{
    if (!srv->store) {
        return 0;
    }
    if (pthread_cond_init(&srv->sync_cv, NULL) != 0) {
        return SDK_ENOMEM;
    }
    srv->sync_cv_ready = true;
    if (pthread_create(&srv->sync_thread, NULL, store_main, srv) != 0) {
        return SDK_ENOMEM;
    }
    srv->sync_thread_started = true;
    return 0;
}

void ll_server_sync_stop(sdk_server *srv)
{
    if (srv->sync_thread_started) {
        pthread_mutex_lock(&srv->mu);
        srv->sync_quit = true;
        pthread_cond_broadcast(&srv->sync_cv);
        pthread_mutex_unlock(&srv->mu);
        pthread_join(srv->sync_thread, NULL);
        srv->sync_thread_started = false;
    }
    if (srv->sync_batch) {
        for (size_t i = 0; i < srv->sync_n; i++) {
            ll_buf_free(&srv->sync_batch[i].frames);
        }
        free(srv->sync_batch);
        srv->sync_batch = NULL;
    }
    if (srv->sync_cv_ready) {
        pthread_cond_destroy(&srv->sync_cv);
        srv->sync_cv_ready = false;
    }
}

/* ---- the turn (I/O thread) ---- */

/* Under mu: the finished batch's answers applied. */
static void apply_done(sdk_server *srv, uint64_t now, bool *got)
{
    if (srv->sync_state == LL_SYNC_DONE) {
        apply_all(srv, srv->sync_batch, srv->sync_n, now, got);
        free(srv->sync_batch);
        srv->sync_batch = NULL;
        srv->sync_state = LL_SYNC_IDLE;
    }
}

/* Under mu: the next batch to the store thread, if anything is due. */
static void queue_batch(sdk_server *srv, uint64_t now)
{
    if (srv->sync_state != LL_SYNC_IDLE || !srv->sync_list || now < srv->sync_retry_at) {
        return;
    }
    srv->sync_batch = calloc(SYNC_BATCH, sizeof(*srv->sync_batch));
    srv->sync_n = srv->sync_batch ? take_jobs(srv, srv->sync_batch) : 0;
    if (srv->sync_n == 0) {
        free(srv->sync_batch);
        srv->sync_batch = NULL;
        return;
    }
    srv->sync_state = LL_SYNC_QUEUED;
    pthread_cond_broadcast(&srv->sync_cv);
}

void ll_server_sync(sdk_server *srv, uint64_t now)
{
    bool got = false;
    pthread_mutex_lock(&srv->mu);
    refresh_live(srv, now);
    apply_done(srv, now, &got);
    ll_server_takeover_serve_locked(srv, now);
    queue_batch(srv, now);
    pthread_mutex_unlock(&srv->mu);
    if (got) {
        ll_notify_broadcast(&srv->notify, &srv->recv_cv);
    }
    ll_server_report_events(srv); /* and the messages released for on_message; may send */
}

void ll_server_sync_wait_idle(sdk_server *srv)
{
    bool got = false;
    while (srv->sync_state == LL_SYNC_QUEUED || srv->sync_state == LL_SYNC_RUNNING) {
        pthread_cond_wait(&srv->sync_cv, &srv->mu);
    }
    apply_done(srv, ll_now_ms(), &got);
}

void ll_server_sync_finish(sdk_server *srv)
{
    ll_server_sync_wait_idle(srv);
    srv->sync_quit = true;
    pthread_cond_broadcast(&srv->sync_cv);
}

sdk_err sdk_server_store_status(sdk_server *srv, char *detail, size_t len, uint64_t *failures)
{
    if (!srv) {
        return SDK_EINVAL;
    }
    pthread_mutex_lock(&srv->mu);
    int err = srv->store_err;
    if (detail && len > 0) {
        LL_DETAIL(detail, len, "%s", err ? srv->store_detail : "");
    }
    if (failures) {
        *failures = srv->store_failures;
    }
    pthread_mutex_unlock(&srv->mu);
    return (sdk_err)err;
}

uint64_t ll_server_sync_next(sdk_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    uint64_t next = srv->sync_list && srv->sync_state == LL_SYNC_IDLE ? srv->sync_retry_at : UINT64_MAX;
    if (ll_server_sync_always(srv) && srv->cfg.session_ttl_ms > 0) {
        next = LL_MIN(next, srv->sync_sweep_at);
    }
    pthread_mutex_unlock(&srv->mu);
    return next;
}
