/*
 * Taking a live session over from another instance (docs/cluster.md, "Takeover"; only with a
 * store that has channels, store_owner.h, and session_ttl_ms > 0).
 *
 * Every instance has a random id and listens on "lifeline:instance:<id>". It marks each
 * session it holds (store_owner.h: owner marks) when the session binds to a connection, and
 * refreshes the marks of all it holds every session_ttl_ms / 3. When a client resumes on
 * instance B a session B does not know, B reads the session's mark: if another instance A
 * holds it and the mark's token hash is the client's, B asks A on A's channel and waits up to
 * takeover_timeout_ms for A's answer on B's channel (at once if nobody listens there: A is
 * gone). A, on its I/O thread, captures the session as a record, lets it go (its connection
 * closed, the session ended with SDK_CAUSE_TAKEN_OVER, its messages still in the inbox
 * dropped: the client sends them again to B) and hands the record to its takeover thread,
 * which writes it (fenced by A's epoch, or by a claim made only while nobody holds one, so a
 * late answer never overwrites B's state) and answers. B then claims and resumes from the
 * store as before: exactly, since the store now has everything A had.
 *
 * Threads. The takeover thread owns the subscription and makes this module's round trips;
 * it never takes srv->mu (B's I/O thread waits for it holding srv->mu). The I/O thread hands
 * it work and takes requests from it through tk->mu (lock order: srv->mu, then tk->mu).
 */
#include "server_impl.h"

#include "ll.h"
#include "net.h"
#include "recstore.h"
#include "store_owner.h"
#include "wait.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TAKEOVER_TIMEOUT_DEFAULT_MS 500
#define SUB_RETRY_MIN_MS            100  /* the subscription lost: first reconnect after this */
#define SUB_RETRY_MAX_MS            2000 /* ...doubling up to this */

typedef struct tk_request {
    uint64_t id;       /* the session asked for */
    uint64_t reply_to; /* the asking instance */
} tk_request;

typedef struct tk_release {
    tk_request req;
    bool held;      /* we had the session: rec is what to write */
    ll_sessrec rec; /* its frames point into `frames` */
    ll_buf frames;
} tk_release;

/* A growable array of elements of one type. */
typedef struct tk_vec {
    void *v;
    size_t n, cap;
} tk_vec;

struct ll_takeover {
    sdk_server *srv;
    sdk_store *store;
    uint64_t instance;
    char channel[48];
    int wake_fd; /* work for the thread */
    pthread_t thread;
    bool started;
    ll_store_sub *sub;     /* thread only, once started */
    uint64_t sub_retry_at; /* thread only: no subscription, reconnect then */
    uint32_t sub_backoff_ms;
    uint64_t sweep_at; /* I/O thread only: next refresh of our marks */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a release we wait for arrived */
    /* under mu */
    bool quit;
    tk_vec reqs;       /* tk_request: from other instances, for the I/O thread */
    tk_vec rels;       /* tk_release: for the thread to write and answer */
    tk_vec marks;      /* ll_owner_mark: sessions bound here */
    tk_vec refresh;    /* ll_owner_mark: every session held, at a sweep */
    uint64_t awaiting; /* the session the I/O thread waits a release of (0: none) */
    bool released;
};

/* Room for one more element of size elem at the end of vec: its address, or NULL. */
static void *vec_push(tk_vec *vec, size_t elem)
{
    if (vec->n == vec->cap) {
        size_t cap = vec->cap ? vec->cap * 2 : 16;
        void *v = realloc(vec->v, cap * elem);
        if (!v) {
            return NULL;
        }
        vec->v = v;
        vec->cap = cap;
    }
    return (char *)vec->v + elem * vec->n++;
}

/* Hand vec's elements over (vec is left empty). */
static tk_vec vec_take(tk_vec *vec)
{
    tk_vec out = *vec;
    *vec = (tk_vec){0};
    return out;
}

static void channel_of(uint64_t instance, char *out, size_t len)
{
    LL_DETAIL(out, len, "lifeline:instance:%016llx", (unsigned long long)instance);
}

