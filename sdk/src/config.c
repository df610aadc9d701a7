#include "config.h"

#include "ll.h"

#include <stdlib.h>
#include <string.h>

int ll_config_own_strings(const char **fields[], size_t n, char **block)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        total += *fields[i] ? strlen(*fields[i]) + 1 : 0;
    }
    char *p = malloc(total);
    LL_ENSURE(p, SDK_ENOMEM);
    *block = p;
    for (size_t i = 0; i < n; i++) {
        if (*fields[i]) {
            size_t len = strlen(*fields[i]) + 1;
            memcpy(p, *fields[i], len);
            *fields[i] = p;
            p += len;
        }
    }
    return 0;
}
