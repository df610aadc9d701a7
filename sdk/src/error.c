/* The error table: names and sentences generated from SDK_ERROR_TABLE in sdk.h. */
#include "ll.h"

const char *sdk_strerror(int err)
{
    static const char *const text[] = {
#define TEXT_(name, sentence) sentence,
        SDK_ERROR_TABLE(TEXT_)
#undef TEXT_
    };
    if (err < 0 || err >= SDK_ERR_COUNT_) {
        return "unknown error";
    }
    return text[err];
}

const char *sdk_errname(int err)
{
    static const char *const names[] = {
#define NAME_(name, sentence) "SDK_" #name,
        SDK_ERROR_TABLE(NAME_)
#undef NAME_
    };
    if (err < 0 || err >= SDK_ERR_COUNT_) {
        return "SDK_EUNKNOWN";
    }
    return names[err];
}

const char *sdk_state_name(int state)
{
    switch (state) {
    case SDK_STATE_CONNECTING:
        return "connecting";
    case SDK_STATE_CONNECTED:
        return "connected";
    case SDK_STATE_RECONNECTING:
        return "reconnecting";
    case SDK_STATE_CLOSED:
        return "closed";
    default:
        return "unknown";
    }
}
