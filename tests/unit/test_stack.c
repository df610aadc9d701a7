/*
 * Unit tests for stack.c: after a deep call has touched stack pages, ll_stack_trim from a
 * shallow frame gives them back (mincore(2) says they are no longer resident), and the
 * thread goes on using its stack normally.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "stack.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DEEP (64 * 1024)

typedef struct probe {
    uintptr_t low, high; /* the deep call's buffer */
    size_t resident_before, resident_after;
    bool on_real_stack;      /* the deep buffer was on the thread's own stack */
    unsigned long sum_after; /* a second deep call still works */
} probe;

static size_t resident_pages(uintptr_t low, uintptr_t high)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t start = (low + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t end = high & ~((uintptr_t)page - 1);
    unsigned char vec[DEEP / 4096 + 2];
    size_t n = 0;
    if (end <= start || mincore((void *)start, end - start, vec) != 0) {
        return 0;
    }
    for (size_t i = 0; i < (end - start) / (uintptr_t)page; i++) {
        n += vec[i] & 1;
    }
    return n;
}

/* Touch DEEP bytes of stack; note where they are. */
static __attribute__((noinline)) unsigned long go_deep(probe *p)
{
    volatile unsigned char buf[DEEP];
    memset((void *)buf, 1, sizeof buf);
    p->low = (uintptr_t)buf;
    p->high = (uintptr_t)buf + sizeof buf;
    unsigned long sum = 0;
    for (size_t i = 0; i < sizeof buf; i += 4096) {
        sum += buf[i];
    }
    return sum;
}

static void *trim_thread(void *arg)
{
    probe *p = arg;
    (void)go_deep(p);
    pthread_attr_t attr;
    void *low = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        (void)pthread_attr_getstack(&attr, &low, &size);
        pthread_attr_destroy(&attr);
    }
    /* Under AddressSanitizer the buffer may sit on its heap "fake stack": nothing to trim. */
    p->on_real_stack = p->low >= (uintptr_t)low && p->high <= (uintptr_t)low + size;
    p->resident_before = resident_pages(p->low, p->high);
    ll_stack_trim();
    p->resident_after = resident_pages(p->low, p->high);
    p->sum_after = go_deep(p);
    return NULL;
}

static void test_trim_gives_back_deep_pages(void **state)
{
    probe p;
    pthread_t th;

    (void)state;
    memset(&p, 0, sizeof p);
    assert_int_equal(pthread_create(&th, NULL, trim_thread, &p), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(p.resident_before >= DEEP / 4096 - 1);
    assert_int_equal(p.sum_after, DEEP / 4096); /* the stack still works after the trim */
    if (!p.on_real_stack) {
        skip(); /* a sanitizer's fake stack: the trim must (and does) leave it alone */
    }
    /* A sanitizer may keep its own frames there; the deep buffer's pages are mostly gone. */
    assert_true(p.resident_after <= p.resident_before / 4);
    assert_int_equal(p.sum_after, DEEP / 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trim_gives_back_deep_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
