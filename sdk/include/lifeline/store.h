/*
 * Lifeline session stores: where a server keeps the state of its sessions so that a
 * session can outlive the process that opened it.
 *
 * A store holds one record per session: its id, a SHA-256 hash of its resume token (never
 * the token), both directions' sequence state, the messages to the client not yet
 * acknowledged, and the values the client announced. Any server given the same store can
 * resume any session in it.
 *
 * Backends, chosen by URL:
 *   "memory:"                 in this process only (what a server uses by default); two
 *                             servers in one process may share one handle
 *   "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"
 *                             a Redis server (6.2 or later; tested with 7). HOST is a name,
 *                             an IPv4 address or an IPv6 address in brackets
 *                             ("redis://[::1]:6379/2"); PORT is 1-65535 (default 6379);
 *                             DB is 0-2147483647 (default 0), and must exist on the server
 *                             (its `databases` setting, 16 by default). With credentials,
 *                             every connection to it (the subscription for takeovers too)
 *                             first sends AUTH [USER] PASSWORD: an ACL user
 *                             ("redis://app:secret@cache:6379") or, with ":PASSWORD@", the
 *                             default user (`requirepass`). Both are percent-decoded
 *                             (RFC 3986: "%40" for '@', "%25" for '%'); the password is
 *                             never put in an error message (the URL is quoted with
 *                             "***" in place of the credentials). TLS and Redis Cluster
 *                             are not supported yet.
 *
 * Ownership. One server owns a session at a time. Taking a session over increments its
 * owner epoch atomically in the store (epochs never repeat, even after a record expires),
 * and a write carrying an older epoch is refused ("fenced: owned by epoch N"), so an owner
 * that lost a session can never write over its new owner.
 *
 * Failures. Every call to a Redis store is bounded by the handle's timeout: an unreachable or
 * silent server gives SDK_ECONNREFUSED, SDK_ECONNECT or SDK_ETIMEDOUT within it, never a hang.
 * After a failure the handle reconnects on its next call. SIGPIPE is kept from the process
 * while a call writes to Redis.
 *
 * Threads. A handle may be used from any number of threads; its calls run one at a time.
 *
 * Redis keys: "lifeline:session:<id>" (a hash: "epoch", the owner; "rec", the record's
 * header), "lifeline:session:<id>:frames" (a list of the unacknowledged frames to the client,
 * two elements per batch written: the batch's last sequence in decimal, then its frames back
 * to back; the first batch may still hold frames up to the header's acked, which a reader
 * skips), both expiring with the session, "lifeline:epoch" (the counter epochs come from),
 * "lifeline:session:<id>:owner" (which instance holds the session live, and its token's
 * hash: see "Takeover" below), and "lifeline:ticketkey:<rotation_ms>:<period>" (TLS ticket
 * keys, below). Channels: "lifeline:instance:<instance id>", one per server.
 *
 * Ticket keys: a server started with a store seals its TLS session tickets with keys it
 * shares with every server on the store, so a client resumes TLS (and is welcomed early,
 * before its Hello) on any of them and after a restart. Each period of
 * sdk_server_config.ticket_key_rotation_ms (default 12 h) of the wall clock has one key of 80
 * random bytes (name, AES-256 key, HMAC-SHA256 key), written once by the first server to ask
 * (SET NX, in a Lua script) and read by the others, expiring (ticket_keys_live + 1) periods
 * later. ticket_keys_live (default 3) keys are accepted: the current one, which seals, the
 * next one and those before. A memory store shares them between the servers of its handle.
 * The keys are fetched at start and refreshed by a thread of the server's own (never on the
 * I/O thread); a store that fails leaves the server the keys it held. Anyone who can read
 * these keys can open the tickets, whose sealed part carries the session's resume token: the
 * store needs the same protection as the sessions it holds. docs/server.md has the details.
 */
#ifndef LIFELINE_STORE_H
#define LIFELINE_STORE_H

#include <lifeline/sdk.h>
#include <lifeline/server.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sdk_store sdk_store;

/* The default bound on each call to a Redis store, connecting included. */
#define SDK_STORE_TIMEOUT_DEFAULT_MS 2000

/*
 * sdk_store_open: open the session store that url names (see above). A Redis store is
 * connected at once (authenticated, and its DB selected), so a wrong address or password
 * shows here rather than at the first session. timeout_ms bounds each call to the store,
 * this one included; 0 means SDK_STORE_TIMEOUT_DEFAULT_MS. Blocks up to timeout_ms per
 * step (up to three: connecting, AUTH, selecting the DB). Any thread. On SDK_OK *out is a handle for sdk_store_close.
 * Errors: SDK_EINVAL (NULL url or out, negative timeout, a URL not of the forms above: an
 * unknown scheme, a bad port or DB number, an unclosed bracket, malformed credentials),
 * SDK_ENOMEM, SDK_ERESOLVE (host name not found), SDK_ECONNREFUSED, SDK_ECONNECT,
 * SDK_ETIMEDOUT, SDK_EDISCONNECTED (the server closed the connection), SDK_EIO (the server
 * answered with an error: a DB that does not exist, "AUTH: WRONGPASS ..." for credentials
 * it refused, "NOAUTH ..." for a server that wants some and got none). On failure *out is NULL and
 * sdk_last_connect_error() gives the detail.
 */
SDK_API sdk_err sdk_store_open(const char *url, int timeout_ms, sdk_store **out);

