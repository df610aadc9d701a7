/*
 * Shared by the two halves of fuzz_conn (see fuzz_conn.c): the script an input is read as,
 * and the property check.
 */
#ifndef LL_FUZZ_CONN_H
#define LL_FUZZ_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "wait.h"

/* A failed property: abort so libFuzzer records the input. */
#define FUZZ_CHECK(cond) \
    do {                 \
        if (!(cond)) {   \
            abort();     \
        }                \
    } while (0)

/* The input, consumed front to back; past the end every byte reads as 0. */
typedef struct script {
    const uint8_t *p;
    size_t left;
} script;

static inline bool script_done(const script *s)
{
    return s->left == 0;
}

static inline uint8_t script_u8(script *s)
{
    if (s->left == 0) {
        return 0;
    }
    s->left--;
    return *s->p++;
}

/* Big-endian. */
static inline size_t script_u16(script *s)
{
    size_t hi = script_u8(s);
    return hi << 8 | script_u8(s);
}

/* Up to n bytes in place; *got says how many there were. */
static inline const uint8_t *script_bytes(script *s, size_t n, size_t *got)
{
    const uint8_t *at = s->p;
    *got = n < s->left ? n : s->left;
    s->p += *got;
    s->left -= *got;
    return at;
}

/*
 * The first input byte says which side runs and how its application takes messages: from
 * sdk_recv / sdk_server_recv (the queue), or from on_message on the I/O thread (callback
 * mode). In callback mode the receive calls must fail with SDK_EINVAL, and a receive step
 * sets, from its argument's low 3 bits, what the callback does with each later message
 * (CB_*); the first byte sets what it does before any such step.
 */
enum {
    MODE_CLIENT = 1,    /* else the server */
    MODE_CALLBACKS = 2, /* else the queue */
};
#define MODE_PLAN(b) (((b) >> 2) & 7)
enum {
    CB_SENDS = 3,   /* how many messages it sends from the callback (server: to that session),
                       timeout -1: they must not wait for room only the I/O thread makes */
    CB_REFUSED = 4, /* it calls what must refuse on the I/O thread: sdk_flush and sdk_close,
                       or sdk_server_stop (SDK_EINVAL), and sdk_destroy or sdk_server_destroy
                       (ignored) */
};

/*
 * Server side (the input plays the clients, the server application and the clock). After
 * two configuration bytes, each step is one byte: the low nibble is the operation, the high
 * nibble its argument, then the operation's own bytes. For the steps of a client or of the
 * application, the argument's low 3 bits say which connection or session (numbered in the
 * order they appeared) and SOP_LATER means the I/O loop does not run before the next step,
 * so several things can be pending when it next looks, as with real threads.
 */
enum srv_op {
    SOP_ACCEPT = 0, /* arg: the handshake (1-8: it resumes a TLS ticket tagged with the
                       session opened (arg - 1)-th, mod their number, or 8: with no session;
                       9-15: arg - 8 extra rounds, then 13, 14: TLS error, 15: bad
                       certificate); +1 byte: read piece size (0: any) */
    SOP_RAW,        /* +1 byte n; +n bytes sent as they are */
    SOP_RAW_LONG,   /* +2 bytes n (big-endian); +n bytes */
    SOP_HELLO,      /* +1 flags (SOP_HELLO_*), +1 session pick, +1 lie, +1 limits */
    SOP_DATA,       /* +1 count and size; +1 signed sequence offset (0: honest) */
    SOP_ACK,        /* +1 signed offset from what the client has (0: honest) */
    SOP_PING,
    SOP_CLOSE,     /* +1 byte: bit 0 reconnect */
    SOP_HANGUP,    /* +1 byte: bit 0 reset instead of FIN */
    SOP_ROOM,      /* +1 byte: what the client's socket takes (0 none, 255 all, else n * 64) */
    SOP_RECV,      /* the application takes (arg & 7) messages (0: all); callback mode:
                       (arg & 7) is the callback's new plan (CB_*) */
    SOP_SEND,      /* +1 byte: count and size */
    SOP_APP_CLOSE, /* +1 byte: bit 0 reconnect allowed */
    SOP_TICK,      /* arg: how much time passes */
    SOP_STOP,      /* sdk_server_stop */
    SOP_SESSIONS,  /* sdk_server_sessions */
};
#define SOP_LATER 8
enum {
    SOP_HELLO_RESUME = 1, /* name a session the client knows */
    SOP_HELLO_FORGE = 2,  /* ...with a wrong token */
    SOP_HELLO_LIE = 4,    /* ...claiming last_received off by the lie byte */
    SOP_HELLO_BADVER = 8, /* version 0: every client's highest version is at least 1 */
};
#define SOP(op, arg) ((uint8_t)((op) | ((arg) << 4)))

/*
 * Client side (the input plays the server). After two configuration bytes, a stream of
 * records, read whenever the client reads an empty connection. The top two bits say what:
 */
enum cli_rec {
    CREC_BYTES = 0, /* low 6 bits + 1 bytes follow: what the server sent */
    CREC_LONG = 1,  /* (low 6 bits << 8 | next byte) + 1 bytes follow */
    CREC_APP = 2,   /* the application acts meanwhile: low 3 bits the action (CAPP_*),
                       next 3 bits its argument (for CAPP_RECV*, in callback mode, the
                       callback's new plan: CB_*) */
    CREC_END = 3,   /* the connection ends: low 2 bits how (CEND_*) */
};
enum { CAPP_SEND = 0, CAPP_RECV, CAPP_PAUSE, CAPP_TIME, CAPP_CLOSE, CAPP_QUERY, CAPP_RECV_ALL };
enum { CEND_FIN = 0, CEND_RESET, CEND_TLS_ERROR, CEND_FIN_THEN_BAD_CERT };
#define CREC(kind, low) ((uint8_t)(((kind) << 6) | (low)))

/*
 * Everything runs on the fuzzer's thread, which plays the I/O thread and the application in
 * turn. ll_io_self (wait.h) must say which, as it would on real threads: otherwise the
 * application's sdk_close and sdk_flush are refused as if called from a callback, or a
 * callback's send waits for room that only its own thread can make. io_owner is the client
 * or server whose I/O thread is being played, NULL for the application; returns what to
 * restore.
 */
static inline const void *playing(const void *io_owner)
{
    const void *was = ll_io_self;
    ll_io_self = io_owner;
    return was;
}

/* Little-endian numbers inside payloads, which the checks read back. */
static inline void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* The two sides. Each sets up its end from the script and mode (the first byte), runs it to
 * the end and frees it all. */
void fuzz_conn_server(script *s, uint8_t mode);
void fuzz_conn_client(script *s, uint8_t mode);

#endif
