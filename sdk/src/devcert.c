/*
 * Development certificates (see tls.h): a private CA and leaf certificates signed by it,
 * EC P-256 / SHA-256, made with the OpenSSL 3 API.
 *
 * Files are written to NAME.tmp and renamed into place, so an interrupted run never leaves
 * a half-written file that a later run would keep. Keys are created with mode 0600.
 */
#include "tls.h"

#include "ll.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define VALID_DAYS   825
#define BACKDATE_S   3600 /* tolerate a little clock skew between machines */
#define SERIAL_BYTES 16
#define SAN_TEXT_LEN 1024

typedef struct issuer {
    X509 *cert;
    EVP_PKEY *key;
} issuer;

typedef struct leaf_spec {
    const char *base; /* file name without .pem/.key */
    const char *cn;
    const char *san; /* "DNS:a,IP:1.2.3.4" or "" */
    const char *eku; /* extendedKeyUsage value */
} leaf_spec;

static const leaf_spec SERVER_LEAF = {"server", "localhost", "DNS:localhost,IP:127.0.0.1,IP:::1", "serverAuth"};
static const leaf_spec CLIENT_LEAF = {"client", "lifeline-dev-client", "", "clientAuth"};

static int tls_failed(const char *what, char *err, size_t errlen)
{
    char reason[256];

    ll_tls_openssl_reason(reason, sizeof reason);
    LL_DETAIL(err, errlen, "dev certs: %s: %s", what, reason);
    return SDK_ETLS;
}

static int io_failed(const char *what, const char *path, char *err, size_t errlen)
{
    LL_DETAIL(err, errlen, "dev certs: %s %s: %s", what, path, strerror(errno));
    return SDK_EIO;
}

/* ---- files -------------------------------------------------------------------------- */

static int join(char *buf, size_t len, const char *dir, const char *base, const char *ext)
{
    int n = snprintf(buf, len, "%s/%s%s", dir, base, ext);

    return n > 0 && (size_t)n < len ? 0 : SDK_EINVAL;
}

static bool exists(const char *dir, const char *base, const char *ext)
{
    char path[PATH_MAX];

    return join(path, sizeof path, dir, base, ext) == 0 && access(path, F_OK) == 0;
}

/* mkdir -p, private to the user: the directory will hold private keys. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    size_t i = 0;
    size_t n = strlen(dir);

    LL_ENSURE(n > 0 && n < sizeof path, SDK_EINVAL);
    memcpy(path, dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0') {
            continue;
        }
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            return io_failed("cannot create directory", path, err, errlen);
        }
        path[i] = dir[i];
    }
    return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Write the contents of a memory BIO to path (atomically, with the given mode). */
static int save_bio(BIO *mem, const char *path, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    char *data = NULL;
    long len = BIO_get_mem_data(mem, &data);
    int rc = 0;
    int fd = -1;

    LL_ENSURE(snprintf(tmp, sizeof tmp, "%s.tmp", path) < (int)sizeof tmp, SDK_EINVAL);
    (void)unlink(tmp); /* a leftover could carry looser permissions */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        return io_failed("cannot create", tmp, err, errlen);
    }
    if (write_all(fd, data, (size_t)len) != 0 || fsync(fd) != 0) {
        rc = io_failed("cannot write", tmp, err, errlen);
    }
    if (close(fd) != 0 && rc == 0) {
        rc = io_failed("cannot write", tmp, err, errlen);
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = io_failed("cannot rename to", path, err, errlen);
    }
    if (rc != 0) {
        (void)unlink(tmp);
    }
    return rc;
}

static int save_pair(const char *dir, const char *base, X509 *cert, EVP_PKEY *key, char *err, size_t errlen)
{
    char path[PATH_MAX];
    BIO *mem = NULL;
    int rc = 0;

    LL_GUARD(join(path, sizeof path, dir, base, ".key"));
    mem = BIO_new(BIO_s_mem());
    if (mem == NULL || !PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL)) {
        rc = tls_failed("encode key", err, errlen);
        goto out;
    }
    rc = save_bio(mem, path, 0600, err, errlen);
    if (rc != 0) {
        goto out;
    }
    LL_GUARD(join(path, sizeof path, dir, base, ".pem"));
    (void)BIO_reset(mem);
    if (!PEM_write_bio_X509(mem, cert)) {
        rc = tls_failed("encode certificate", err, errlen);
        goto out;
    }
    rc = save_bio(mem, path, 0644, err, errlen);