/* The mark of a session held by instance with this token: "<instance>:<sha256 hex>". */
static int mark_value(uint64_t instance, const uint8_t *token, size_t token_len, char *out, size_t len)
{
    uint8_t hash[LL_SHA256_LEN];
    LL_GUARD(ll_tls_sha256(token, token_len, hash));
    int at = snprintf(out, len, "%016llx:", (unsigned long long)instance);
    for (size_t i = 0; i < sizeof(hash) && at > 0 && (size_t)at + 3 <= len; i++) {
        at += snprintf(out + at, len - (size_t)at, "%02x", hash[i]);
    }
    return 0;
}

static uint64_t marks_ttl(const sdk_server *srv)
{
    return (uint64_t)srv->cfg.session_ttl_ms;
}

/* ---- the I/O thread's side (under srv->mu) ---- */

static void push_mark(sdk_server *srv, tk_vec *to, const srv_session *ss)
{
    ll_takeover *tk = srv->takeover;
    ll_owner_mark m = {.id = ss->id};
    if (mark_value(tk->instance, ss->token, sizeof(ss->token), m.value, sizeof(m.value)) != 0) {
        return; /* a mark is a hint: the next sweep tries again */
    }
    pthread_mutex_lock(&tk->mu);
    ll_owner_mark *slot = vec_push(to, sizeof(m));
    if (slot) {
        *slot = m;
    }
    pthread_mutex_unlock(&tk->mu);
}

void ll_server_takeover_mark_locked(sdk_server *srv, const srv_session *ss)
{
    if (srv->takeover) {
        push_mark(srv, &srv->takeover->marks, ss);
        ll_wake_signal(srv->takeover->wake_fd);
    }
}

static void refresh_one(void *val, void *ctx)
{
    sdk_server *srv = ctx;
    push_mark(srv, &srv->takeover->refresh, val);
}

/* The highest message of ss its application may have taken (with manual_ack, taken need not
 * mean acknowledged): those below the first still waiting for it, in the inbox or (sync
 * always) not yet released; all it received if none waits. The next owner flags them. */
static uint64_t taken_upto(sdk_server *srv, srv_session *ss)
{
    uint64_t first_waiting = ss->unsynced.count ? ll_msgq_at(&ss->unsynced, 0)->pub.seq : ss->s.received + 1;
    for (size_t i = 0; i < srv->inbox.count; i++) {
        const ll_msg *m = ll_msgq_at(&srv->inbox, i);
        if (m->pub.session == ss->id && m->pub.seq < first_waiting) {
            first_waiting = m->pub.seq;
        }
    }
    return first_waiting - 1;
}

/* ss as the record to hand over into r. */
static void capture_for_release(sdk_server *srv, srv_session *ss, tk_release *r)
{
    r->held = ll_server_capture(ss, 0, &r->frames, &r->rec) == 0;
    r->rec.received = LL_MAX(r->rec.received, taken_upto(srv, ss));
    ss->handed_over = true; /* its inbox messages go: the client sends them to the next owner */
}

/* Capture each requested session we hold, then let them go, then queue the answers. */
static void serve_requests(sdk_server *srv, ll_takeover *tk, tk_vec reqs)
{
    tk_release *rels = calloc(reqs.n ? reqs.n : 1, sizeof(*rels));
    srv_session **held = calloc(reqs.n ? reqs.n : 1, sizeof(*held));
    for (size_t i = 0; rels && held && i < reqs.n; i++) {
        rels[i].req = ((const tk_request *)reqs.v)[i];
        held[i] = ll_store_get(&srv->sessions, rels[i].req.id);
        if (held[i] && !held[i]->handed_over) {
            capture_for_release(srv, held[i], &rels[i]);
        } else {
            held[i] = NULL;
        }
    }
    ll_server_drop_handed_over_locked(srv);
    for (size_t i = 0; rels && held && i < reqs.n; i++) {
        if (held[i]) {
            ll_server_let_go_locked(srv, held[i]);
            ll_counter_add(&srv->metrics.takeovers[LL_TAKEOVER_SERVED], 1);
        }
    }
    pthread_mutex_lock(&tk->mu);
    for (size_t i = 0; rels && held && i < reqs.n; i++) {
        tk_release *slot = vec_push(&tk->rels, sizeof(*slot));
        if (slot) {
            *slot = rels[i];
        } else {
            ll_buf_free(&rels[i].frames); /* out of memory: the asker's bound runs out */
        }
    }
    pthread_mutex_unlock(&tk->mu);
    free(rels);
    free(held);
    free(reqs.v);
}

