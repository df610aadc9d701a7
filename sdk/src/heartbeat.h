/*
 * Liveness of one connection. Either end pings when the link has been quiet in either
 * direction for an interval (so the peer's pong proves it alive), and declares the peer
 * dead after timeout_ms without receiving anything. Any received byte counts as liveness,
 * so a busy link needs no pings. Pure logic: callers pass the clock.
 */
#ifndef LL_HEARTBEAT_H
#define LL_HEARTBEAT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ll_heartbeat {
    uint32_t interval_ms; /* 0: never ping (the server side only watches) */
    uint32_t timeout_ms;
    uint64_t last_rx_ms;
    uint64_t last_tx_ms;
    uint64_t last_ping_ms; /* when the last ping went out; one per interval at most */
    uint64_t nonce;        /* of the last ping */
    uint64_t rtt_last_us;
    uint64_t rtt_smoothed_us;
    uint64_t sent;
    uint64_t answered;
} ll_heartbeat;

typedef enum { LL_HB_IDLE = 0, LL_HB_PING, LL_HB_DEAD } ll_hb_action;

void ll_hb_start(ll_heartbeat *hb, uint32_t interval_ms, uint32_t timeout_ms, uint64_t now_ms);
static inline void ll_hb_on_rx(ll_heartbeat *hb, uint64_t now_ms)
{
    hb->last_rx_ms = now_ms;
}
static inline void ll_hb_on_tx(ll_heartbeat *hb, uint64_t now_ms)
{
    hb->last_tx_ms = now_ms;
}
/* What to do at now_ms; *next_ms gets the time to ask again. PING: the caller sends one
 * with ll_hb_ping_sent's nonce. */
ll_hb_action ll_hb_poll(const ll_heartbeat *hb, uint64_t now_ms, uint64_t *next_ms);
/* Record a ping going out; returns its nonce. */
uint64_t ll_hb_ping_sent(ll_heartbeat *hb, uint64_t now_ms);
/* A pong arrived: update round-trip times if it answers our last ping. */
void ll_hb_on_pong(ll_heartbeat *hb, uint64_t nonce, uint64_t sent_us, uint64_t now_us);
/* Whole intervals of silence so far (the server's "missed heartbeats"). */
uint32_t ll_hb_missed(const ll_heartbeat *hb, uint64_t now_ms, uint32_t interval_ms);

#endif
