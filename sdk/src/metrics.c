/* Metrics: counters, the round-trip histogram and the Prometheus text writer (metrics.h). */
#include "metrics.h"

#include "lifeline/sdk.h"

#include <stdlib.h>

/* From half a millisecond (loopback) to ten seconds (a satellite link under load). */
const uint64_t ll_rtt_bucket_bounds_us[LL_RTT_BUCKETS - 1] = {500,   1000,   2500,   5000,    10000,   25000,
                                                              50000, 100000, 250000, 1000000, 10000000};

void ll_histogram_observe(ll_histogram *h, uint64_t us)
{
    size_t i = 0;
    while (i < LL_RTT_BUCKETS - 1 && us > ll_rtt_bucket_bounds_us[i]) {
        i++;
    }
    ll_counter_add(&h->buckets[i], 1);
    ll_counter_add(&h->sum_us, us);
    ll_counter_add(&h->count, 1);
}

int ll_prom_open(ll_prom *p)
{
    p->text = NULL;
    p->len = 0;
    p->f = open_memstream(&p->text, &p->len);
    return p->f ? 0 : SDK_ENOMEM;
}

void ll_prom_family(ll_prom *p, const char *name, const char *type, const char *help)
{
    fprintf(p->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void ll_prom_value(ll_prom *p, const char *name, uint64_t value)
{
    fprintf(p->f, "%s %llu\n", name, (unsigned long long)value);
}

/* A label value: backslash, double quote and line feed escaped, as the format requires. */
static void put_label_value(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            fputc('\\', f);
            fputc(*s, f);
        } else if (*s == '\n') {
            fputs("\\n", f);
        } else {
            fputc(*s, f);
        }
    }
}

void ll_prom_labeled(ll_prom *p, const char *name, const char *label, const char *label_value, uint64_t value)
{
    fprintf(p->f, "%s{%s=\"", name, label);
    put_label_value(p->f, label_value);
    fprintf(p->f, "\"} %llu\n", (unsigned long long)value);
}

void ll_prom_counter(ll_prom *p, const char *name, const char *help, uint64_t value)
{
    ll_prom_family(p, name, "counter", help);
    ll_prom_value(p, name, value);
}

void ll_prom_gauge(ll_prom *p, const char *name, const char *help, uint64_t value)
{
    ll_prom_family(p, name, "gauge", help);
    ll_prom_value(p, name, value);
}

void ll_prom_gauge_ms(ll_prom *p, const char *name, const char *help, uint64_t ms)
{
    ll_prom_family(p, name, "gauge", help);
    fprintf(p->f, "%s %llu.%03llu\n", name, (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000));
}

void ll_prom_histogram(ll_prom *p, const char *name, const char *help, const ll_histogram *h)
{
    ll_prom_family(p, name, "histogram", help);
    /* Read count first: buckets observed after it only make +Inf run ahead of _count by a
     * few, never behind, and +Inf is written as _count so the family stays consistent. */
    uint64_t count = ll_counter_get(&h->count);
    uint64_t sum_us = ll_counter_get(&h->sum_us);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < LL_RTT_BUCKETS - 1; i++) {
        cumulative += ll_counter_get(&h->buckets[i]);
        fprintf(p->f, "%s_bucket{le=\"%g\"} %llu\n", name, (double)ll_rtt_bucket_bounds_us[i] / 1e6,
                (unsigned long long)(cumulative < count ? cumulative : count));
    }
    fprintf(p->f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)count);
    fprintf(p->f, "%s_sum %.6f\n%s_count %llu\n", name, (double)sum_us / 1e6, name, (unsigned long long)count);
}

int ll_prom_finish(ll_prom *p, char **text, size_t *len)
{
    int failed = ferror(p->f);
    if (fclose(p->f) != 0 || failed) {
        free(p->text);
        return SDK_ENOMEM;
    }
    *text = p->text;
    *len = p->len;
    return 0;
}

void sdk_metrics_free(char *text)
{
    free(text); /* open_memstream's buffer, from this library's malloc */
}
