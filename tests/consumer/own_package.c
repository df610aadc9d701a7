/*
 * consumer_own_package: a program with its own protobuf package `lifeline`
 * (own_lifeline.proto), linked statically against liblifeline.a. It links only if the
 * static library keeps its generated lifeline__* protobuf-c symbols (and every internal
 * one) to itself, and runs only if each side then uses its own descriptors.
 */
#include <lifeline/pb.h>

#include "own_lifeline.pb-c.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: consumer_own_package [--help]\n");
        return 0;
    }
    Lifeline__Data d = LIFELINE__DATA__INIT;
    d.user_note = "mine";
    uint8_t buf[64];
    size_t len = lifeline__data__pack(&d, buf);
    Lifeline__Data *back = lifeline__data__unpack(NULL, len, buf);
    if (!back || strcmp(back->user_note, "mine") != 0 || lifeline__data__descriptor.n_fields != 2) {
        fprintf(stderr, "consumer_own_package: our own lifeline.Data did not round-trip\n");
        return 1;
    }
    lifeline__data__free_unpacked(back, NULL);
    /* The library still works beside it. */
    if (sdk_send_pb(NULL, &d.base, 0) != SDK_EINVAL || strcmp(sdk_errname(SDK_ETYPE), "SDK_ETYPE") != 0) {
        return 1;
    }
    printf("consumer: ok (own package lifeline, static)\n");
    return 0;
}
