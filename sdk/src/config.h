/* Copying a caller's configuration so that the copy owns its strings. */
#ifndef LL_CONFIG_H
#define LL_CONFIG_H

#include <stddef.h>

/* Replace each *fields[i] (a string the caller lent, or NULL) with a copy in one new block,
 * returned in *block (free it once the fields are no longer used). 0 or SDK_ENOMEM, in
 * which case the fields are unchanged. */
int ll_config_own_strings(const char **fields[], size_t n, char **block);

#endif
