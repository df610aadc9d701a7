/*
 * libFuzzer target for what a connection does with the bytes that arrive after TLS: the
 * server's hello/attach/resume, token and window checks and its Data/Ack/Ping/Close handling
 * (sdk/src/server_io.c, server_session.c), and the client's greeting, frame handling and
 * reconnects (client_io.c, client_session.c), over conn.c, link.c, codec.c, session.c and the
 * rest, all unmodified.
 * The first input byte picks the side and whether its application takes messages from the
 * receive calls or from an on_message callback; conn.h describes the rest.
 *
 * Design. Only the platform layer is replaced (wire.c stands in for net.c and tls.c: sockets
 * become in-memory plaintext wires, the clock becomes virtual), so nothing in sdk/src changes
 * for fuzzing and everything above net.h/tls.h is the code that ships. Everything runs on the
 * fuzzer's thread and the outcome depends on the input alone:
 * - Client: ll_client_io_main is called directly and runs until the client gives up or is
 *   closed; each connection it makes reads the input as what the server sends, and the
 *   application's calls happen whenever it reads (a point where the real thread holds no
 *   lock). Its waits return at once (descriptors always poll readable) and backoff is 0.
 * - Server: the loop's own turn (ll_server_io_turn) runs one turn at a time. wire.c's poller
 *   reports what level-triggered epoll would for the wires (readable while bytes, EOF or a
 *   handshake wait; writable while the wire has room; the wake fd only while signalled), so
 *   which connection is ready when follows from the input, and the turn reports whether it
 *   found work, which tells the harness when the real loop would sleep. The alternative, the
 *   real thread over socketpairs, makes a crash depend on timing.
 * Session ids and tokens come from a seeded stream (server side), so findings replay.
 *
 * Checks, besides ASan/UBSan/LSan: protocol errors end connections with an error and a close
 * frame, never a crash; each end writes only well-formed frames in a legal order (Hello or
 * Welcome first, nothing after Close); sequences on a connection are consecutive and resume
 * where the hello said; acks never exceed what the application took nor go back; an honest
 * resume always resumes and a forged token never does; the application is handed every
 * accepted message exactly once, in order, with its own payload, whether it receives them or
 * a callback takes them (then receiving fails, and a callback's sends return at once while
 * sdk_flush, sdk_close and sdk_server_stop refuse and the destroys do nothing); a client that
 * resumes a tagged TLS ticket is welcomed in 0.5-RTT exactly when that session is open, with
 * its values, and its hello then resumes the session (with a second welcome exactly when
 * the hello's heartbeat values differ) or is sent away with the close the case calls for; a client refuses a welcome that resumes another
 * session, and keeps its own; the server's
 * loop never sleeps with work left for it; session events follow the
 * life cycle (opened, detached/resumed, expired or closed once); the reliable-stream
 * invariants hold for every session after every step; no connection lives without a deadline;
 * every connection and session is freed at the end.
 */
#include "conn.h"
#include "wire.h"

#define CLOCK_START_MS 1000000 /* anything but 0: a zero time hides "never set" mistakes */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    script s = {data, size};
    uint8_t mode = script_u8(&s);
    wire_reset(CLOCK_START_MS);
    if (mode & MODE_CLIENT) {
        fuzz_conn_client(&s, mode);
    } else {
        fuzz_conn_server(&s, mode);
    }
    wire_reset(CLOCK_START_MS);
    return 0;
}