void ll_server_takeover_serve_locked(sdk_server *srv, uint64_t now)
{
    ll_takeover *tk = srv->takeover;
    if (!tk) {
        return;
    }
    /* A batch in flight may hold a session's older state: its write must land before ours,
     * so requests wait for the turn that applies it (the store thread wakes us then). */
    if (srv->sync_state == LL_SYNC_IDLE) {
        pthread_mutex_lock(&tk->mu);
        tk_vec reqs = vec_take(&tk->reqs);
        pthread_mutex_unlock(&tk->mu);
        if (reqs.n > 0) {
            serve_requests(srv, tk, reqs);
            ll_wake_signal(tk->wake_fd);
        } else {
            free(reqs.v);
        }
    }
    if (now >= tk->sweep_at) {
        tk->sweep_at = now + LL_MAX(marks_ttl(srv) / 3, 1u);
        ll_store_each(&srv->sessions, refresh_one, srv);
        ll_wake_signal(tk->wake_fd);
    }
}

/* The instance in session id's mark, if the mark is the client's (its token hashes to the
 * mark's hash) and names another instance; else 0. */
static uint64_t other_owner(ll_takeover *tk, const Lifeline__Hello *h)
{
    char mark[sizeof(((ll_owner_mark *)0)->value)], want[sizeof(mark)];
    if (ll_owner_get_mark(tk->store, h->session_id, mark, sizeof(mark)) != 0) {
        return 0;
    }
    char *end = NULL;
    uint64_t owner = strtoull(mark, &end, 16);
    if (end != mark + 16 || *end != ':' || owner == tk->instance ||
        mark_value(owner, h->resume_token.data, h->resume_token.len, want, sizeof(want)) != 0 ||
        strlen(mark) != strlen(want) || !ll_tls_equal_ct(mark, want, strlen(want))) {
        return 0;
    }
    return owner;
}

void ll_server_takeover_ask_locked(sdk_server *srv, const Lifeline__Hello *h)
{
    ll_takeover *tk = srv->takeover;
    uint64_t owner = tk ? other_owner(tk, h) : 0;
    if (owner == 0) {
        return;
    }
    char channel[48], msg[64];
    channel_of(owner, channel, sizeof(channel));
    LL_DETAIL(msg, sizeof(msg), "T %016llx %016llx", (unsigned long long)h->session_id,
              (unsigned long long)tk->instance);
    pthread_mutex_lock(&tk->mu);
    tk->awaiting = h->session_id; /* before asking: the answer may beat the publish's reply */
    tk->released = false;
    pthread_mutex_unlock(&tk->mu);
    uint64_t receivers = 0;
    int rc = ll_owner_publish(tk->store, channel, msg, &receivers);
    int bound = srv->cfg.takeover_timeout_ms > 0 ? srv->cfg.takeover_timeout_ms : TAKEOVER_TIMEOUT_DEFAULT_MS;
    ll_deadline dl = ll_deadline_in(bound);
    pthread_mutex_lock(&tk->mu);
    while (rc == 0 && receivers > 0 && !tk->released && ll_cond_wait(&tk->cv, &tk->mu, &dl) == 0) {
    }
    ll_takeover_outcome how = rc != 0          ? LL_TAKEOVER_FAILED
                              : receivers == 0 ? LL_TAKEOVER_OWNER_GONE
                              : tk->released   ? LL_TAKEOVER_RELEASED
                                               : LL_TAKEOVER_TIMED_OUT;
    tk->awaiting = 0;
    pthread_mutex_unlock(&tk->mu);
    ll_counter_add(&srv->metrics.takeovers[how], 1);
}

