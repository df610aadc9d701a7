#include "stack.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* Kept below the frame of ll_stack_trim: its own locals (about 100 bytes), the madvise
 * wrapper's frame and the x86-64 red zone (128 bytes) live there while it runs. 1 KiB, not
 * more: an idle client's I/O thread calls this about 6 KiB below its stack's top, and a
 * margin that reached past the second page would keep a third one resident. */
#define TRIM_MARGIN (1u * 1024)

/* Never inlined (link-time optimisation would): the frame below which pages go must be this
 * function's own, whose locals fit in TRIM_MARGIN, not its caller's, whose may not. */
__attribute__((noinline)) void ll_stack_trim(void)
{
    pthread_attr_t attr;
    void *low = NULL;
    size_t size = 0;

    if (pthread_getattr_np(pthread_self(), &attr) != 0) {
        return;
    }
    int rc = pthread_attr_getstack(&attr, &low, &size);
    pthread_attr_destroy(&attr);
    long page = sysconf(_SC_PAGESIZE);
    if (rc != 0 || page <= 0) {
        return;
    }
    /* This frame's address on the thread's real stack: the stack grows down from here. Not
     * a local's address: under AddressSanitizer locals may live on a "fake stack" on the
     * heap, and trimming below that would wipe live frames. */
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    uintptr_t mask = ~((uintptr_t)page - 1);
    uintptr_t start = ((uintptr_t)low + (uintptr_t)page - 1) & mask;
    uintptr_t end = (here - TRIM_MARGIN) & mask;
    bool on_stack = here > (uintptr_t)low + TRIM_MARGIN && here <= (uintptr_t)low + size;
    if (on_stack && end > start) {
        (void)madvise((void *)start, end - start, MADV_DONTNEED);
    }
}
