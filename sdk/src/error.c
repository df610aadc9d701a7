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

const char *ll_enum_name(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : "unknown";
}
