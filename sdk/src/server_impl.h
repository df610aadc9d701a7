/*
 * The server object shared by its API (server.c) and its I/O threads (server_io.c).
 *
 * Locking: one mutex, `mu`, guards the store, every session's reliable stream, the inbox,
 * the callbacks' queues (events, messages for on_message) and each loop's dirty and
 * incoming lists. Application threads take it briefly; the I/O threads take it to move
 * frames between links and sessions, never across socket I/O or a callback.
 *
 * I/O threads (sdk_server_config.io_threads, server_loops.c): each runs one loop (ll_srv_loop)
 * with its own poller, wake fd, connections and their timers, which belong to that thread
 * alone. Loop 0 also owns the listener (it hands accepted connections round-robin to the
 * loops), the detached sessions' expiries, the store, stopping, and every callback: the
 * other loops queue events and messages under mu and wake it, so callbacks stay on one
 * thread, in order. A session is served by the loop of its connection; a hello resuming a
 * session whose connection is on another loop moves the new connection there (with the
 * hello, handled again there), so one loop replaces the old connection. At stop the other
 * loops hand every connection back to loop 0 and exit; the drain and teardown then run as
 * with one loop.
 */
#ifndef LL_SERVER_IMPL_H
#define LL_SERVER_IMPL_H

#include "lifeline/server.h"
#include "lifeline/store.h"
#include "link.h"
#include "msgq.h"
#include "server_admit.h"
#include "server_metrics.h"
#include "notify.h"
#include "session.h"
#include "sessrec.h"
#include "store.h"
#include "timer.h"

#include <pthread.h>

typedef enum { CONN_HANDSHAKE = 0, CONN_HELLO, CONN_READY, CONN_CLOSING } conn_phase;

/* One client connection (I/O thread only, except `sess`, which changes under mu). */
typedef struct srv_conn {
    ll_link link;
    struct srv_session *sess;                           /* NULL until hello, and after detach */
    uint64_t welcomed;                                  /* the session a 0.5-RTT welcome offered (0: none)... */
    uint32_t welcomed_interval_ms, welcomed_timeout_ms; /* ...with these heartbeat values */
    uint64_t welcomed_received;                         /* ...and this last_received */
    conn_phase phase;
    ll_timer timer;     /* handshake deadline, heartbeat deadline, or closing deadline */
    uint32_t events;    /* registered with the poller (LL_POLL_*) */
    bool flush_queued;  /* on the flush list of this turn */
    bool more_to_write; /* its session had more than one batch to encode */
    bool tls_failed;    /* the handshake failed: only raw draining is left */
    bool half_closed;   /* closing: our side is shut for writing, draining the peer's */
    bool lingered;      /* stopping: the client has hung up after our close frame */
    /* metrics (server_metrics.c): counted in handshakes_in_progress; pings already in rtt */
    bool handshaking;
    uint64_t pings_counted;
    /* admission (server_admit.c): while handshaking, in accept order */
    uint64_t accepted_ms;
    struct srv_conn *hs_prev, *hs_next;
    struct srv_conn *next_flush;
    struct srv_conn *prev, *next; /* every connection of its loop, for stop */
    /* I/O threads (server_loops.c) */
    struct ll_srv_loop *loop;       /* the loop that serves it (changes under mu, by that loop) */
    struct srv_conn *next_incoming; /* on a loop's incoming list (under mu) */
    uint64_t moved_deadline_ms;     /* its timer's deadline while it goes to another loop */
    struct ll_srv_loop *move_to;    /* a resume of a session served there: it goes there */
    uint8_t *pending_hello;         /* ...with its hello, packed, to handle there */
    size_t pending_hello_len;
    char peer_addr[64];
    char identity[256];
} srv_conn;

