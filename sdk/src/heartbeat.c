#include "heartbeat.h"

#include "ll.h"

void ll_hb_start(ll_heartbeat *hb, uint32_t interval_ms, uint32_t timeout_ms, uint64_t now_ms)
{
    *hb = (ll_heartbeat){.interval_ms = interval_ms, .timeout_ms = timeout_ms};
    hb->last_rx_ms = hb->last_tx_ms = hb->last_ping_ms = now_ms;
}

ll_hb_action ll_hb_poll(const ll_heartbeat *hb, uint64_t now_ms, uint64_t *next_ms)
{
    uint64_t dead_at = hb->last_rx_ms + hb->timeout_ms;
    if (now_ms >= dead_at) {
        *next_ms = now_ms;
        return LL_HB_DEAD;
    }
    *next_ms = dead_at;
    if (hb->interval_ms == 0) {
        return LL_HB_IDLE;
    }
    /* Quiet in either direction for an interval, and no ping in the last interval. */
    uint64_t quiet_since = LL_MIN(hb->last_rx_ms, hb->last_tx_ms);
    uint64_t ping_at = LL_MAX(quiet_since, hb->last_ping_ms) + hb->interval_ms;
    if (now_ms >= ping_at) {
        *next_ms = LL_MIN(dead_at, now_ms + hb->interval_ms);
        return LL_HB_PING;
    }
    *next_ms = LL_MIN(dead_at, ping_at);
    return LL_HB_IDLE;
}

uint64_t ll_hb_ping_sent(ll_heartbeat *hb, uint64_t now_ms)
{
    hb->last_ping_ms = now_ms;
    hb->last_tx_ms = now_ms;
    hb->sent++;
    return ++hb->nonce;
}

void ll_hb_on_pong(ll_heartbeat *hb, uint64_t nonce, uint64_t sent_us, uint64_t now_us)
{
    if (hb->nonce == 0 || nonce != hb->nonce || sent_us > now_us) {
        return; /* unsolicited, stale or forged: says nothing about the current round trip */
    }
    uint64_t rtt = now_us - sent_us;
    hb->answered++;
    hb->rtt_last_us = rtt;
    /* RFC 6298 smoothing with gain 1/8. */
    hb->rtt_smoothed_us = hb->rtt_smoothed_us ? (7 * hb->rtt_smoothed_us + rtt) / 8 : rtt;
}

uint32_t ll_hb_missed(const ll_heartbeat *hb, uint64_t now_ms, uint32_t interval_ms)
{
    if (interval_ms == 0 || now_ms <= hb->last_rx_ms) {
        return 0;
    }
    return (uint32_t)((now_ms - hb->last_rx_ms) / interval_ms);
}