out:
    BIO_free(mem);
    return rc;
}

/* ---- certificates ------------------------------------------------------------------- */

static int set_serial(X509 *x)
{
    unsigned char bytes[SERIAL_BYTES];
    BIGNUM *bn = NULL;
    int ok = 0;

    if (RAND_bytes(bytes, sizeof bytes) != 1) {
        return 0;
    }
    bytes[0] = (unsigned char)((bytes[0] & 0x7f) | 0x01); /* positive, never zero */
    bn = BN_bin2bn(bytes, sizeof bytes, NULL);
    ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

static int set_subject(X509 *x, const char *cn)
{
    X509_NAME *name = X509_NAME_new();
    int ok = name != NULL &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) &&
             X509_set_subject_name(x, name);

    X509_NAME_free(name);
    return ok;
}

static int add_ext(X509 *x, X509 *issuer_cert, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext = NULL;
    int ok = 0;

    X509V3_set_ctx(&v3, issuer_cert, x, NULL, NULL, 0);
    ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    ok = ext != NULL && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* Version, serial, validity, subject, key and issuer name: everything but extensions. */
static X509 *new_cert(const char *cn, EVP_PKEY *key, X509 *issuer_cert)
{
    X509 *x = X509_new();

    if (x == NULL) {
        return NULL;
    }
    if (!X509_set_version(x, X509_VERSION_3) || !set_serial(x) ||
        X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), VALID_DAYS, 0, NULL) == NULL || !set_subject(x, cn) ||
        !X509_set_pubkey(x, key) ||
        !X509_set_issuer_name(x, X509_get_subject_name(issuer_cert != NULL ? issuer_cert : x))) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int make_ca(issuer *ca, char *err, size_t errlen)
{
    ca->key = EVP_EC_gen("P-256");
    if (ca->key == NULL) {
        return tls_failed("generate CA key", err, errlen);
    }
    ca->cert = new_cert("Lifeline development CA", ca->key, NULL);
    if (ca->cert == NULL || !add_ext(ca->cert, ca->cert, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(ca->cert, ca->cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash") ||
        !X509_sign(ca->cert, ca->key, EVP_sha256())) {
        return tls_failed("build CA certificate", err, errlen);
    }
    return 0;
}

static int add_leaf_exts(X509 *x, X509 *ca, const leaf_spec *spec)
{
    return add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") &&
           add_ext(x, ca, NID_key_usage, "critical,digitalSignature") && add_ext(x, ca, NID_ext_key_usage, spec->eku) &&
           (spec->san[0] == '\0' || add_ext(x, ca, NID_subject_alt_name, spec->san)) &&
           add_ext(x, ca, NID_subject_key_identifier, "hash") &&
           add_ext(x, ca, NID_authority_key_identifier, "keyid:always");
}

static int issue_leaf(const char *dir, const issuer *ca, const leaf_spec *spec, char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = NULL;
    int rc = 0;

    if (key == NULL) {
        return tls_failed("generate key", err, errlen);
    }
    x = new_cert(spec->cn, key, ca->cert);
    if (x == NULL || !add_leaf_exts(x, ca->cert, spec) || !X509_sign(x, ca->key, EVP_sha256())) {
        rc = tls_failed("build certificate", err, errlen);
        goto out;
    }
    rc = save_pair(dir, spec->base, x, key, err, errlen);
out:
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

/* ---- the CA ------------------------------------------------------------------------- */

static void issuer_free(issuer *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    ca->cert = NULL;
    ca->key = NULL;
}

static int load_ca(const char *dir, issuer *ca, char *err, size_t errlen)
{
    char cert_path[PATH_MAX];
    char key_path[PATH_MAX];
    BIO *in = NULL;

    LL_GUARD(join(cert_path, sizeof cert_path, dir, "ca", ".pem"));
    LL_GUARD(join(key_path, sizeof key_path, dir, "ca", ".key"));
    in = BIO_new_file(cert_path, "r");
    ca->cert = in != NULL ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
    BIO_free(in);
    if (ca->cert == NULL) {
        return tls_failed(cert_path, err, errlen);
    }
    in = BIO_new_file(key_path, "r");
    ca->key = in != NULL ? PEM_read_bio_PrivateKey(in, NULL, NULL, NULL) : NULL;
    BIO_free(in);
    if (ca->key == NULL) {
        return tls_failed(key_path, err, errlen);
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        return tls_failed("ca.key does not match ca.pem", err, errlen);
    }
    return 0;
}

/* Load DIR's CA, or make and save a new one (*fresh: certificates signed by an old CA, if
 * any, must then be issued again). */
static int ensure_ca(const char *dir, issuer *ca, bool *fresh, char *err, size_t errlen)
{
    LL_GUARD(make_dirs(dir, err, errlen));
    *fresh = !exists(dir, "ca", ".pem") || !exists(dir, "ca", ".key");
    if (!*fresh) {
        return load_ca(dir, ca, err, errlen);
    }
    LL_GUARD(make_ca(ca, err, errlen));
    return save_pair(dir, "ca", ca->cert, ca->key, err, errlen);
}

static int ensure_leaf(const char *dir, const issuer *ca, bool fresh_ca, const leaf_spec *spec, char *err,
                       size_t errlen)
{
    if (!fresh_ca && exists(dir, spec->base, ".pem") && exists(dir, spec->base, ".key")) {
        return 0;
    }
    return issue_leaf(dir, ca, spec, err, errlen);
}

int ll_tls_dev_certs(const char *dir, char *err, size_t errlen)
{
    issuer ca = {NULL, NULL};
    bool fresh = false;
    int rc = 0;

    LL_ENSURE(dir != NULL && dir[0] != '\0', SDK_EINVAL);
    rc = ensure_ca(dir, &ca, &fresh, err, errlen);
    if (rc == 0) {
        rc = ensure_leaf(dir, &ca, fresh, &SERVER_LEAF, err, errlen);
    }
    if (rc == 0) {
        rc = ensure_leaf(dir, &ca, fresh, &CLIENT_LEAF, err, errlen);
    }
    issuer_free(&ca);
    return rc;
}

/* "DNS:a,IP:1.2.3.4" from a NULL-terminated list of names and IP literals. */
static int san_text(const char *const *sans, char *buf, size_t len)
{
    size_t used = 0;
    unsigned char addr[sizeof(struct in6_addr)];

    buf[0] = '\0';
    for (; sans != NULL && *sans != NULL; sans++) {
        bool ip = inet_pton(AF_INET, *sans, addr) == 1 || inet_pton(AF_INET6, *sans, addr) == 1;
        int n = snprintf(buf + used, len - used, "%s%s:%s", used > 0 ? "," : "", ip ? "IP" : "DNS", *sans);
        LL_ENSURE(n > 0 && (size_t)n < len - used, SDK_EINVAL);
        used += (size_t)n;
    }
    return 0;
}

int ll_tls_dev_cert_for(const char *dir, const char *basename, const char *cn, const char *const *sans, char *err,
                        size_t errlen)
{
    char san[SAN_TEXT_LEN];
    leaf_spec spec = {basename, cn, san, "serverAuth,clientAuth"};
    issuer ca = {NULL, NULL};
    bool fresh = false;
    int rc = 0;

    LL_ENSURE(dir != NULL && dir[0] != '\0' && basename != NULL && cn != NULL, SDK_EINVAL);
    LL_GUARD(san_text(sans, san, sizeof san));
    rc = ensure_ca(dir, &ca, &fresh, err, errlen);
    if (rc == 0) {
        rc = issue_leaf(dir, &ca, &spec, err, errlen);
    }
    issuer_free(&ca);
    return rc;
}
