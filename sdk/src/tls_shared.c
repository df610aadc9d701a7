/*
 * The process's cache of client SSL_CTXs (see tls_shared.h).
 *
 * Locking: cache_lock (a leaf lock) guards the list, idle_entries and every entry's users count; an
 * entry's paths, file identities and SSL_CTX never change once it is entered. Building a
 * context happens outside the lock, so a slow disk stalls only the clients that need that
 * file; two threads building the same new entry at once keep the first one entered.
 */
#include "tls_shared.h"

#include "ll.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/x509.h>

enum { FILE_CA, FILE_CERT, FILE_KEY, FILE_COUNT };

/* What stat(2) says of a file, enough to notice it was replaced or rewritten. */
typedef struct file_id {
    int stat_errno; /* 0, or why stat failed (the build then reports the file too) */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime;
} file_id;

struct ll_tls_shared {
    ll_tls_shared *next;
    char *paths[FILE_COUNT]; /* as configured; NULL stays NULL */
    file_id ids[FILE_COUNT];
    SSL_CTX *ssl_ctx; /* the cache's reference */
    size_t users;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static ll_tls_shared *cache_head; /* most recently entered or released first */
static size_t idle_entries;       /* entries without users, kept for the next client */

static void identify(const char *path, file_id *id)
{
    struct stat st;

    memset(id, 0, sizeof *id);
    if (path == NULL) {
        return;
    }
    if (stat(path, &st) != 0) {
        id->stat_errno = errno;
        return;
    }
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
    id->ctime = st.st_ctim;
}

/* The configured paths and the identities of the files they name now. */
static void describe(const ll_tls_ctx_config *cfg, const char *paths[FILE_COUNT], file_id ids[FILE_COUNT])
{
    paths[FILE_CA] = cfg->ca_file;
    paths[FILE_CERT] = cfg->cert_file;
    paths[FILE_KEY] = cfg->key_file;
    /* The system store: its bundle file can be updated too (a certificate directory is
     * read lazily by OpenSSL, per lookup, so it needs no watching). */
    identify(cfg->ca_file != NULL ? cfg->ca_file : X509_get_default_cert_file(), &ids[FILE_CA]);
    identify(cfg->cert_file, &ids[FILE_CERT]);
    identify(cfg->key_file, &ids[FILE_KEY]);
}

static bool same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool same_id(const file_id *a, const file_id *b)
{
    return a->stat_errno == b->stat_errno && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           same_time(a->mtime, b->mtime) && same_time(a->ctime, b->ctime);
}

static bool same_path(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static bool same_paths(const ll_tls_shared *e, const char *const paths[FILE_COUNT])
{
    for (int i = 0; i < FILE_COUNT; i++) {
        if (!same_path(e->paths[i], paths[i])) {
            return false;
        }
    }
    return true;
}

static bool matches(const ll_tls_shared *e, const char *const paths[FILE_COUNT], const file_id ids[FILE_COUNT])
{
    for (int i = 0; i < FILE_COUNT; i++) {
        if (!same_path(e->paths[i], paths[i]) || !same_id(&e->ids[i], &ids[i])) {
            return false;
        }
    }
    return true;
}

/* Under cache_lock: unlink e from the list. */
static void unlink_locked(ll_tls_shared *e)
{
    ll_tls_shared **p = &cache_head;
    while (*p != e) {
        p = &(*p)->next;
    }
    *p = e->next;
    e->next = NULL;
}

/* Under cache_lock: a matching entry with one user more, or NULL. An unused entry for the
 * same paths whose files have changed since can never match again: it goes onto *stale
 * (a list of unlinked entries for the caller to free after unlocking). */
static ll_tls_shared *find_locked(const char *const paths[FILE_COUNT], const file_id ids[FILE_COUNT],
                                  ll_tls_shared **stale)
{
    ll_tls_shared *found = NULL;
    ll_tls_shared *e = cache_head;
    while (e != NULL) {
        ll_tls_shared *next = e->next;
        if (found == NULL && matches(e, paths, ids)) {
            found = e;
        } else if (e->users == 0 && same_paths(e, paths)) {
            unlink_locked(e);
            idle_entries--;
            e->next = *stale;
            *stale = e;
        }
        e = next;
    }
    if (found != NULL && found->users++ == 0) {
        idle_entries--;
    }
    return found;
}

static void entry_free(ll_tls_shared *e)
{
    if (e == NULL) {
        return;
    }
    for (int i = 0; i < FILE_COUNT; i++) {
        free(e->paths[i]);
    }
    SSL_CTX_free(e->ssl_ctx);
    free(e);
}

/* A new entry (one user) around a freshly built context, not yet entered. */
static int entry_new(const char *const paths[FILE_COUNT], const file_id ids[FILE_COUNT], SSL_CTX *c,
                     ll_tls_shared **out)
{
    ll_tls_shared *e = calloc(1, sizeof *e);

    LL_ENSURE(e != NULL, SDK_ENOMEM);
    e->ssl_ctx = c;
    e->users = 1;
    memcpy(e->ids, ids, sizeof e->ids);
    for (int i = 0; i < FILE_COUNT; i++) {
        if (paths[i] != NULL && (e->paths[i] = strdup(paths[i])) == NULL) {
            entry_free(e);
            return SDK_ENOMEM;
        }
    }
    *out = e;
    return 0;
}

static void free_list(ll_tls_shared *e)
{
    while (e != NULL) {
        ll_tls_shared *next = e->next;
        entry_free(e);
        e = next;
    }
}

/* Build and enter a new entry, unless another thread entered a matching one meanwhile. */
static int enter_new(const ll_tls_ctx_config *cfg, ll_tls_build_fn build, const char *const paths[FILE_COUNT],
                     const file_id ids[FILE_COUNT], ll_tls_shared **out, char *err, size_t errlen)
{
    SSL_CTX *c = NULL;
    ll_tls_shared *fresh = NULL;

    LL_GUARD(build(cfg, &c, err, errlen));
    int rc = entry_new(paths, ids, c, &fresh);
    if (rc != 0) {
        SSL_CTX_free(c);
        return rc;
    }
    ll_tls_shared *stale = NULL;
    pthread_mutex_lock(&cache_lock);
    ll_tls_shared *won = find_locked(paths, ids, &stale);
    if (won == NULL) {
        fresh->next = cache_head;
        cache_head = fresh;
        won = fresh;
        fresh = NULL;
    }
    pthread_mutex_unlock(&cache_lock);
    entry_free(fresh);
    free_list(stale);
    *out = won;
    return 0;
}

int ll_tls_shared_acquire(const ll_tls_ctx_config *cfg, ll_tls_build_fn build, ll_tls_shared **entry, SSL_CTX **ssl_ctx,
                          char *err, size_t errlen)
{
    const char *paths[FILE_COUNT];
    file_id ids[FILE_COUNT];
    ll_tls_shared *e = NULL;

    LL_ENSURE(cfg != NULL && build != NULL && entry != NULL && ssl_ctx != NULL && !cfg->server, SDK_EINVAL);
    describe(cfg, paths, ids); /* before reading the files: a later change is seen next time */
    ll_tls_shared *stale = NULL;
    pthread_mutex_lock(&cache_lock);
    e = find_locked(paths, ids, &stale);
    pthread_mutex_unlock(&cache_lock);
    free_list(stale);
    if (e == NULL) {
        LL_GUARD(enter_new(cfg, build, paths, ids, &e, err, errlen));
    }
    if (SSL_CTX_up_ref(e->ssl_ctx) != 1) {
        ll_tls_shared_release(e);
        LL_DETAIL(err, errlen, "cannot take a reference on the shared TLS context");
        return SDK_ENOMEM;
    }
    *entry = e;
    *ssl_ctx = e->ssl_ctx;
    return 0;
}

/* Under cache_lock: the oldest unused entry, unlinked, or NULL. */
static ll_tls_shared *take_oldest_idle_locked(void)
{
    ll_tls_shared *oldest = NULL;
    for (ll_tls_shared *e = cache_head; e != NULL; e = e->next) {
        if (e->users == 0) {
            oldest = e;
        }
    }
    if (oldest != NULL) {
        unlink_locked(oldest);
        idle_entries--;
    }
    return oldest;
}

void ll_tls_shared_release(ll_tls_shared *entry)
{
    ll_tls_shared *evicted = NULL;

    if (entry == NULL) {
        return;
    }
    pthread_mutex_lock(&cache_lock);
    if (--entry->users == 0) {
        /* Kept for the next client (a program that connects, works and destroys, again and
         * again), in front of the older unused entries. */
        unlink_locked(entry);
        entry->next = cache_head;
        cache_head = entry;
        if (++idle_entries > LL_TLS_SHARED_IDLE_MAX) {
            evicted = take_oldest_idle_locked();
        }
    }
    pthread_mutex_unlock(&cache_lock);
    entry_free(evicted);
}

void ll_tls_shared_flush_idle(void)
{
    ll_tls_shared *idle = NULL;

    pthread_mutex_lock(&cache_lock);
    for (ll_tls_shared *e = NULL; (e = take_oldest_idle_locked()) != NULL;) {
        e->next = idle;
        idle = e;
    }
    pthread_mutex_unlock(&cache_lock);
    free_list(idle);
}

size_t ll_tls_shared_entries(void)
{
    size_t n = 0;

    pthread_mutex_lock(&cache_lock);
    for (const ll_tls_shared *e = cache_head; e != NULL; e = e->next) {
        n++;
    }
    pthread_mutex_unlock(&cache_lock);
    return n;
}
