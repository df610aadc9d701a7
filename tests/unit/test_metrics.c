/* metrics.c: the round-trip histogram's buckets and the Prometheus text writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "metrics.h"

#include <stdlib.h>
#include <string.h>

static char *write_text(void (*fill)(ll_prom *p, void *arg), void *arg)
{
    ll_prom p;
    assert_int_equal(ll_prom_open(&p), 0);
    fill(&p, arg);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(ll_prom_finish(&p, &text, &len), 0);
    assert_int_equal(strlen(text), len);
    return text;
}

static void fill_histogram(ll_prom *p, void *arg)
{
    ll_prom_histogram(p, "rtt_seconds", "Round trips.", arg);
}

static void test_histogram_buckets_are_cumulative(void **state)
{
    (void)state;
    ll_histogram h = {0};
    ll_histogram_observe(&h, 0);        /* <= 0.0005 */
    ll_histogram_observe(&h, 500);      /* on the bound: still the first bucket */
    ll_histogram_observe(&h, 501);      /* the next */
    ll_histogram_observe(&h, 20000000); /* beyond every bound: +Inf only */
    char *text = write_text(fill_histogram, &h);
    assert_non_null(strstr(text, "# TYPE rtt_seconds histogram\n"));
    assert_non_null(strstr(text, "rtt_seconds_bucket{le=\"0.0005\"} 2\n"));
    assert_non_null(strstr(text, "rtt_seconds_bucket{le=\"0.001\"} 3\n"));
    assert_non_null(strstr(text, "rtt_seconds_bucket{le=\"10\"} 3\n"));
    assert_non_null(strstr(text, "rtt_seconds_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "rtt_seconds_count 4\n"));
    assert_non_null(strstr(text, "rtt_seconds_sum 20.001001\n"));
    free(text);
}

static void fill_labeled(ll_prom *p, void *arg)
{
    (void)arg;
    ll_prom_family(p, "x_total", "counter", "Things.");
    ll_prom_labeled(p, "x_total", "why", "a \"quoted\" \\ back\nslash", 7);
    ll_prom_counter(p, "y_total", "Others.", 18446744073709551615ull);
    ll_prom_gauge(p, "z", "A level.", 0);
}

static void test_labels_are_escaped_and_values_exact(void **state)
{
    (void)state;
    char *text = write_text(fill_labeled, NULL);
    assert_string_equal(text, "# HELP x_total Things.\n# TYPE x_total counter\n"
                              "x_total{why=\"a \\\"quoted\\\" \\\\ back\\nslash\"} 7\n"
                              "# HELP y_total Others.\n# TYPE y_total counter\n"
                              "y_total 18446744073709551615\n"
                              "# HELP z A level.\n# TYPE z gauge\nz 0\n");
    free(text);
}

static void test_empty_text(void **state)
{
    (void)state;
    ll_prom p;
    assert_int_equal(ll_prom_open(&p), 0);
    char *text = NULL;
    size_t len = 1;
    assert_int_equal(ll_prom_finish(&p, &text, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histogram_buckets_are_cumulative),
        cmocka_unit_test(test_labels_are_escaped_and_values_exact),
        cmocka_unit_test(test_empty_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
