/*
 * The 0.1 entry points, kept in liblifeline.so so that programs built against 0.1 keep
 * working (docs/DEVELOPMENT.md, "ABI"). 0.1's sdk_config and sdk_server_config had no size
 * field; 0.2's are the same fields, in the same order, after `size_t size`, then new ones.
 * Each entry point here converts and calls the current function. Exported under the old
 * version only (".symver name@LIFELINE_0.1", see sdk/lifeline.map), which is what an
 * unversioned reference from a 0.1 program binds to; built into the shared library alone
 * (a static link always takes the current header and functions).
 */
#include "lifeline/server.h"

#include <stddef.h>
#include <string.h>

/* impl is exported as name@LIFELINE_0.1 (impl itself stays local: sdk/lifeline.map). */
#define COMPAT_0_1(impl, name) __asm__(".symver " #impl ", " #name "@LIFELINE_0.1")
#define COMPAT_API             __attribute__((visibility("default")))

/* The 0.1 layouts, frozen: never edit. */
typedef struct config_0_1 {
    const char *host;
    uint16_t port;
    const char *servername, *ca_file, *cert_file, *key_file;
    uint32_t max_frame;
    int connect_timeout_ms, heartbeat_interval_ms, heartbeat_timeout_ms, reconnect_min_ms, reconnect_max_ms;
    unsigned max_reconnect_attempts;
    bool retry_on_first_connect;
    size_t queue_max_messages, queue_max_bytes;
    uint32_t window_messages;
    uint64_t window_bytes;
    int close_linger_ms;
    sdk_event_fn on_event;
    void *user;
    sdk_message_fn on_message;
} config_0_1;

typedef struct server_config_0_1 {
    const char *listen, *cert_file, *key_file, *client_ca_file;
    uint32_t max_frame;
    int handshake_timeout_ms, heartbeat_min_ms, heartbeat_max_ms, session_ttl_ms;
    size_t queue_max_messages, queue_max_bytes;
    uint32_t window_messages;
    uint64_t window_bytes;
    size_t max_output_bytes;
    sdk_server_event_fn on_event;
    void *user;
    sdk_message_fn on_message;
} server_config_0_1;