typedef struct srv_session {
    uint64_t id;
    uint8_t token[16];
    ll_session s;
    srv_conn *conn;          /* NULL while detached (I/O thread writes, under mu) */
    ll_timer ttl;            /* armed while detached (I/O thread only) */
    uint32_t hb_interval_ms; /* as the client announced */
    uint32_t hb_timeout_ms;  /* as applied (clamped) */
    uint64_t in_inbox;       /* its messages waiting in the inbox */
    uint64_t last_rx_ms;     /* monotonic; copied from the link under mu for the liveness view */
    uint64_t rtt_us;         /* the client's smoothed round trip, as its pings report */
    char peer_addr[64];
    char identity[256];
    uint64_t connected_since_ms; /* wall clock */
    uint64_t connections;
    sdk_cause last_cause;
    bool dirty; /* on the dirty list of dirty_loop */
    struct srv_session *next_dirty;
    struct ll_srv_loop *dirty_loop;
    bool close_requested; /* sdk_server_close_session: I/O thread ends it */
    bool reconnect_allowed;
    bool handed_over; /* stopping: written to the store for another instance to resume */
    bool gone_away;   /* lame duck: told GOING_AWAY ahead of the others; takes nothing more */
    bool letting_go;  /* another instance owns it: the loop of its connection lets it go at
                         its next look; meanwhile nothing more is read or written for it */
    char close_reason[128];

    /* The session store (server_sync.c; only with srv->store), under mu. */
    uint64_t owner_epoch;    /* our claim on it in the store; 0: none (yet, or any more) */
    uint64_t synced_seq;     /* the store holds our frames up to this sequence */
    uint64_t redeliver_upto; /* its messages up to this may have reached a dead owner's application */
    uint64_t synced_ms;      /* when it was last written (monotonic) */
    uint8_t sync_want;       /* ll_sync_want: on the sync list unless NONE */
    struct srv_session *next_sync;
    ll_msgq unsynced; /* sync always: accepted, delivered once the store holds them as received */
} srv_session;

/* Where the batch for the store thread is. */
typedef enum { LL_SYNC_IDLE = 0, LL_SYNC_QUEUED, LL_SYNC_RUNNING, LL_SYNC_DONE } ll_sync_state;

/* What a session's next write to the store is. */
typedef enum {
    LL_SYNC_NONE = 0,
    LL_SYNC_DELTA,  /* sync always: what changed (received, consumed, acked, new frames) */
    LL_SYNC_FULL,   /* the whole record (detached: another instance may resume it) */
    LL_SYNC_DELETE, /* handover: resumed here, so the record written at detach is stale */
} ll_sync_want;

/* A session event queued under mu, for loop 0 to report once it is released. */
typedef struct srv_event {
    sdk_session_event_type type;
    uint64_t session;
    sdk_cause cause;
    char peer_addr[64];
    char detail[256];
} srv_event;

/* One I/O thread's loop: its poller and connections (see the locking notes above). */
typedef struct ll_srv_loop {
    struct sdk_server *srv;
    unsigned index; /* 0: the listener's, the callbacks' and stop's */
    int poll_fd;
    int wake_fd;
    pthread_t thread; /* not for loop 0: that is srv->thread */
    bool thread_started;
    ll_timers timers;                /* its connections' deadlines (its thread only) */
    srv_conn *conns;                 /* its connections (its thread only) */
    srv_conn *hs_oldest, *hs_newest; /* its handshaking connections, oldest first (its thread only) */
    bool self_wake;                  /* work for its own thread: poll, do not sleep (its thread only) */
    /* Under mu. */
    srv_session *dirty; /* its sessions with new output or acks due */
    bool wake_pending;  /* its wake fd is signalled, or its thread is to look anyway */
    srv_conn *incoming; /* connections handed to it: accepted, moved by a resume, back at stop */
    bool retired;       /* stopping: it handed everything to loop 0 and exits */
} ll_srv_loop;

#define LL_SERVER_IO_THREADS_AUTO_MAX 8 /* io_threads 0: one per online CPU, at most this many */

