/*
 * The platform layer (net.h and tls.h) replaced for fuzzing: each connection is an in-memory
 * "wire" carrying plaintext, the poller is computed from the wires, and the clock is virtual. Everything above that layer (link,
 * codec, session, server_io, client_io) runs unmodified on top of it, on the calling thread,
 * so the outcome of an input depends on its bytes alone.
 *
 * A wire is the far end of one connection as the library sees it: `in` holds what the peer
 * sent and the library has not read yet, `out` what the library wrote and the
 * test has not looked at yet. Descriptors are
 * real eventfds that always poll readable, because epoll_ctl needs real descriptors, and a
 * readable one never makes the library sleep: whether there is anything to read is the
 * wire's business. poll() on them is answered without the kernel (wire.c says how).
 */
#ifndef LL_FUZZ_WIRE_H
#define LL_FUZZ_WIRE_H

#include "buf.h"
#include "codec.h"
#include "tls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fake_wire fake_wire;

/* Called when the library reads an empty wire that is still open: the hook may append bytes,
 * hang up, or do what an application thread would do meanwhile. False: nothing to read now. */
typedef bool (*wire_refill_fn)(fake_wire *w, void *arg);

struct fake_wire {
    int fd;              /* the library owns it once handed out; -1 after it freed the TLS side */
    int index;           /* creation order within this input; also the peer address "wire:N" */
    ll_buf in;           /* sent by the peer, not yet read by the library */
    ll_buf out;          /* written by the library */
    size_t room;         /* bytes writes take before they would block (SIZE_MAX: no limit) */
    size_t read_piece;   /* most bytes one read returns (>= 1) */
    int handshake_rc;    /* what the TLS handshake ends with: 0 or an sdk_err */
    int handshake_waits; /* ...after this many rounds that want the socket (read, write, ...) */
    int read_error;      /* once in is empty: 0, or the sdk_err reads fail with */
    bool handshaken;
    bool hung_up;      /* the peer closed its end: reads see EOF once in is empty */
    bool shut_wr;      /* the library shut its end for writing (ll_net_shutdown_write) */
    bool reset;        /* ...by a reset rather than a clean FIN */
    bool handed_out;   /* accepted or connected by the library */
    bool tls_freed;    /* the library closed the connection */
    size_t read_total; /* bytes the library has read */
    /* Server: the Lifeline session tag of the TLS ticket the client resumes (0: none). With a
     * handshake that succeeds, one step returns LL_TLS_HALF_RTT after the waits. */
    uint64_t resume_tag;
    uint64_t ticket_tag; /* server: what the library tagged the connection's next ticket with */
    bool half_rtt;       /* LL_TLS_HALF_RTT was returned */
    wire_refill_fn refill;
    /* Called after each read that took bytes (read_total counts them). */
    void (*on_read)(fake_wire *w, void *arg);
    /* Called by the step after LL_TLS_HALF_RTT as it ends the handshake: what the library
     * wrote in 0.5-RTT is in out by then. */
    void (*on_half_rtt_over)(fake_wire *w, void *arg);
    void *hook_arg; /* what the hooks (refill, on_read, on_half_rtt_over) are given */
    fake_wire *next;
};

/* Forget every wire and reset the clock; call at the start and end of each input. */
void wire_reset(uint64_t start_ms);
/* The descriptor for the client's or server's wake fd: readable for good, so the library
 * never waits on it. One per input; the library closes it. */
int wire_wake_fd(void);
/* The server's listening descriptor: the poller reports it readable while wire_offer_accept
 * has a wire waiting. The library closes it (at the drain). */
int wire_listen_fd(void);
/* A new wire (aborts if descriptors run out: that would be a descriptor leak). */
fake_wire *wire_new(void);
/* The next ll_net_accept hands this wire out (one at a time). */
void wire_offer_accept(fake_wire *w);
bool wire_accept_pending(void);
/* ll_net_connect asks this for its wire; NULL (or no hook) refuses the connection. */
void wire_set_connect(fake_wire *(*connect)(void *arg), void *arg);
/* The wire behind a connection's TLS object. */
fake_wire *wire_of(const ll_tls *t);
/* Bytes the peer has put on the wire for the library so far (read or not; a server's
 * closing drain discards what is unread). */
size_t wire_sent(const fake_wire *w);
/* Something to read now: bytes, a pending handshake, EOF or an error. */
bool wire_readable(const fake_wire *w);
void wire_advance_clock(uint64_t ms);
/* The peer reads what the library wrote: feeds it to dec and hands each whole frame to fn.
 * Returns 0, or the decoder's error (the library wrote something malformed). */
int wire_read_frames(fake_wire *w, ll_decoder *dec, void (*fn)(const Lifeline__Frame *f, void *arg), void *arg);

#endif
