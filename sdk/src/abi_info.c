/* sdk_version and sdk_struct_size: what a binding that mirrors the public structs checks at
 * load time (sdk.h, "Introspection"). */
#include <string.h>

#include "ll.h"
#include "lifeline/server.h"

#ifndef LIFELINE_VERSION_STRING
#error "LIFELINE_VERSION_STRING comes from project(VERSION) (sdk/CMakeLists.txt)"
#endif

const char *sdk_version(void)
{
    return LIFELINE_VERSION_STRING;
}

#define STRUCT_SIZE_(type)  \
    {                       \
#type, sizeof(type) \
    }

static const struct {
    const char *name;
    size_t size;
} public_structs[] = {
    STRUCT_SIZE_(sdk_config),        STRUCT_SIZE_(sdk_server_config), STRUCT_SIZE_(sdk_retry_rule),
    STRUCT_SIZE_(sdk_event),         STRUCT_SIZE_(sdk_message),       STRUCT_SIZE_(sdk_stats),
    STRUCT_SIZE_(sdk_session_event), STRUCT_SIZE_(sdk_session_info),
};

size_t sdk_struct_size(const char *name)
{
    if (name == NULL) {
        return 0;
    }
    for (size_t i = 0; i < sizeof public_structs / sizeof public_structs[0]; i++) {
        if (strcmp(public_structs[i].name, name) == 0) {
            return public_structs[i].size;
        }
    }
    return 0;
}