struct sdk_server {
    sdk_server_config cfg; /* strings point into `strings` */
    char *strings;
    ll_tls_ctx *tls;
    int listen_fd;
    uint16_t port;
    pthread_t thread; /* loop 0's */
    bool thread_started;
    ll_srv_loop *loops; /* nloops of them; loops[0] runs on srv->thread */
    unsigned nloops;
    unsigned next_loop;           /* the loop the next accepted connection goes to (loop 0 only) */
    bool loops_joined;            /* stopping: the other loops have exited (loop 0 only) */
    ll_timers ttls;               /* detached-session expiries (under mu; fired by loop 0) */
    ll_carver carver;             /* received messages are carved from its blocks (under mu) */
    ll_msgq deliver;              /* with on_message: accepted, for the callback outside mu (under mu) */
    ll_msgq delivering;           /* ...taken from it by loop 0, delivered outside mu (loop 0 only) */
    uint64_t accept_paused_until; /* listener unwatched until then, after EMFILE (I/O only) */
    bool draining;                /* stopping: input is no longer read (I/O thread only) */
    uint64_t lame_duck_start;     /* lame duck: the window began then, 0: not (yet) (I/O only) */
    size_t lame_duck_total;       /* ...with this many clients to tell, of which told so far */
    size_t lame_duck_told;
    uint64_t drain_start;     /* the drain began then (I/O thread only) */
    uint64_t drain_deadline;  /* the drain ends by then at the latest (I/O thread only) */
    struct srv_event *events; /* session events to report once mu is released (under mu) */
    size_t nevents, events_cap;
    struct srv_event *reporting; /* ...taken from it by loop 0, reported outside mu (loop 0 only) */
    size_t nreporting, reporting_cap;

    pthread_mutex_t mu;
    pthread_cond_t recv_cv; /* inbox gained a message, or stopped */
    pthread_cond_t send_cv; /* a session's queue shrank, a session went away, or stopped */
    ll_store sessions;
    ll_msgq inbox;
    bool stopping;               /* sdk_server_stop: no new input; replies still go out (drain) */
    bool lame_duck;              /* stopping, but the lame-duck window still runs: input goes on */
    bool sends_closed;           /* the drain is over: sdk_server_send returns SDK_ECLOSED */
    bool input_closed;           /* draining, and no message can reach the inbox any more: */
                                 /* sdk_server_recv reports the stop once it is empty */
    size_t unsynced;             /* sync always: messages in sessions' unsynced queues */
    uint64_t last_send_ms;       /* when the application last queued a message (drain ends when quiet) */
    bool stopped;                /* the I/O thread has exited */
    sdk_store *store;            /* sessions outlive the process there; NULL: none (the caller's) */
    srv_session *sync_list;      /* sessions with a write to the store due (server_sync.c) */
    struct sync_job *sync_batch; /* the batch with the store thread, or its answers */
    size_t sync_n;
    ll_sync_state sync_state;
    pthread_cond_t sync_cv; /* the store thread has a batch, finished one, or is to quit */
    pthread_t sync_thread;
    bool sync_thread_started, sync_cv_ready, sync_quit;
    uint64_t sync_retry_at; /* the store failed: no write before then (monotonic ms) */
    uint32_t sync_backoff_ms;
    uint64_t sync_sweep_at;  /* next refresh of live sessions' records (sync always) */
    uint64_t store_failures; /* batches that failed (lifeline_store_write_failures_total) */
    int store_err;           /* the last batch's failure, 0 once one goes through (under mu) */
    char store_detail[256];
    struct ll_tk_refresher *tickets; /* with a store: the shared TLS ticket keys */
    struct ll_takeover *takeover;    /* with a store that has channels: takeovers (server_takeover.c) */
    /* Lock-free counters, but for metrics.retired (under mu). */
    ll_server_metrics metrics;
    /* Under mu: the last sdk_server_reload_tls, for the I/O thread to report as an event. */
    bool reload_pending;
    bool reload_ok;
    char reload_detail[256];
    ll_admit admit;   /* loop 0 only */
    ll_notify notify; /* sdk_server_fd: signalled with every recv_cv and send_cv broadcast */
};

#define LL_SERVER_CLOSING_MS       1000   /* how long a closing connection may take to flush */
#define LL_SERVER_DRAIN_MS         1000   /* at most this long for the application to answer at stop */
#define LL_SERVER_DRAIN_QUIET_MS   20     /* ...or until it has been this quiet with nothing to read */
#define LL_SERVER_LAME_DUCK_MAX_MS 600000 /* the longest lame-duck window (sdk_server_config) */

