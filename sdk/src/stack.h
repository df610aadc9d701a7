/*
 * The calling thread's own stack memory. A thread that ran a deep call once (a TLS
 * handshake: certificate verification and key exchange touch about 24 KiB of stack) keeps
 * those pages resident for its whole life, though an idle client's I/O thread then needs
 * a few KiB. Platform layer: the only file that asks the OS about thread stacks.
 */
#ifndef LL_STACK_H
#define LL_STACK_H

/* Give the pages of the calling thread's stack below the current frame (less a margin)
 * back to the OS; they read as zeros when next touched, which a stack never relies on.
 * Best effort: does nothing where the stack's bounds are unknown. Call it from the
 * outermost loop of a thread (not the main thread: finding its bounds reads
 * /proc/self/maps), never from a signal handler. */
void ll_stack_trim(void);

#endif
