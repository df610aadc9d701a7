/*
 * The client object shared by the API (client.c) and its I/O thread (client_io.c).
 *
 * Locking: one mutex, `mu`, guards every field below it. Application threads and the I/O
 * thread take it briefly; nobody holds it across socket I/O or the event callback. The
 * link itself belongs to the I/O thread alone. There is no other lock, so no lock order.
 */
#ifndef LL_CLIENT_H
#define LL_CLIENT_H

#include "endpoints.h"
#include "lifeline/sdk.h"
#include "link.h"
#include "metrics.h"
#include "msgq.h"
#include "notify.h"
#include "session.h"
#include "tls.h"

#include <pthread.h>
#include <stdbool.h>

struct sdk_client {
    sdk_config cfg; /* copy; its strings point into `strings` */
    char *strings;
    ll_tls_ctx *tls;
    int wake_fd;
    pthread_t thread;
    bool thread_started;
    /* The fields up to mu are the connecting thread's (sdk_connect makes the first attempts:
     * ll_client_connect_first), then the I/O thread's alone once it is started. */
    uint64_t first_deadline_ms;    /* the first attempt's deadline, counted from sdk_connect's call
                                   (TLS setup included): ll_client_attempt_deadline */
    ll_carver carver;              /* received messages are carved from its blocks */
    ll_msgq deliver;               /* with on_message: accepted, for the callback once mu is
                                   released */
    ll_endpoints endpoints;        /* where attempts go; filled by sdk_connect */
    bool going_away;               /* the server's last Close was GOING_AWAY */
    struct ll_client_first *first; /* the session sdk_connect established, until the I/O
                                      thread takes it over (client_io.c) */

    pthread_mutex_t mu;
    pthread_cond_t recv_cv; /* recvq gained a message, or closed */
    pthread_cond_t send_cv; /* sendq lost messages (acked), state changed, or closed */
    ll_session s;           /* sendq and sequence state */
    ll_msgq recvq;          /* accepted, not yet taken by sdk_recv */
    uint64_t session_id;    /* 0 until the first welcome */
    uint8_t token[64];      /* the resume token: up to 64 bytes (docs/protocol.md) */
    size_t token_len;
    sdk_state state;
    bool closing;      /* sdk_close asked the I/O thread to stop */
    bool wake_pending; /* the I/O thread has been signalled and not yet looked */
    bool first_done;   /* the first connection attempt finished (for sdk_connect) */
    int close_err;     /* why the client closed on its own (SDK_OK after sdk_close) */
    int last_err;
    char last_detail[256];
    sdk_stats stats;        /* counters kept here; sdk_get_stats fills the rest */
    size_t endpoint_index;  /* sdk_current_endpoint: the entry in use or tried, as configured */
    char endpoint_addr[64]; /* ... and its address ("" until resolved) */
    ll_histogram rtt;       /* every answered ping's round trip (sdk_get_metrics) */

    ll_notify notify; /* sdk_fd: signalled with every recv_cv and send_cv broadcast (any lock) */
};

/* client_session.c (I/O thread). The hello, from the client's state (takes mu). */
int ll_client_send_hello(sdk_client *c, ll_conn *conn);
/* Under mu: adopt the session the welcome describes, and attach it to the link's connection.
 * Sets *lost when the server no longer knew our session. 0 or the sdk_err the connection
 * failed with. */
int ll_client_adopt_welcome(sdk_client *c, ll_link *l, const Lifeline__Welcome *w, bool *lost);
/* Under mu: a second welcome on a READY connection (after an early one): its heartbeat values. */
int ll_client_rewelcome(sdk_client *c, ll_conn *conn, const Lifeline__Welcome *w);

/* Wake the I/O thread unless it is already due to look (caller holds mu). */
void ll_client_wake_locked(sdk_client *c);
/* I/O thread: the deadline of the attempt that starts now (connect_timeout_ms from now, or
 * for the first one from sdk_connect's call). */
uint64_t ll_client_attempt_deadline(sdk_client *c);
/* The I/O thread's entry point. */
void *ll_client_io_main(void *arg);
/* sdk_connect without retry_on_first_connect: the first round of attempts on the calling
 * thread, then the I/O thread started on the session it established. The handshake's
 * memory (OpenSSL's per-thread random generators, the allocator's per-thread cache of what
 * it freed, the deep stack) is then the caller's, paid once for all the clients it connects,
 * not by each client's own thread for its whole life; and the connect waits for no thread
 * to start or to wake it. The events of these attempts run on the calling thread, before
 * sdk_connect returns. 0 (CONNECTED, the thread started) or the close error (CLOSED, no
 * thread). */
int ll_client_connect_first(sdk_client *c);

#endif