/* server.c. Under mu: put the session on the dirty list and wake the I/O thread if needed. */
void ll_server_mark_dirty_locked(sdk_server *srv, srv_session *ss);
/* server.c. Under mu: the application is done with ss's messages up to seq (of its current
 * epoch): acknowledge them when due (under sync always, once the store holds that). */
void ll_server_consumed_locked(sdk_server *srv, srv_session *ss, uint64_t seq);
/* Whether a message handed to on_message counts as consumed as it is queued. With one loop
 * its ack cannot leave before the callback ran (the same thread writes it afterwards); with
 * several, loop 0 acknowledges it once the callback returned (ll_server_run_callbacks). */
static inline bool ll_server_taken_at_queue(const sdk_server *srv)
{
    return !srv->cfg.manual_ack && srv->nloops <= 1;
}
/* server.c. Under mu: make sure loop 0 runs a turn soon (it may be asleep). */
void ll_server_wake_locked(sdk_server *srv);

/* server_loops.c: the I/O threads (see the locking notes above). */
/* The loops, each with its poller and wake fd; loop 0 watches the listener. 0 or SDK_EIO. */
int ll_server_loops_open(sdk_server *srv, unsigned n, char *why, size_t len);
/* Start the threads of the loops but loop 0. 0 or SDK_ENOMEM (the started ones keep running). */
int ll_server_loops_start(sdk_server *srv);
/* Loop 0, stopping: wait for the other loops to hand their connections back and exit. */
void ll_server_loops_join(sdk_server *srv);
/* Freeing the server: close every loop's descriptors and free them. */
void ll_server_loops_free(sdk_server *srv);
/* Under mu: make sure lp runs a turn soon. */
void ll_server_loop_wake_locked(sdk_server *srv, ll_srv_loop *lp);
/* Under mu: loop 0 has work another loop made (an event or a message for a callback, an
 * expiry to watch): wake it, if this is another thread. */
void ll_server_tell_loop0_locked(sdk_server *srv);
/* Whether the calling thread runs lp. */
bool ll_server_on_loop(const sdk_server *srv, const ll_srv_loop *lp);
/* Whether the calling thread runs the callbacks (loop 0's, or any with one loop). */
bool ll_server_runs_callbacks(const sdk_server *srv);
/* Under mu, loop 0: take what the callbacks have queued, to run once mu is released. */
void ll_server_take_callbacks_locked(sdk_server *srv);
/* Without mu, loop 0: the events, then the messages, that ll_server_take_callbacks_locked took. */
void ll_server_run_callbacks(sdk_server *srv);
/* The loop a new connection goes to (loop 0 only): round-robin over those not retired. Under mu. */
ll_srv_loop *ll_server_pick_loop_locked(sdk_server *srv);
/* Under mu: conn (its registration with its old loop undone) is lp's from now on. */
void ll_server_hand_locked(sdk_server *srv, srv_conn *conn, ll_srv_loop *lp);
/* Under mu, in a hello: the session it resumes is served by another loop: conn goes there
 * with the hello. 0, or the sdk_err conn failed with. */
int ll_server_move_for_resume(srv_conn *conn, const Lifeline__Hello *h, ll_srv_loop *to);
/* The hello a moved connection carries, unpacked (NULL: out of memory); the caller frees it
 * with lifeline__hello__free_unpacked. The packed copy is freed. */
Lifeline__Hello *ll_server_take_hello(srv_conn *conn);
/* The main function of a loop but loop 0. */
void *ll_server_worker_main(void *arg);

/* server_handoff.c: connections between loops (each function on the thread named). */
/* conn's loop: conn leaves that loop's poller, timers and list (freed, or to another loop). */
void ll_server_release_conn(srv_conn *conn);
/* conn's loop: conn goes to loop `to`, whose thread adopts it; the caller touches it no more. */
void ll_server_hand_off(sdk_server *srv, srv_conn *conn, ll_srv_loop *to);
/* lp's thread: the connections handed to it (a list through next_incoming) join it; a moved
 * one's hello is handled. */
