/*
 * The front of owner marks and instance channels (store_owner.h): one call at a time on the
 * store's connection, like recstore.c's; subscriptions have their own.
 */
#include "store_owner.h"

#include "recstore.h"

bool ll_owner_supported(const sdk_store *st)
{
    return st && st->owner_ops != NULL;
}

int ll_owner_write_marks(sdk_store *st, const ll_owner_mark *m, size_t n, uint64_t ttl_ms, bool keep_others)
{
    if (n == 0) {
        return 0;
    }
    pthread_mutex_lock(&st->mu);
    int rc = st->owner_ops->mark(st, m, n, ttl_ms, keep_others);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int ll_owner_get_mark(sdk_store *st, uint64_t id, char *buf, size_t len)
{
    pthread_mutex_lock(&st->mu);
    int rc = st->owner_ops->get_mark(st, id, buf, len);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int ll_owner_claim_free(sdk_store *st, uint64_t id, uint64_t ttl_ms, uint64_t *epoch)
{
    pthread_mutex_lock(&st->mu);
    int rc = st->owner_ops->claim_free(st, id, ttl_ms, epoch);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int ll_owner_publish(sdk_store *st, const char *channel, const char *msg, uint64_t *receivers)
{
    pthread_mutex_lock(&st->mu);
    int rc = st->owner_ops->publish(st, channel, msg, receivers);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int ll_owner_sub_open(sdk_store *st, const char *channel, ll_store_sub **out)
{
    return st->owner_ops->sub_open(st, channel, out);
}

int ll_owner_sub_fd(const sdk_store *st, const ll_store_sub *s)
{
    return st->owner_ops->sub_fd(s);
}

int ll_owner_sub_read(const sdk_store *st, ll_store_sub *s, ll_store_msg_fn fn, void *ctx)
{
    return st->owner_ops->sub_read(s, fn, ctx);
}

void ll_owner_sub_close(const sdk_store *st, ll_store_sub *s)
{
    if (s) {
        st->owner_ops->sub_close(s);
    }
}
