/*
 * sdk_fd and sdk_server_fd: an event loop with no blocked thread. Every wait below is a
 * poll() on the descriptor, then the call with timeout_ms 0, as sdk.h's rule says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Wait until fd is readable (or HT_WAIT_MS passed), then reset it. True if it was readable. */
static bool await_fd(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, HT_WAIT_MS);
    if (n != 1) {
        return false;
    }
    uint64_t count = 0;
    ssize_t got = read(fd, &count, sizeof count);
    assert_true(got == sizeof count || (got < 0 && errno == EAGAIN));
    return true;
}

/* The rule of sdk.h: try, and only while the call says "not yet", wait for the fd. */
#define RETRY_ON_FD(fd, call, not_yet)        \
    do {                                      \
        sdk_err rc_;                          \
        while ((rc_ = (call)) == (not_yet)) { \
            assert_true(await_fd(fd));        \
        }                                     \
        assert_int_equal(rc_, SDK_OK);        \
    } while (0)

static void test_fd_arguments(void **state)
{
    ht_server *hs = *state;
    int fd = -1;
    assert_int_equal(sdk_fd(NULL, &fd), SDK_EINVAL);
    assert_int_equal(sdk_server_fd(NULL, &fd), SDK_EINVAL);
    assert_int_equal(sdk_server_fd(hs->srv, NULL), SDK_EINVAL);
    int again = -1;
    assert_int_equal(sdk_server_fd(hs->srv, &fd), SDK_OK);
    assert_int_equal(sdk_server_fd(hs->srv, &again), SDK_OK);
    assert_true(fd >= 0);
    assert_int_equal(fd, again); /* one descriptor per object */
}

static void test_messages_both_ways_without_blocking(void **state)
{
    ht_server *hs = *state;
    sdk_config cfg;
    sdk_client *c = NULL;
    int cfd = -1, sfd = -1;
    ht_client_config(&cfg, hs->port);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_int_equal(sdk_fd(c, &cfd), SDK_OK);
    assert_int_equal(sdk_fd(NULL, NULL), SDK_EINVAL);
    assert_int_equal(sdk_server_fd(hs->srv, &sfd), SDK_OK);
    assert_true(cfd >= 0 && sfd >= 0 && cfd != sfd);

    for (int i = 0; i < 50; i++) {
        char text[32];
        int len = snprintf(text, sizeof text, "ping %d", i);
        RETRY_ON_FD(cfd, sdk_send(c, text, (size_t)len, 0), SDK_EQUEUEFULL);
        sdk_message *m = NULL;
        RETRY_ON_FD(sfd, sdk_server_recv(hs->srv, &m, 0), SDK_ETIMEDOUT);
        assert_memory_equal(m->data, text, (size_t)len);
        uint64_t session = m->session;
        sdk_message_free(m);
        RETRY_ON_FD(sfd, sdk_server_send(hs->srv, session, "pong", 4, 0), SDK_EQUEUEFULL);
        RETRY_ON_FD(cfd, sdk_recv(c, &m, 0), SDK_ETIMEDOUT);
        assert_int_equal(m->len, 4);
        assert_memory_equal(m->data, "pong", 4);
        sdk_message_free(m);
    }
    /* Acknowledgements wake the fd too: flush completes through it. */
    RETRY_ON_FD(cfd, sdk_flush(c, 0), SDK_ETIMEDOUT);

    /* Closing makes it readable, and recv then answers SDK_ECLOSED. */
    assert_int_equal(sdk_close(c), SDK_OK);
    struct pollfd p = {.fd = cfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, HT_WAIT_MS), 1);
    sdk_message *m = NULL;
    assert_int_equal(sdk_recv(c, &m, 0), SDK_ECLOSED);
    sdk_destroy(c);
}

static void test_server_stop_wakes_its_fd(void **state)
{
    (void)state;
    ht_server local = {0};
    int sfd = -1;
    assert_int_equal(ht_server_start(&local, NULL, false), SDK_OK);
    assert_int_equal(sdk_server_fd(local.srv, &sfd), SDK_OK);
    sdk_message *m = NULL;
    assert_int_equal(sdk_server_recv(local.srv, &m, 0), SDK_ETIMEDOUT);
    struct pollfd p = {.fd = sfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0); /* nothing happened since it was made */
    ht_server_stop(&local);
    assert_true(await_fd(sfd));
    assert_int_equal(sdk_server_recv(local.srv, &m, 0), SDK_ECLOSED);
    ht_server_destroy(&local);
}

static int setup(void **state)
{
    static ht_server hs;
    memset(&hs, 0, sizeof hs);
    if (ht_server_start(&hs, NULL, false) != SDK_OK) {
        return -1;
    }
    *state = &hs;
    return 0;
}

static int teardown(void **state)
{
    ht_server_destroy(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_arguments),
        cmocka_unit_test(test_messages_both_ways_without_blocking),
        cmocka_unit_test(test_server_stop_wakes_its_fd),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
