/*
 * consumer: a user's program built against an installed Lifeline. Without network it checks
 * that the typed layer, the generated code and the library fit together; --help only prints
 * usage. Exit status 0 and "consumer: ok" on success.
 */
#include <lifeline/pb.h>

#include "consumer.pb-c.h"

#include <stdio.h>
#include <string.h>

#define CHECK(cond)                                                 \
    do {                                                            \
        if (!(cond)) {                                              \
            fprintf(stderr, "consumer: check failed: %s\n", #cond); \
            return 1;                                               \
        }                                                           \
    } while (0)

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: consumer [--help]\nChecks the installed Lifeline without network.\n");
        return 0;
    }
    Consumer__Ping ping = CONSUMER__PING__INIT;
    ping.id = 42;
    ping.note = "hello";
    uint8_t buf[64];
    size_t len = consumer__ping__pack(&ping, buf);
    Consumer__Ping *back = consumer__ping__unpack(NULL, len, buf);
    CHECK(back && back->id == 42 && strcmp(back->note, "hello") == 0);
    consumer__ping__free_unpacked(back, NULL);

    /* The type name that goes on the wire, and the typed calls' argument checks. */
    CHECK(strcmp(ping.base.descriptor->name, "consumer.Ping") == 0);
    CHECK(sdk_send_pb(NULL, &ping.base, 0) == SDK_EINVAL);
    ProtobufCMessage *out = NULL;
    sdk_message *raw = NULL;
    CHECK(sdk_recv_pb(NULL, &consumer__ping__descriptor, &out, &raw, 0) == SDK_EINVAL);
    uint64_t session = 1;
    CHECK(sdk_server_recv_pb(NULL, &consumer__ping__descriptor, &out, &session, &raw, 0) == SDK_EINVAL);
    CHECK(session == 0);

    sdk_config cfg;
    sdk_config_init(&cfg);
    CHECK(cfg.max_frame > 0);
    CHECK(strcmp(sdk_errname(SDK_ETYPE), "SDK_ETYPE") == 0);
    printf("consumer: ok (%s)\n", sdk_strerror(SDK_ETYPE));
    return 0;
}
