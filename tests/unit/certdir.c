#include "certdir.h"

#include "ll.h"
#include "tls.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int ll_test_certdirs(const char *tmpl, char *dir, size_t len, const char *other_rel, char *other, size_t otherlen)
{
    char err[512] = "";

    LL_DETAIL(dir, len, "%s", tmpl);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    LL_DETAIL(other, otherlen, "%s/%s", dir, other_rel);
    if (ll_tls_dev_certs(dir, err, sizeof err) != 0 || ll_tls_dev_certs(other, err, sizeof err) != 0) {
        fprintf(stderr, "dev certs: %s\n", err);
        return -1;
    }
    return 0;
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int ll_test_rmtree(const char *dir)
{
    return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
