#include "config.h"

#include "ll.h"

#include <stdlib.h>
#include <string.h>

/* How much a config struct may grow in a newer Lifeline before a size is taken for garbage. */
#define LL_CONFIG_GROWTH_MAX 4096

static size_t size_of(const void *cfg)
{
    size_t size;
    memcpy(&size, cfg, sizeof(size)); /* every config struct starts with its size */
    return size;
}

static void set_size(void *cfg, size_t size)
{
    memcpy(cfg, &size, sizeof(size));
}

int ll_config_init(const ll_config_layout *lay, void *cfg, size_t size)
{
    LL_ENSURE(cfg != NULL && size >= lay->min, SDK_EINVAL);
    memcpy(cfg, lay->defaults, LL_MIN(size, lay->known));
    if (size > lay->known) {
        memset((char *)cfg + lay->known, 0, size - lay->known);
    }
    set_size(cfg, size);
    return 0;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

int ll_config_take(const ll_config_layout *lay, void *dst, const void *src, char *why, size_t len)
{
    size_t size = size_of(src);
    /* Beyond a few KiB it is no layout at all (say, a pointer where the size belongs): refuse
     * it without reading that far. */
    if (size < lay->min || (size > lay->known && size - lay->known > LL_CONFIG_GROWTH_MAX)) {
        LL_DETAIL(why, len, "%s.size is %zu, not a size this library knows (%zu to %zu): initialise it with %s_init",
                  lay->name, size, lay->min, lay->known, lay->name);
        return SDK_EINVAL;
    }
    if (size > lay->known && !all_zero((const unsigned char *)src + lay->known, size - lay->known)) {
        LL_DETAIL(why, len,
                  "%s.size is %zu: the program was built against a newer Lifeline and sets fields this "
                  "library (%zu bytes) does not know; upgrade liblifeline",
                  lay->name, size, lay->known);
        return SDK_EINVAL;
    }
    memcpy(dst, src, LL_MIN(size, lay->known));
    set_size(dst, lay->known);
    return 0;
}

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