/* 0.2 keeps each 0.1 field at the same offset from the first, so one memcpy converts. */
#define SAME_PLACE(type, old, first, f) \
    _Static_assert(offsetof(type, f) - offsetof(type, first) == offsetof(old, f), #type "." #f " moved");
/* clang-format does not settle on one layout for these lists. */
/* clang-format off */
#define CLIENT_FIELDS_0_1(X) \
    X(host) X(port) X(servername) X(ca_file) X(cert_file) X(key_file) X(max_frame) \
    X(connect_timeout_ms) X(heartbeat_interval_ms) X(heartbeat_timeout_ms) X(reconnect_min_ms) \
    X(reconnect_max_ms) X(max_reconnect_attempts) X(retry_on_first_connect) X(queue_max_messages) \
    X(queue_max_bytes) X(window_messages) X(window_bytes) X(close_linger_ms) X(on_event) X(user) \
    X(on_message)
#define SERVER_FIELDS_0_1(X) \
    X(listen) X(cert_file) X(key_file) X(client_ca_file) X(max_frame) X(handshake_timeout_ms) \
    X(heartbeat_min_ms) X(heartbeat_max_ms) X(session_ttl_ms) X(queue_max_messages) \
    X(queue_max_bytes) X(window_messages) X(window_bytes) X(max_output_bytes) X(on_event) X(user) \
    X(on_message)
/* clang-format on */
#define CLIENT_SAME_(f) SAME_PLACE(sdk_config, config_0_1, host, f)
#define SERVER_SAME_(f) SAME_PLACE(sdk_server_config, server_config_0_1, listen, f)
CLIENT_FIELDS_0_1(CLIENT_SAME_)
SERVER_FIELDS_0_1(SERVER_SAME_)
/* Every released layout, frozen (abi_compliance skips these two growing structs, so this is
 * what keeps them in place): size first, the 0.1 fields right after it, then 0.2's. A new
 * release appends its fields and adds its line here (docs/DEVELOPMENT.md, "ABI"). */
_Static_assert(offsetof(sdk_config, host) == sizeof(size_t), "0.2: size, then the 0.1 fields");
_Static_assert(offsetof(sdk_server_config, listen) == sizeof(size_t), "0.2: size, then the 0.1 fields");
_Static_assert(offsetof(sdk_config, address) == offsetof(sdk_config, host) + sizeof(config_0_1), "0.2: address");
_Static_assert(offsetof(sdk_message, peer) == 40 && offsetof(sdk_message, flags) == 48,
               "0.1's sdk_message fields stay where they were; 0.2 appends flags");
_Static_assert(offsetof(sdk_config, reconnect_policy) == offsetof(sdk_config, address) + sizeof(const char *),
               "0.2: reconnect_policy");
_Static_assert(offsetof(sdk_config, endpoints) ==
                   offsetof(sdk_config, reconnect_policy) + sizeof(((sdk_config *)0)->reconnect_policy),
               "0.2: endpoints");
_Static_assert(offsetof(sdk_server_config, store) == offsetof(sdk_server_config, listen) + sizeof(server_config_0_1),
               "0.2: store");
_Static_assert(sizeof(sdk_server_config) >= offsetof(sdk_server_config, listen) + sizeof(server_config_0_1),
               "0.2: no server field added");

COMPAT_API void ll_compat_config_init_0_1(config_0_1 *old);
COMPAT_API sdk_err ll_compat_connect_0_1(const config_0_1 *old, sdk_client **out);
COMPAT_API void ll_compat_server_config_init_0_1(server_config_0_1 *old);
COMPAT_API sdk_err ll_compat_server_start_0_1(const server_config_0_1 *old, sdk_server **out);
COMPAT_0_1(ll_compat_config_init_0_1, sdk_config_init);
COMPAT_0_1(ll_compat_connect_0_1, sdk_connect);
COMPAT_0_1(ll_compat_server_config_init_0_1, sdk_server_config_init);
COMPAT_0_1(ll_compat_server_start_0_1, sdk_server_start);

/* The 0.1 part of a current struct, cfg + offset, to or from a 0.1 struct. */
static void to_0_1(void *old, const void *cfg, size_t offset, size_t size)
{
    memcpy(old, (const char *)cfg + offset, size);
}

static void *from_0_1(void *cfg, size_t offset, const void *old, size_t size)
{
    if (!old) {
        return NULL; /* let the current function refuse it */
    }
    memcpy((char *)cfg + offset, old, size);
    return cfg;
}

void ll_compat_config_init_0_1(config_0_1 *old)
{
    sdk_config cfg;
    sdk_config_init(&cfg);
    to_0_1(old, &cfg, offsetof(sdk_config, host), sizeof(*old));
}

/* 0.1 had no address field: the current one keeps its default, NULL. */
sdk_err ll_compat_connect_0_1(const config_0_1 *old, sdk_client **out)
{
    sdk_config cfg;
    sdk_config_init(&cfg);
    return sdk_connect(from_0_1(&cfg, offsetof(sdk_config, host), old, sizeof(*old)), out);
}

void ll_compat_server_config_init_0_1(server_config_0_1 *old)
{
    sdk_server_config cfg;
    sdk_server_config_init(&cfg);
    to_0_1(old, &cfg, offsetof(sdk_server_config, listen), sizeof(*old));
}

sdk_err ll_compat_server_start_0_1(const server_config_0_1 *old, sdk_server **out)
{
    sdk_server_config cfg;
    sdk_server_config_init(&cfg);
    return sdk_server_start(from_0_1(&cfg, offsetof(sdk_server_config, listen), old, sizeof(*old)), out);
}