void ll_server_adopt_all(sdk_server *srv, ll_srv_loop *lp, srv_conn *list);
/* Loop 0: a new connection to the next loop (with one loop, loop 0 at once). */
void ll_server_place(sdk_server *srv, srv_conn *conn);
/* Loop 0, stopping: join the other loops and take back their connections. Idempotent. */
void ll_server_gather(sdk_server *srv);
/* A loop but 0, stopping: everything it serves goes to loop 0. */
void ll_server_retire(sdk_server *srv, ll_srv_loop *lp);

/* server_io.c: the loop and its connections (I/O thread). */
typedef enum { LL_TURN_IDLE = 0, LL_TURN_BUSY, LL_TURN_DONE } ll_turn;
/* One turn of the loop: wait for the poller (no longer than the next deadline), handle what
 * is ready, service dirty sessions, fire timers. BUSY: something was ready or work is left,
 * so the next turn should not sleep; DONE: the drain is over (teardown comes next). The
 * thread's loop and the fuzzers call this same function. */
ll_turn ll_server_io_turn(sdk_server *srv);
void *ll_server_io_main(void *arg);
/* One turn of a loop but loop 0: its connections only. False once it has retired. */
bool ll_server_worker_turn(ll_srv_loop *lp);
void ll_server_set_events(sdk_server *srv, srv_conn *conn);
/* The connection's socket is ready with revents (0: only to write what is due). */
void ll_server_conn_ready(sdk_server *srv, srv_conn *conn, uint32_t revents);
/* The connection failed with rc: it owes the client a Close (then lingers), or goes now. */
void ll_server_conn_failed(sdk_server *srv, srv_conn *conn, int rc, sdk_cause cause);
/* Detach the connection's session (kept for resume) and free the connection. */
void ll_server_drop_conn(sdk_server *srv, srv_conn *conn, sdk_cause cause);
/* Send a Close and let the connection flush for a moment before it goes. */
void ll_server_conn_closing(sdk_server *srv, srv_conn *conn, int code, const char *reason, bool reconnect);
/* Under mu: acks due and data the window allows, onto the connection's link. */
int ll_server_fill_output(srv_conn *conn);

/* server_session.c: sessions and the greeting (I/O thread). */
/* Under mu: an event to report once mu is released (ll_server_report_events, without mu). */
void ll_server_queue_event(sdk_server *srv, sdk_session_event_type type, const srv_session *ss, sdk_cause cause);
/* I/O thread: an event about the server rather than a session (session 0), with detail. */
void ll_server_queue_detail_event(sdk_server *srv, sdk_session_event_type type, const char *peer, const char *detail);
void ll_server_report_events(sdk_server *srv);
/* Under mu: forget a session for good: remove it from the store and free it. */
void ll_server_end_session(sdk_server *srv, srv_session *ss, sdk_session_event_type type, sdk_cause cause);
/* Under mu: a session new here (opened or taken from the store) is gated under sync always:
 * nothing beyond what the store holds leaves. */
void ll_server_gate_session(sdk_server *srv, srv_session *ss);
/* Under mu: the connection's session waits, detached, for a resume until its TTL. */
void ll_server_detach_locked(sdk_server *srv, srv_conn *conn, sdk_cause cause);
/* Under mu: bind the connection to the session its hello names, or to a new one, and
 * welcome it. 0 or the sdk_err the connection failed with. */
int ll_server_on_hello(sdk_server *srv, srv_conn *conn, const Lifeline__Hello *h);
/* Takes mu: the client resumed a ticket tagged with a live session: welcome it at once. */
int ll_server_welcome_early(sdk_server *srv, srv_conn *conn);
/* Under mu: an accepted message, into the inbox or to the callback. 0 or SDK_ENOMEM. */
int ll_server_on_data(sdk_server *srv, srv_session *ss, const ll_data_view *d, bool *got);
/* Under mu: fill the liveness fields of info (last heard, missed heartbeats, RTT). */
void ll_server_session_liveness(const srv_session *ss, uint64_t now_ms, uint64_t wall_ms, sdk_session_info *info);

