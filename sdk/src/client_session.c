/*
 * The client's side of the greeting, on its I/O thread: the Hello from the client's state,
 * the Welcome adopted into it (resume where the server is, or start over), and the second
 * Welcome that updates the heartbeat after an early one. The rules are docs/protocol.md's.
 */
#include "client.h"

#include "ll.h"
#include "net.h"

#include <string.h>

int ll_client_send_hello(sdk_client *c, ll_conn *conn)
{
    pthread_mutex_lock(&c->mu);
    ll_hello h = {.session_id = c->session_id,
                  .token = c->token,
                  .token_len = c->token_len,
                  .last_received = c->s.received,
                  .heartbeat_interval_ms = (uint32_t)c->cfg.heartbeat_interval_ms,
                  .heartbeat_timeout_ms = (uint32_t)c->cfg.heartbeat_timeout_ms,
                  .window_messages = c->cfg.window_messages,
                  .window_bytes = c->cfg.window_bytes};
    int rc = ll_conn_send_hello(conn, &h);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* How often we ping: ours, or more often if the server watches us more closely. */
static uint32_t ping_interval(const sdk_client *c, const Lifeline__Welcome *w)
{
    uint32_t ours = (uint32_t)c->cfg.heartbeat_interval_ms;
    return w->heartbeat_interval_ms ? LL_MIN(ours, w->heartbeat_interval_ms) : ours;
}

/* Resume our session where the server says it is, or start over if it no longer knew it. */
static int continue_session(sdk_client *c, ll_link *l, const Lifeline__Welcome *w, bool *lost)
{
    *lost = c->session_id != 0 && !w->resumed;
    if (c->session_id != 0 && w->resumed && ll_session_resume(&c->s, w->last_received) != 0) {
        return ll_conn_fail(&l->conn, SDK_EPROTO, "server resumed at sequence %llu, outside what we sent",
                            (unsigned long long)w->last_received);
    }
    if (*lost && ll_session_restart(&c->s) != 0) {
        return ll_conn_fail(&l->conn, SDK_ENOMEM, "out of memory renumbering the queue for a new session");
    }
    c->stats.sessions_lost += *lost;
    return 0;
}

int ll_client_adopt_welcome(sdk_client *c, ll_link *l, const Lifeline__Welcome *w, bool *lost)
{
    if (w->version != LL_PROTOCOL_VERSION || w->resume_token.len > sizeof(c->token)) {
        return ll_conn_fail(&l->conn, SDK_EPROTO, "unsupported welcome (version %u)", w->version);
    }
    if (w->resumed && w->session_id != c->session_id) {
        return ll_conn_fail(&l->conn, SDK_EPROTO, "welcome resumes session %llu, ours is %llu",
                            (unsigned long long)w->session_id, (unsigned long long)c->session_id);
    }
    LL_GUARD(continue_session(c, l, w, lost));
    c->session_id = w->session_id;
    c->s.peer_max_frame = w->max_frame ? w->max_frame : LL_MAX_FRAME_DEFAULT;
    if (w->resume_token.len > 0) { /* protobuf-c leaves an empty token NULL: no memcpy from it */
        memcpy(c->token, w->resume_token.data, w->resume_token.len);
    }
    c->token_len = w->resume_token.len;
    c->s.window_messages = LL_MAX(1u, (uint32_t)ll_params_window(w->window_messages, c->cfg.window_messages));
    c->s.window_bytes = LL_MAX(1u, ll_params_window(w->window_bytes, c->cfg.window_bytes));
    /* Our own timeout decides when we give up on the server; the welcome's values are the
     * (clamped) ones the server applies when watching us. */
    ll_conn_attach(&l->conn, &c->s, ping_interval(c, w), (uint32_t)c->cfg.heartbeat_timeout_ms, ll_now_ms());
    l->keepalive_ms = (uint32_t)c->cfg.heartbeat_timeout_ms; /* set by the first flush after */
    return 0;
}

int ll_client_rewelcome(sdk_client *c, ll_conn *conn, const Lifeline__Welcome *w)
{
    if (!w->resumed || w->session_id != c->session_id) {
        return ll_conn_fail(conn, SDK_EPROTO, "second welcome for session %llu, ours is %llu",
                            (unsigned long long)w->session_id, (unsigned long long)c->session_id);
    }
    ll_conn_set_heartbeat(conn, ping_interval(c, w), (uint32_t)c->cfg.heartbeat_timeout_ms);
    return 0;
}