/* ---- the takeover thread ---- */

/* A message on our channel: a request ("T <session> <instance>") for the I/O thread, or the
 * answer ("R <session>") the I/O thread waits for. */
static void on_message(const char *msg, size_t len, void *ctx)
{
    ll_takeover *tk = ctx;
    char text[64];
    LL_DETAIL(text, sizeof(text), "%.*s", (int)LL_MIN(len, sizeof(text) - 1), msg);
    unsigned long long id = 0, from = 0;
    pthread_mutex_lock(&tk->mu);
    if (sscanf(text, "T %llx %llx", &id, &from) == 2 && id && from) {
        tk_request *slot = vec_push(&tk->reqs, sizeof(*slot));
        if (slot) {
            *slot = (tk_request){.id = id, .reply_to = from};
        }
        ll_wake_signal(tk->srv->loops[0].wake_fd); /* the I/O thread serves it on its next turn */
    } else if (sscanf(text, "R %llx", &id) == 1 && id && id == tk->awaiting) {
        tk->released = true;
        pthread_cond_broadcast(&tk->cv);
    }
    pthread_mutex_unlock(&tk->mu);
}

/* Write what we held (fenced: nothing if the asker already claimed it), then answer. */
static void release_one(ll_takeover *tk, tk_release *r)
{
    uint64_t ttl = marks_ttl(tk->srv), epoch = 0;
    if (r->held) {
        bool done = r->rec.owner_epoch && ll_recstore_put(tk->store, &r->rec, ttl) == LL_WRITE_DONE;
        if (!done && ll_owner_claim_free(tk->store, r->req.id, ttl, &epoch) == 0 && epoch) {
            r->rec.owner_epoch = epoch;
            (void)ll_recstore_put(tk->store, &r->rec, ttl);
        }
    }
    char channel[48], msg[32];
    channel_of(r->req.reply_to, channel, sizeof(channel));
    LL_DETAIL(msg, sizeof(msg), "R %016llx", (unsigned long long)r->req.id);
    uint64_t receivers = 0;
    (void)ll_owner_publish(tk->store, channel, msg, &receivers); /* a lost answer: its bound runs out */
    ll_buf_free(&r->frames);
}

/* Connect and subscribe again once the backoff allows. */
static void keep_subscribed(ll_takeover *tk, uint64_t now)
{
    if (tk->sub || now < tk->sub_retry_at) {
        return;
    }
    if (ll_owner_sub_open(tk->store, tk->channel, &tk->sub) != 0) {
        tk->sub = NULL;
        tk->sub_backoff_ms = LL_MIN(LL_MAX(tk->sub_backoff_ms * 2, SUB_RETRY_MIN_MS), SUB_RETRY_MAX_MS);
        tk->sub_retry_at = now + tk->sub_backoff_ms;
    } else {
        tk->sub_backoff_ms = 0;
    }
}

/* Sleep until a message, work, or (without a subscription) the next reconnect. */
static void wait_input(ll_takeover *tk, uint64_t now)
{
    struct pollfd p[2] = {{.fd = tk->wake_fd, .events = POLLIN},
                          {.fd = tk->sub ? ll_owner_sub_fd(tk->store, tk->sub) : -1, .events = POLLIN}};
    int timeout = tk->sub ? 1000 : (int)LL_MIN(tk->sub_retry_at > now ? tk->sub_retry_at - now : 0, 1000u);
    if (poll(p, 2, timeout) <= 0) {
        return;
    }
    if (p[1].revents != 0 && ll_owner_sub_read(tk->store, tk->sub, on_message, tk) != 0) {
        ll_owner_sub_close(tk->store, tk->sub); /* gone: nobody can ask us until we are back */
        tk->sub = NULL;
        tk->sub_retry_at = now + SUB_RETRY_MIN_MS;
    }
    if (p[0].revents != 0) {
        ll_wake_drain(tk->wake_fd);
    }
}