/* server_handover.c: sessions and the store (I/O thread, under mu; only with srv->store). */
/* Stopping: claim every session in the store and write its record, then drop its messages
 * still in the inbox (the client sends them again to the next owner). */
void ll_server_handover_all(sdk_server *srv);
/* Under mu: messages in the inbox of sessions marked handed_over leave it (freed). */
void ll_server_drop_handed_over_locked(sdk_server *srv);

/* ss as a store record (server_handover.c): its id, token hash, heartbeat values, claim and
 * stream, with its unacknowledged frames from the first-th on appended to frames (see
 * ll_sessrec_capture_from). 0, SDK_ENOMEM or SDK_ETOOBIG. */
int ll_server_capture(const srv_session *ss, size_t first, ll_buf *frames, ll_sessrec *r);

/* Under mu, lame duck: write ss to the store (as ll_server_handover_all does for all) once
 * the batch in flight is done, and drop its messages still in the inbox. */
void ll_server_hand_over_one(sdk_server *srv, srv_session *ss);
/* A hello names a session this process does not know: take it over from the store if its
 * record is there and the hello's token matches. The new live session, in srv->sessions
 * (detached, to be resumed by the caller), or NULL. */
srv_session *ll_server_adopt_stored(sdk_server *srv, const Lifeline__Hello *h);

/* server_sync.c: the store kept in step with live sessions (only with srv->store). */
/* Whether the store is written before acks, data and deliveries leave (sync always). */
static inline bool ll_server_sync_always(const sdk_server *srv)
{
    return srv->store && srv->cfg.store_sync == SDK_STORE_SYNC_ALWAYS;
}
/* Under mu: ss has a write to the store due (a DELTA never replaces a FULL or DELETE). */
void ll_server_want_sync_locked(sdk_server *srv, srv_session *ss, ll_sync_want want);
/* Under mu: ss goes: off the sync list, its undelivered messages freed. */
void ll_server_sync_forget_locked(sdk_server *srv, srv_session *ss);
/* I/O thread, without mu: write every due session in one batch, then let out what the
 * store now holds (data, acks, messages to the application). A failed write is retried
 * with backoff; a fenced one means another instance owns the session: it is let go. */
void ll_server_sync(sdk_server *srv, uint64_t now);
/* When ll_server_sync next has work (UINT64_MAX: none known). I/O thread. */
uint64_t ll_server_sync_next(sdk_server *srv);
/* At start, with a store: the store thread. 0 or SDK_ENOMEM (ll_server_sync_stop cleans up). */
int ll_server_sync_start(sdk_server *srv);
/* Stopping, I/O thread, under mu: wait for the batch in flight, apply it, and tell the store
 * thread to quit (the caller writes the sessions itself from here on). */
void ll_server_sync_finish(sdk_server *srv);

/* Under mu: wait for the batch with the store thread (if any) and take its answers. */
void ll_server_sync_wait_idle(sdk_server *srv);
/* Freeing the server: join the store thread and free what is left. Without mu. */
void ll_server_sync_stop(sdk_server *srv);
/* Under mu: another instance owns ss now: its connection (if any) is told to reconnect, and
 * the session ends here with SDK_CAUSE_TAKEN_OVER (server_sync.c). */
void ll_server_let_go_locked(sdk_server *srv, srv_session *ss);

/* server_takeover.c: a live session taken over by another instance (docs/cluster.md). */
typedef struct ll_takeover ll_takeover;
/* At start, after the store thread: an instance id, its channel subscribed (blocks up to the
 * store's timeout; a failure is retried by its thread) and its thread. 0 or SDK_ENOMEM /
 * SDK_EIO. Does nothing without a store that has channels, or with session_ttl_ms 0. */
int ll_server_takeover_start(sdk_server *srv);
/* Stopping, I/O thread, before the handover (without mu): stop listening (an asker then
 * proceeds at once) and join the thread once its pending answers are out. */