/*
 * sdk_store_last_error: the error of the handle's most recent call that failed (SDK_OK if
 * none has) and its detail ("redis 127.0.0.1:6379: no reply within 2000 ms", "fenced:
 * session 42 is owned by epoch 7"), written NUL-terminated into buf (buflen bytes; buf may
 * be NULL). Does not block. Any thread. Errors: SDK_EINVAL for a NULL handle.
 */
SDK_API sdk_err sdk_store_last_error(sdk_store *st, char *buf, size_t buflen);

/*
 * sdk_store_close: close the connection and free the handle (a memory store's records go
 * with it). The caller must make sure no other call on the handle is running or will start,
 * and that no server still uses it. Does not block beyond closing a socket. NULL is ignored.
 */
SDK_API void sdk_store_close(sdk_store *st);

/*
 * Servers on a store. A server started with sdk_server_config.store set keeps its sessions
 * in that store, and any server started on the same store can resume them. What it writes,
 * and when, is sdk_server_config.store_sync (server.h):
 *
 *   SDK_STORE_SYNC_HANDOVER (the default): a session is written when its connection
 *     detaches (its record then expires session_ttl_ms later, as the session would), and
 *     at sdk_server_stop, after the drain and before clients hear GOING_AWAY, every session
 *     is claimed and written with what it had not delivered either way (nothing is written
 *     when session_ttl_ms is 0). Messages from the client that the application had not
 *     taken by then are left to the client, which sends them again to the next owner. A
 *     session resumed here again has its record deleted (it would be stale). A server that
 *     dies without sdk_server_stop loses the sessions that were connected: their clients
 *     open new ones (SDK_EVENT_SESSION_LOST) and send again what was not acknowledged.
 *   SDK_STORE_SYNC_ALWAYS: every change is written through, in batches (one pipelined round
 *     trip per batch, appending new frames and trimming acknowledged ones, each session's
 *     batch a few Redis commands whatever its size), before its
 *     effect leaves the server: a Data frame goes out only once the store holds it, an
 *     acknowledgement only once the store holds the consumption it reports, and a message
 *     reaches the application only once the store holds it as received. A SIGKILL then loses
 *     nothing: the next owner resumes exactly, and every message the dead server's
 *     application may have seen (taken, or queued for it) comes again flagged
 *     SDK_MSG_REDELIVERED; no other message is flagged. With manual_ack and
 *     sdk_server_reply, a reply and its request's acknowledgement are stored together.
 *     Records of live sessions are refreshed every session_ttl_ms / 3 so they do not expire.
 *
 * Resuming. A hello that names a session this server does not know is looked up in the
 * store; if the client's token matches the stored hash, the session is claimed (its
 * previous owner is fenced out: its next write fails and it lets the session go, cause
 * SDK_CAUSE_TAKEN_OVER), restored and resumed (the client sees resumed=true, nothing lost
 * or duplicated). Otherwise a new session opens, as without a store.
 *
 * Takeover (Redis stores; not the memory store, nor with session_ttl_ms 0). A client may
 * resume on server B while server A still holds its session (A's link to it is half-open,
 * so A has not seen it go). Each server has a random instance id and subscribes to its own
 * channel (a connection of its own, reconnected with backoff, 100 ms doubling to 2 s), and
 * marks every session it holds with its id and the token's hash (written when the session
 * binds to a connection, refreshed every session_ttl_ms / 3, expiring after session_ttl_ms).
 * Before B looks the session up, it reads the mark: if another instance holds it and the
 * client's token matches, B publishes a request on that instance's channel and waits up to
 * sdk_server_config.takeover_timeout_ms (default 500) for the answer; not at all if nobody
 * listens there (the instance is gone). A, on its I/O thread, captures the session as a
 * record and lets it go (its connection gets a Close telling the client to reconnect, the
 * session ends with SDK_CAUSE_TAKEN_OVER, its messages still in the inbox are dropped: the
 * client sends them again); its takeover thread writes the record, fenced so that it never
 * lands once B has claimed the session, and answers. B then claims the session and resumes
 * it from the store: exactly, under sync HANDOVER too. A message A's application took but
 * had not acknowledged (manual_ack) comes again flagged SDK_MSG_REDELIVERED. If A does not
 * answer in time (stopped, cut from Redis), B resumes from what the store has: under
 * HANDOVER, for a session that was connected at A, nothing, so a new session
 * (SESSION_LOST); under ALWAYS, exactly. A that answers late writes nothing (B holds the
 * claim) and lets go. B's I/O thread waits while it asks (with the server's lock held):
 * keep the bound small.
 *
 * The store unreachable. Writes are made by a store thread of the server, never by its I/O
 * thread or under its lock, so connections, heartbeats and other sessions carry on while
 * the store is slow or down. A failed write is retried with backoff (20 ms doubling to 1 s)
 * and reconnects to Redis. Meanwhile, under HANDOVER messages flow as without a store
 * (only records of detaching sessions wait); under ALWAYS each session's acknowledgements,
 * deliveries and data to the client wait (the client's window and queue bounds hold it
 * back) and resume, exactly, once a write succeeds. A store restarted empty is written
 * afresh. Reads are not deferred: the lookup of a resuming session blocks the I/O thread
 * for up to two store timeouts (a lookup that fails opens a new session), plus, when another
 * instance holds the session, up to two more and takeover_timeout_ms (Takeover, above); so
 * does the write of every session at sdk_server_stop.
 *
 * The store stays the caller's: it must outlive the server (close it after
 * sdk_server_destroy) and may be shared by several servers.
 */

#ifdef __cplusplus
}
#endif

#endif
