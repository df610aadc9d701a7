/*
 * Metrics: lock-free counters and a latency histogram that one thread updates while any
 * other reads, and a writer of the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/). The server's and the
 * client's metric sets (server_metrics.c, client_metrics.c) are built from these.
 *
 * Counters are C11 atomics with relaxed ordering: each one is exact (no update is lost,
 * whatever threads race), but two counters read one after the other are not a snapshot of
 * one instant. Values that need a consistent view (sums over sessions) are read under their
 * owner's lock instead.
 */
#ifndef LL_METRICS_H
#define LL_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef _Atomic uint64_t ll_counter;

static inline void ll_counter_add(ll_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline void ll_counter_sub(ll_counter *c, uint64_t n)
{
    atomic_fetch_sub_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t ll_counter_get(const ll_counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Round trips, in microseconds, by upper bound (the last bucket is +Inf). */
#define LL_RTT_BUCKETS 12
extern const uint64_t ll_rtt_bucket_bounds_us[LL_RTT_BUCKETS - 1];

typedef struct ll_histogram {
    ll_counter buckets[LL_RTT_BUCKETS]; /* not cumulative: the writer adds them up */
    ll_counter count;
    ll_counter sum_us;
} ll_histogram;

/* Record one round trip of us microseconds. Any thread, lock-free. */
void ll_histogram_observe(ll_histogram *h, uint64_t us);

/* A text exposition being written (to a growing memory buffer). Errors are sticky: after a
 * failed allocation every call does nothing and ll_prom_finish reports SDK_ENOMEM. */
typedef struct ll_prom {
    FILE *f;
    char *text;
    size_t len;
} ll_prom;

/* 0 or SDK_ENOMEM. */
int ll_prom_open(ll_prom *p);
/* The family's # HELP and # TYPE lines (type "counter", "gauge" or "histogram"). */
void ll_prom_family(ll_prom *p, const char *name, const char *type, const char *help);
/* One sample, without labels. */
void ll_prom_value(ll_prom *p, const char *name, uint64_t value);
/* One sample with one label (the value is escaped as the format wants). */
void ll_prom_labeled(ll_prom *p, const char *name, const char *label, const char *label_value, uint64_t value);
/* A counter family of one sample: its help and type lines, then the sample. */
void ll_prom_counter(ll_prom *p, const char *name, const char *help, uint64_t value);
/* A gauge family of one sample. */
void ll_prom_gauge(ll_prom *p, const char *name, const char *help, uint64_t value);
/* A gauge family of one sample given in milliseconds, written in seconds. */
void ll_prom_gauge_ms(ll_prom *p, const char *name, const char *help, uint64_t ms);
/* A whole histogram family (name without _bucket/_sum/_count), in seconds. */
void ll_prom_histogram(ll_prom *p, const char *name, const char *help, const ll_histogram *h);
/* Close the text: on 0, *text (NUL-terminated, free()) and *len are the caller's; on
 * SDK_ENOMEM nothing is. */
int ll_prom_finish(ll_prom *p, char **text, size_t *len);

#endif
