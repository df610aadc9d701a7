/* Configurations: the size-checked copy of a caller's struct (the ABI rule of sdk_config and
 * sdk_server_config, docs/DEVELOPMENT.md "ABI"), and copies that own their strings. */
#ifndef LL_CONFIG_H
#define LL_CONFIG_H

#include <stddef.h>

/* The smallest sized layouts this library accepts: 0.2's, the first with a size field. A
 * size below them is not a configuration (a struct never given to *_config_init). */
#define LL_CLIENT_CONFIG_SIZE_0_2 (offsetof(sdk_config, reconnect_policy) + sizeof(((sdk_config *)0)->reconnect_policy))
#define LL_SERVER_CONFIG_SIZE_0_2 (offsetof(sdk_server_config, store) + sizeof(struct sdk_store *))

/* A config struct's layout as this library knows it: its defaults, their size (sizeof the
 * struct) and the smallest size accepted. Every config struct starts with `size_t size`. */
typedef struct ll_config_layout {
    const char *name;     /* "sdk_config": for error details */
    const void *defaults; /* a full struct holding the defaults */
    size_t known;         /* sizeof the struct here */
    size_t min;           /* LL_*_CONFIG_SIZE_0_2 */
} ll_config_layout;

/* The layout of config struct type_, whose defaults are the struct defaults_. */
#define LL_CONFIG_LAYOUT(type_, defaults_, min_)                                        \
    {                                                                                   \
        .name = #type_, .defaults = &(defaults_), .known = sizeof(type_), .min = (min_) \
    }

/* *_config_init_sized: copy the defaults into the first size bytes of cfg, zero any bytes
 * beyond what this library knows, then set cfg's size field to size. 0, or SDK_EINVAL (NULL,
 * size below the minimum: cfg untouched). */
int ll_config_init(const ll_config_layout *lay, void *cfg, size_t size);

/* Take a caller's configuration: *dst (laid out as lay, already holding the defaults) gets
 * the first src->size bytes of src, so fields an older program does not know keep their
 * defaults; its size field becomes lay->known. SDK_EINVAL with the reason in why when
 * src->size is below the minimum, or beyond lay->known with a non-zero byte there (a newer
 * program setting a field this library does not know). */
int ll_config_take(const ll_config_layout *lay, void *dst, const void *src, char *why, size_t len);

/* Replace each *fields[i] (a string the caller lent, or NULL) with a copy in one new block,
 * returned in *block (free it once the fields are no longer used). 0 or SDK_ENOMEM, in
 * which case the fields are unchanged. */
int ll_config_own_strings(const char **fields[], size_t n, char **block);

#endif
