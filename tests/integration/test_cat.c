/*
 * build/bin/lifeline-cat's reports, run as a subprocess against an in-process server: a
 * line over a limit names its size, the limit and whose limit it is, and names
 * --max-frame only when --max-frame was given; --connect-timeout-ms is accepted; --connect
 * takes a comma-separated list (sdk_config.endpoints) and --stats says which one is in use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run lifeline-cat against port with extra options and a 2000-byte line on stdin; returns
 * its exit status and its stderr in err. */
static int run_cat(uint16_t port, const char *extra, char *err, size_t errlen)
{
    const char *bin = getenv("LIFELINE_BIN");
    const char *tmp = getenv("LIFELINE_TEST_TMP");
    char in[256], out[256], cmd[2048];
    snprintf(in, sizeof in, "%s/cat-in-%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    snprintf(out, sizeof out, "%s/cat-err-%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    for (int i = 0; i < 2000; i++) {
        fputc('x', f);
    }
    fputc('\n', f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/lifeline-cat --connect 127.0.0.1:%u --ca %s --timeout-ms %d --quiet %s <%s 2>%s",
             bin && *bin ? bin : "build/bin", (unsigned)port, ht_certs_get()->ca, HT_WAIT_MS, extra, in, out);
    int status = system(cmd);
    f = fopen(out, "r");
    assert_non_null(f);
    size_t n = fread(err, 1, errlen - 1, f);
    err[n] = '\0';
    fclose(f);
    unlink(in);
    unlink(out);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void expect_in(const char *text, const char *needle, bool present)
{
    if ((strstr(text, needle) != NULL) != present) {
        fail_msg("expected \"%s\" %s in: %s", needle, present ? "" : "not", text);
    }
}

static void test_too_big_line_names_the_limit(void **state)
{
    ht_server hs;
    sdk_server_config scfg;
    char err[1024];
    (void)state;
    ht_server_config(&scfg);
    scfg.max_frame = 1024;
    assert_int_equal(ht_server_start(&hs, &scfg, true), SDK_OK);

    /* The server's limit, learned from its welcome: --max-frame has nothing to do with it. */
    assert_int_equal(run_cat(hs.port, "--connect-timeout-ms 5000", err, sizeof err), 1);
    expect_in(err, "line 1: message too big: a message of 2000 bytes", true);
    expect_in(err, "over the server's max_frame of 1024 bytes", true);
    expect_in(err, "--max-frame", false);

    /* Our own limit, from --max-frame: named. */
    assert_int_equal(run_cat(hs.port, "--max-frame 512", err, sizeof err), 1);
    expect_in(err, "over this client's max_frame of 512 bytes (set by --max-frame)", true);
    ht_server_destroy(&hs);
}

static void test_bad_connect_timeout_is_a_usage_error(void **state)
{
    char err[4096];
    (void)state;
    assert_int_equal(run_cat(1, "--connect-timeout-ms 0", err, sizeof err), 64);
    expect_in(err, "bad number '0'", true);
}

static void test_connect_list_skips_a_dead_entry(void **state)
{
    ht_server hs;
    char err[4096], extra[256], want[64];
    int holder = -1;
    (void)state;
    uint16_t dead = ht_closed_port(&holder);
    assert_true(dead != 0);
    assert_int_equal(ht_server_start(&hs, NULL, true), SDK_OK);
    snprintf(extra, sizeof extra, "--connect 127.0.0.1:%u,127.0.0.1:%u --keep-endpoint-order --stats", (unsigned)dead,
             (unsigned)hs.port);
    assert_int_equal(run_cat(hs.port, extra, err, sizeof err), 0);
    expect_in(err, "\"endpoint_index\":1,", true);
    snprintf(want, sizeof want, "\"endpoint\":\"127.0.0.1:%u\"", (unsigned)hs.port);
    expect_in(err, want, true);
    expect_in(err, "\"connects\":1,", true);
    /* An empty entry is a typo, not a shorter list. */
    assert_int_equal(run_cat(1, "--connect 127.0.0.1:1,,127.0.0.1:2", err, sizeof err), 64);
    expect_in(err, "comma-separated", true);
    assert_int_equal(run_cat(1, "--connect 127.0.0.1:1,", err, sizeof err), 64);
    ht_server_destroy(&hs);
    close(holder);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_too_big_line_names_the_limit),
        cmocka_unit_test(test_bad_connect_timeout_is_a_usage_error),
        cmocka_unit_test(test_connect_list_skips_a_dead_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
