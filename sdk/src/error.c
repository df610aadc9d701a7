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

/* Why the calling thread's last failed call failed, when the code alone does not say
 * (sdk_last_call_error). Thread-local: no lock, and no other thread's failure in between. */
static _Thread_local char call_detail[256];
static _Thread_local int call_err;

int ll_set_call_error(int err, const char *detail)
{
    call_err = err;
    LL_DETAIL(call_detail, sizeof(call_detail), "%s", detail && *detail ? detail : sdk_strerror(err));
    return err;
}

sdk_err sdk_last_call_error(char *buf, size_t buflen)
{
    if (buf && buflen) {
        LL_DETAIL(buf, buflen, "%s", call_detail);
    }
    return (sdk_err)call_err;
}
