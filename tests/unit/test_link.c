/* link.c: what is not covered through the client and server (close frames under small limits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "link.h"
#include "ll.h"

#include <string.h>

#define LONG_REASON                                                                            \
    "the hello named session 12345678901234567890 at a position outside what was ever sent, "  \
    "which no honest client can do; this sentence goes on to be longer than any frame limit "  \
    "the smallest configurations allow, and longer than the 255 characters a close reason is " \
    "ever given on the wire, so both cuts show"

/* Encode a close frame on a link with max_frame and read it back with the same limit. */
static void close_frame_reason(uint32_t max_frame, char *reason, size_t reason_len)
{
    ll_link l;
    ll_link_init(&l, -1, NULL, max_frame);
    assert_int_equal(ll_link_send_close(&l, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR, LONG_REASON, false), 0);
    ll_decoder d;
    ll_decoder_init(&d, max_frame);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&l.out), ll_buf_size(&l.out)), 0);
    Lifeline__Frame *f = NULL;
    assert_int_equal(ll_decoder_next(&d, &f), 1);
    assert_int_equal(f->kind_case, LIFELINE__FRAME__KIND_CLOSE);
    assert_int_equal(f->close->code, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR);
    assert_false(f->close->reconnect);
    LL_DETAIL(reason, reason_len, "%s", f->close->reason);
    ll_frame_free(f);
    ll_decoder_free(&d);
    ll_link_close(&l);
}

static void test_close_reason_fits_the_smallest_frame(void **state)
{
    (void)state;
    char reason[512];
    close_frame_reason(64, reason, sizeof(reason));
    assert_true(strlen(reason) > 0 && strlen(reason) <= 64);
    assert_memory_equal(reason, LONG_REASON, strlen(reason)); /* a prefix of the reason */
}

static void test_close_reason_is_capped(void **state)
{
    (void)state;
    char reason[512];
    assert_true(strlen(LONG_REASON) > 255);
    close_frame_reason(LL_MAX_FRAME_DEFAULT, reason, sizeof(reason));
    assert_int_equal(strlen(reason), 255);
    assert_memory_equal(reason, LONG_REASON, 255);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_reason_fits_the_smallest_frame),
        cmocka_unit_test(test_close_reason_is_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