void ll_server_takeover_stop(sdk_server *srv);
/* Freeing the server: stop if needed, free everything. */
void ll_server_takeover_free(sdk_server *srv);
/* Under mu: ss is bound to a connection here: mark it ours in the store (by the thread). */
void ll_server_takeover_mark_locked(sdk_server *srv, const srv_session *ss);
/* I/O thread, under mu, once per turn: let go of the sessions other instances asked for
 * (once no batch of the store thread is in flight) and hand their records to the thread;
 * every session_ttl_ms / 3 refresh the marks of every session held. */
void ll_server_takeover_serve_locked(sdk_server *srv, uint64_t now);
/* I/O thread, under mu, before a hello's session is looked up in the store: if another live
 * instance holds it (its mark, with the client's token), ask it to let go and wait for its
 * answer, up to takeover_timeout_ms (not at all if it no longer listens). Blocks the I/O
 * thread meanwhile. */
void ll_server_takeover_ask_locked(sdk_server *srv, const Lifeline__Hello *h);

/* server_tickets.c: TLS ticket keys shared through the store (lifeline/store.h). */
/* With a store: fetch the keys (blocks up to the store's timeout; a store failure only logs
 * in sdk_server_ticket_keys) and seal tickets with them. 0 or SDK_ENOMEM / SDK_EIO / SDK_ETLS
 * with why. Call once srv->tls exists, before the I/O thread starts. */
int ll_server_tickets_start(sdk_server *srv, char *why, size_t len);
/* Stop refreshing and free the keys: after the TLS context is freed. */
void ll_server_tickets_stop(sdk_server *srv);
/* What a Welcome says of a session. */
typedef struct ll_welcome_values {
    uint64_t id;
    uint8_t token[sizeof(((srv_session *)0)->token)];
    uint64_t last_received;
    uint32_t hb_interval_ms, hb_timeout_ms;
} ll_welcome_values;
/* Under mu, for an early welcome: the values of session id as its record in the store has
 * them, if tls resumed a ticket whose token matches the record's hash. Reads only (claims
 * nothing, LL-EARLY-7); blocks up to the store's timeout. */
bool ll_server_peek_stored(sdk_server *srv, uint64_t id, const ll_tls *tls, ll_welcome_values *out);
/* The configured values checked (0: the default). */
bool ll_server_tickets_config_ok(const sdk_server_config *cfg);
/* server_reload.c. I/O thread, under mu: queue the event of a reload, if one is pending. */
void ll_server_reload_event_locked(sdk_server *srv);
/* The TLS context's configuration: the configured files. */
ll_tls_ctx_config ll_server_tls_config(const sdk_server *srv);
/* After the context was built or rebuilt: its certificate's expiry into the metrics. */
void ll_server_note_certificate(sdk_server *srv);

/* server_stop.c (I/O thread). */
/* Refuse new clients and stop reading, so the application can answer what it already took
 * (sdk_server_send still works) while nothing new arrives. */
void ll_server_begin_drain(sdk_server *srv, uint64_t now);

/* I/O thread, stopping: no new clients from now on; connections that have no session yet
 * go at once. Idempotent. */
void ll_server_stop_listening(sdk_server *srv);

/* I/O thread, stopping with cfg.lame_duck_ms (server_lameduck.c): tell the clients whose
 * turn has come. True while the window runs; false once it is over (then the drain). */
bool ll_server_lame_duck(sdk_server *srv, uint64_t now);

/* How long the I/O thread may sleep in the lame-duck window: until the next client's turn. */
uint64_t ll_server_lame_duck_next(const sdk_server *srv);
/* Whether the drain is over: the application has taken everything and gone quiet, or the
 * deadline passed; from then on sdk_server_send returns SDK_ECLOSED. */
bool ll_server_drain_over(sdk_server *srv, uint64_t now);
/* Stop, last phase: encode what the windows allow, tell every client we are going away,
 * give the frames a moment, close every connection and free every session. */
void ll_server_io_teardown(sdk_server *srv);

#endif