/* The work handed over since the last look; true once told to quit. */
static bool do_work(ll_takeover *tk)
{
    pthread_mutex_lock(&tk->mu);
    bool quit = tk->quit;
    tk_vec marks = vec_take(&tk->marks), refresh = vec_take(&tk->refresh), rels = vec_take(&tk->rels);
    pthread_mutex_unlock(&tk->mu);
    uint64_t ttl = marks_ttl(tk->srv);
    (void)ll_owner_write_marks(tk->store, marks.v, marks.n, ttl, false);    /* lost: the next sweep writes it */
    (void)ll_owner_write_marks(tk->store, refresh.v, refresh.n, ttl, true); /* never over another's mark */
    for (size_t i = 0; i < rels.n; i++) {
        release_one(tk, &((tk_release *)rels.v)[i]);
    }
    free(marks.v);
    free(refresh.v);
    free(rels.v);
    return quit;
}

static void *takeover_main(void *arg)
{
    ll_takeover *tk = arg;
    pthread_setname_np(pthread_self(), "lifeline-takeov");
    for (;;) {
        keep_subscribed(tk, ll_now_ms());
        wait_input(tk, ll_now_ms());
        if (do_work(tk)) {
            break;
        }
    }
    ll_owner_sub_close(tk->store, tk->sub);
    tk->sub = NULL;
    return NULL;
}

/* ---- start and stop ---- */

static void takeover_free(ll_takeover *tk)
{
    tk_release *rels = tk->rels.v;
    for (size_t i = 0; i < tk->rels.n; i++) {
        ll_buf_free(&rels[i].frames);
    }
    free(tk->rels.v);
    free(tk->reqs.v);
    free(tk->marks.v);
    free(tk->refresh.v);
    if (tk->wake_fd >= 0) {
        close(tk->wake_fd);
    }
    pthread_cond_destroy(&tk->cv);
    pthread_mutex_destroy(&tk->mu);
    free(tk);
}

int ll_server_takeover_start(sdk_server *srv)
{
    if (!ll_owner_supported(srv->store) || srv->cfg.session_ttl_ms <= 0) {
        return 0; /* nothing to take over, or no way to be asked */
    }
    ll_takeover *tk = calloc(1, sizeof(*tk));
    if (!tk) {
        return SDK_ENOMEM;
    }
    tk->srv = srv;
    tk->store = srv->store;
    tk->wake_fd = -1;
    pthread_mutex_init(&tk->mu, NULL);
    ll_cond_init(&tk->cv);
    int rc = ll_net_random(&tk->instance, sizeof(tk->instance));
    tk->instance |= 1; /* never 0, which means "none" in the messages */
    channel_of(tk->instance, tk->channel, sizeof(tk->channel));
    if (rc == 0) {
        rc = ll_wake_open(&tk->wake_fd);
    }
    /* Listening before the first session binds; a store that fails now is retried. */
    keep_subscribed(tk, ll_now_ms());
    if (rc == 0 && pthread_create(&tk->thread, NULL, takeover_main, tk) != 0) {
        rc = SDK_ENOMEM;
    }
    if (rc != 0) {
        ll_owner_sub_close(tk->store, tk->sub);
        takeover_free(tk);
        return rc;
    }
    tk->started = true;
    srv->takeover = tk;
    return 0;
}

void ll_server_takeover_stop(sdk_server *srv)
{
    ll_takeover *tk = srv->takeover;
    if (!tk || !tk->started) {
        return;
    }
    pthread_mutex_lock(&tk->mu);
    tk->quit = true;
    pthread_mutex_unlock(&tk->mu);
    ll_wake_signal(tk->wake_fd);
    pthread_join(tk->thread, NULL); /* its last answers and marks are out */
    tk->started = false;
}

void ll_server_takeover_free(sdk_server *srv)
{
    if (srv->takeover) {
        ll_server_takeover_stop(srv);
        takeover_free(srv->takeover);
        srv->takeover = NULL;
    }
}
