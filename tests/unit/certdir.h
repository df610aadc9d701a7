/* For unit tests: temporary directories of development certificates (ll_tls_dev_certs). */
#ifndef LL_TEST_CERTDIR_H
#define LL_TEST_CERTDIR_H

#include <stddef.h>

/* Make a fresh directory from tmpl (mkdtemp's XXXXXX) into dir (len bytes) with a CA and
 * its certificates, and a second, unrelated CA with its own in dir/other_rel (its path into
 * other, otherlen bytes; nested directories are created). 0, or -1 with the reason on
 * stderr. */
int ll_test_certdirs(const char *tmpl, char *dir, size_t len, const char *other_rel, char *other, size_t otherlen);
/* Remove dir with everything below it: 0, or -1 (errno set). */
int ll_test_rmtree(const char *dir);

#endif
