/*
 * In-memory wires and a virtual clock in place of net.c, tls.c and devcert.c (see wire.h).
 * Only what the connection code calls does something; the rest of net.h and tls.h fails
 * plainly, so a target that started using it would notice.
 */
#include "wire.h"

#include "ll.h"
#include "net.h"
#include "resolve.h"
#include "tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WALL_EPOCH_MS UINT64_C(1700000000000) /* any fixed wall-clock origin */
#define WATCH_MAX     64                      /* descriptors one poller watches, at most */

struct ll_tls {
    fake_wire *w;
};

static struct {
    uint64_t now_ms;
    fake_wire *wires; /* every wire of this input, newest first */
    int count;
    fake_wire *accept; /* what the next ll_net_accept hands out */
    fake_wire *(*connect)(void *arg);
    void *connect_arg;
    int wake_fd;         /* the client's or server's, from wire_wake_fd */
    bool wake_signalled; /* ll_wake_signal since the last ll_wake_drain: the poller sees it */
    int listen_fd;       /* from wire_listen_fd: readable while an accept is offered */
    uint64_t random;     /* ll_net_random's stream */
    struct {
        int fd;
        uint32_t events;
        void *ptr;
    } watched[WATCH_MAX]; /* what the poller was asked to watch */
    int nwatched;
} world;

static void wire_free(fake_wire *w)
{
    if (w->fd >= 0 && !w->handed_out) {
        close(w->fd);
    }
    ll_buf_free(&w->in);
    ll_buf_free(&w->out);
    free(w);
}

void wire_reset(uint64_t start_ms)
{
    while (world.wires) {
        fake_wire *w = world.wires;
        world.wires = w->next;
        wire_free(w);
    }
    memset(&world, 0, sizeof(world));
    world.now_ms = start_ms;
    world.wake_fd = -1;
    world.listen_fd = -1;
    world.random = 1;
}

/* Counter 1: always readable (and writable), so neither epoll nor poll ever waits on it. */
static int ready_eventfd(void)
{
    int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
        abort(); /* out of descriptors: something leaks them */
    }
    return fd;
}

int wire_wake_fd(void)
{
    world.wake_fd = ready_eventfd();
    return world.wake_fd;
}

int wire_listen_fd(void)
{
    world.listen_fd = ready_eventfd();
    return world.listen_fd;
}

fake_wire *wire_new(void)
{
    fake_wire *w = calloc(1, sizeof(*w));
    if (!w) {
        abort();
    }
    w->fd = ready_eventfd();
    w->index = world.count++;
    w->room = SIZE_MAX;
    w->read_piece = SIZE_MAX;
    w->next = world.wires;
    world.wires = w;
    return w;
}

void wire_offer_accept(fake_wire *w)
{
    world.accept = w;
}

bool wire_accept_pending(void)
{
    return world.accept != NULL;
}

void wire_set_connect(fake_wire *(*connect)(void *arg), void *arg)
{
    world.connect = connect;
    world.connect_arg = arg;
}

fake_wire *wire_of(const ll_tls *t)
{
    return t->w;
}

size_t wire_sent(const fake_wire *w)
{
    return w->read_total + ll_buf_size(&w->in);
}

bool wire_readable(const fake_wire *w)
{
    return !w->handshaken || ll_buf_size(&w->in) > 0 || w->hung_up || w->read_error;
}

void wire_advance_clock(uint64_t ms)
{
    world.now_ms += ms;
}

int wire_read_frames(fake_wire *w, ll_decoder *dec, void (*fn)(const Lifeline__Frame *f, void *arg), void *arg)
{
    if (ll_buf_size(&w->out) > 0) {
        LL_GUARD(ll_decoder_feed(dec, ll_buf_head(&w->out), ll_buf_size(&w->out)));
        ll_buf_consume(&w->out, ll_buf_size(&w->out));
    }
    Lifeline__Frame *f = NULL;
    ll_dec_result rc;
    while ((rc = ll_decoder_next(dec, &f)) == LL_DEC_FRAME) {
        fn(f, arg);
        ll_frame_free(f);
    }
    return rc == LL_DEC_ERROR ? dec->err : 0;
}

static fake_wire *wire_by_fd(int fd)
{
    for (fake_wire *w = world.wires; w; w = w->next) {
        if (w->fd == fd && fd >= 0) {
            return w;
        }
    }
    return NULL;
}

static void hand_out(fake_wire *w, int *fd)
{
    w->handed_out = true;
    *fd = w->fd;
}

/* ---- clock: every look at it finds a millisecond gone, so loops that wait for a deadline
 * (backoff, lingering closes) end after a bounded number of turns instead of sleeping ---- */

uint64_t ll_now_ms(void)
{
    return world.now_ms++;
}

uint64_t ll_now_us(void)
{
    return ll_now_ms() * 1000;
}

uint64_t ll_wall_ms(void)
{
    return WALL_EPOCH_MS + world.now_ms;
}

/* ---- the client's waits ----
 * Every descriptor the client's I/O thread waits on is a wire or its wake fd, both ready for
 * good (the wake fd reads as signalled, so the thread looks at `closing` each time). A wait on
 * the wake fd alone is a sleep nothing can cut short (the application acts only while the
 * thread reads or connects), so its timeout passes at once: a second's backoff is one turn,
 * not a thousand turns of the 1 ms clock. */

short ll_net_wait(int fd, short events, int wake_fd, int timeout_ms, bool *woken)
{
    bool wire = fd >= 0 && wire_by_fd(fd) != NULL;
    if (woken) {
        *woken = wake_fd >= 0 && wake_fd == world.wake_fd;
    }
    if (!wire && timeout_ms > 0) {
        world.now_ms += (uint64_t)timeout_ms;
    }
    return wire ? (short)(events & (POLLIN | POLLOUT)) : 0;
}

/* ---- net.h ---- */

int ll_net_accept(int lfd, int *fd, char *peer, size_t peerlen)
{
    (void)lfd;
    fake_wire *w = world.accept;
    if (!w) {
        return LL_NET_AGAIN;
    }
    world.accept = NULL;
    hand_out(w, fd);
    LL_DETAIL(peer, peerlen, "wire:%d", w->index);
    return 0;
}

/* One made-up address for every name: the client's endpoint cursor (endpoints.c) runs as
 * it does for real, and each connect takes the next wire. */
int ll_resolve(const char *host, uint16_t port, uint64_t deadline_ms, int wake_fd, ll_addrs *out, char *err,
               size_t errlen)
{
    (void)host, (void)deadline_ms, (void)wake_fd, (void)err, (void)errlen;
    memset(out, 0, sizeof(*out));
    out->count = 1;
    out->addr[0].sa.ss_family = AF_INET;
    out->addr[0].len = sizeof(struct sockaddr_in);
    ((struct sockaddr_in *)&out->addr[0].sa)->sin_port = htons(port);
    return 0;
}

void ll_net_format_addr(const ll_addr *addr, char *buf, size_t len)
{
    (void)addr;
    LL_DETAIL(buf, len, "wire");
}

int ll_net_connect_addr(const ll_addr *addr, uint64_t deadline_ms, int wake_fd, int *fd, char *err, size_t errlen)
{
    (void)addr;
    return ll_net_connect("wire", 1, deadline_ms, wake_fd, fd, err, errlen);
}

int ll_net_connect(const char *host, uint16_t port, uint64_t deadline_ms, int wake_fd, int *fd, char *err,
                   size_t errlen)
{
    (void)host, (void)port, (void)deadline_ms, (void)wake_fd;
    fake_wire *w = world.connect ? world.connect(world.connect_arg) : NULL;
    if (!w) {
        LL_DETAIL(err, errlen, "connection refused (no more wires)");
        return SDK_ECONNREFUSED;
    }
    hand_out(w, fd);
    return 0;
}

/* A wire refused by admission control: closed, as the real one is (with a reset). */
void ll_net_abort(int fd)
{
    close(fd);
}

void ll_net_nodelay(int fd)
{
    (void)fd;
}

void ll_net_keepalive(int fd, int user_timeout_ms)
{
    (void)fd, (void)user_timeout_ms;
}

int ll_net_drain(int fd)
{
    fake_wire *w = wire_by_fd(fd);
    if (!w) {
        return SDK_EDISCONNECTED;
    }
    ll_buf_clear(&w->in);
    return w->hung_up ? SDK_EDISCONNECTED : 0;
}

int ll_net_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    (void)s, (void)host, (void)hostlen, (void)port;
    return SDK_EINVAL;
}

int ll_net_listen(const char *host, uint16_t port, int *fd, char *err, size_t errlen)
{
    (void)host, (void)port, (void)fd;
    LL_DETAIL(err, errlen, "no listening on wires");
    return SDK_ELISTEN;
}

uint16_t ll_net_local_port(int fd)
{
    (void)fd;
    return 0;
}

int ll_wake_open(int *fd)
{
    *fd = -1;
    return SDK_EIO;
}

/* The wake descriptor itself stays readable for good, so a poll() never waits on it; the
 * poller below reports it only while signalled, as epoll would report the real eventfd. */
void ll_wake_signal(int fd)
{
    world.wake_signalled |= fd == world.wake_fd;
}

void ll_wake_drain(int fd)
{
    world.wake_signalled &= fd != world.wake_fd;
}

void ll_net_shutdown_write(int fd)
{
    fake_wire *w = wire_by_fd(fd);
    if (w) {
        w->shut_wr = true;
    }
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Session ids and tokens from a seeded stream rather than the kernel, so inputs replay. */
int ll_net_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)splitmix64(&world.random);
    }
    return 0;
}

/* ---- the poller: level-triggered epoll, computed from the wires ---- */

int ll_net_poll_open(void)
{
    world.nwatched = 0;
    return ready_eventfd(); /* a descriptor for the library to close */
}

static int watch_index(int fd)
{
    for (int i = 0; i < world.nwatched; i++) {
        if (world.watched[i].fd == fd) {
            return i;
        }
    }
    return -1;
}

int ll_net_poll_add(int poller, int fd, uint32_t events, void *ptr)
{
    (void)poller;
    if (fd < 0 || watch_index(fd) >= 0 || world.nwatched == WATCH_MAX) {
        return SDK_EIO;
    }
    world.watched[world.nwatched].fd = fd;
    world.watched[world.nwatched].events = events;
    world.watched[world.nwatched++].ptr = ptr;
    return 0;
}

int ll_net_poll_mod(int poller, int fd, uint32_t events, void *ptr)
{
    (void)poller;
    int i = watch_index(fd);
    if (i < 0) {
        return SDK_EIO;
    }
    world.watched[i].events = events;
    world.watched[i].ptr = ptr;
    return 0;
}

void ll_net_poll_del(int poller, int fd)
{
    (void)poller;
    int i = watch_index(fd);
    if (i >= 0) {
        world.watched[i] = world.watched[--world.nwatched];
    }
}

/* What epoll would report for fd, watched for events. */
static uint32_t readiness(int fd, uint32_t events)
{
    if (fd == world.wake_fd) {
        return world.wake_signalled ? (events & LL_POLL_IN) : 0;
    }
    if (fd == world.listen_fd) {
        return world.accept ? (events & LL_POLL_IN) : 0;
    }
    const fake_wire *w = wire_by_fd(fd);
    uint32_t r = 0;
    if (!w) {
        return 0;
    }
    r |= wire_readable(w) ? LL_POLL_IN : 0;
    r |= w->room > 0 ? LL_POLL_OUT : 0;
    if (w->reset) {
        r |= LL_POLL_HUP | LL_POLL_ERR;
    } else if (w->hung_up && w->shut_wr) {
        r |= LL_POLL_HUP; /* both directions are shut */
    }
    return r & (events | LL_POLL_HUP | LL_POLL_ERR);
}

/* Never sleeps: time passes only when the input says so (or by the clock's own ticks). */
int ll_net_poll_wait(int poller, ll_poll_event *evs, int max, int timeout_ms)
{
    (void)poller, (void)timeout_ms;
    int n = 0;
    for (int i = 0; i < world.nwatched && n < max; i++) {
        uint32_t r = readiness(world.watched[i].fd, world.watched[i].events);
        if (r) {
            evs[n++] = (ll_poll_event){.events = r, .ptr = world.watched[i].ptr};
        }
    }
    return n;
}

/* ---- tls.h ---- */

int ll_tls_ctx_new(const ll_tls_ctx_config *cfg, ll_tls_ctx **out, char *err, size_t errlen)
{
    (void)cfg;
    *out = NULL;
    LL_DETAIL(err, errlen, "no TLS contexts on wires");
    return SDK_ETLS;
}

void ll_tls_ctx_free(ll_tls_ctx *ctx)
{
    (void)ctx;
}

int ll_tls_ctx_reload(ll_tls_ctx *ctx, const ll_tls_ctx_config *cfg, char *err, size_t errlen)
{
    (void)ctx;
    (void)cfg;
    LL_DETAIL(err, errlen, "no TLS contexts on wires");
    return SDK_ETLS;
}

int64_t ll_tls_ctx_not_after(ll_tls_ctx *ctx)
{
    (void)ctx;
    return 0;
}

int ll_tls_new(ll_tls_ctx *ctx, int fd, const char *servername, ll_tls **out, char *err, size_t errlen)
{
    (void)ctx, (void)servername;
    fake_wire *w = wire_by_fd(fd);
    ll_tls *t = w ? calloc(1, sizeof(*t)) : NULL;
    if (!t) {
        LL_DETAIL(err, errlen, "no wire for descriptor %d", fd);
        return SDK_ENOMEM;
    }
    t->w = w;
    *out = t;
    return 0;
}

void ll_tls_free(ll_tls *t)
{
    if (!t) {
        return;
    }
    t->w->tls_freed = true;
    t->w->fd = -1; /* the library closes the descriptor next; its number may come back */
    free(t);
}

int ll_tls_handshake(ll_tls *t)
{
    fake_wire *w = t->w;
    if (w->handshake_waits > 0) {
        return w->handshake_waits-- % 2 ? LL_TLS_WANT_READ : LL_TLS_WANT_WRITE;
    }
    if (w->resume_tag && w->handshake_rc == 0 && !w->half_rtt) {
        w->half_rtt = true; /* once: our flight is out, the client's Finished not read yet */
        return LL_TLS_HALF_RTT;
    }
    bool after_half_rtt = w->half_rtt && !w->handshaken;
    w->handshaken = true;
    if (after_half_rtt && w->on_half_rtt_over) {
        w->on_half_rtt_over(w, w->hook_arg);
    }
    return w->handshake_rc;
}

int ll_tls_read(ll_tls *t, void *buf, size_t len, size_t *n)
{
    fake_wire *w = t->w;
    *n = 0;
    while (ll_buf_size(&w->in) == 0 && !w->hung_up && !w->read_error && w->refill && w->refill(w, w->hook_arg)) {
    }
    if (ll_buf_size(&w->in) > 0) {
        *n = LL_MIN(LL_MIN(len, ll_buf_size(&w->in)), w->read_piece);
        memcpy(buf, ll_buf_head(&w->in), *n);
        ll_buf_consume(&w->in, *n);
        w->read_total += *n;
        if (w->on_read) {
            w->on_read(w, w->hook_arg);
        }
        return LL_TLS_OK;
    }
    if (w->read_error) {
        return w->read_error;
    }
    return w->hung_up ? SDK_EDISCONNECTED : LL_TLS_WANT_READ;
}

bool ll_tls_has_pending(ll_tls *t)
{
    (void)t;
    return false; /* the plaintext wire keeps nothing back from poll */
}

int ll_tls_send_ticket(ll_tls *t)
{
    (void)t;
    return LL_TLS_OK; /* no TLS, no session tickets */
}

void ll_tls_tag_ticket(ll_tls *t, uint64_t tag, const void *secret, size_t len)
{
    (void)secret;
    (void)len;
    t->w->ticket_tag = tag;
}

size_t ll_tls_ticket_secret(const ll_tls *t, void *buf, size_t cap)
{
    (void)t;
    (void)buf;
    (void)cap;
    return 0; /* no store behind the fuzzed server: only its own sessions resume early */
}

uint64_t ll_tls_ticket_tag(const ll_tls *t)
{
    return t->w->resume_tag;
}

int ll_tls_write(ll_tls *t, const void *buf, size_t len, size_t *n)
{
    fake_wire *w = t->w;
    *n = 0;
    if (w->reset) {
        return SDK_EDISCONNECTED;
    }
    if (w->room == 0) {
        return LL_TLS_WANT_WRITE;
    }
    size_t take = LL_MIN(len, w->room);
    if (ll_buf_append(&w->out, buf, take) != 0) {
        abort();
    }
    if (w->room != SIZE_MAX) {
        w->room -= take;
    }
    *n = take;
    return LL_TLS_OK;
}

void ll_tls_shutdown(ll_tls *t)
{
    (void)t;
}

const char *ll_tls_error(const ll_tls *t)
{
    (void)t;
    return "wire failed";
}

bool ll_tls_resumed(const ll_tls *t)
{
    (void)t;
    return false;
}

bool ll_tls_peer_closed(const ll_tls *t)
{
    return t->w->hung_up && !t->w->reset;
}

void ll_tls_peer_subject(const ll_tls *t, char *buf, size_t len)
{
    LL_DETAIL(buf, len, "CN=wire%d", t->w->index);
}

void ll_tls_alpn(const ll_tls *t, char *buf, size_t len)
{
    (void)t;
    LL_DETAIL(buf, len, "lifeline/1");
}

void ll_tls_openssl_reason(char *buf, size_t len)
{
    LL_DETAIL(buf, len, "%s", "");
}

int ll_tls_dev_certs(const char *dir, char *err, size_t errlen)
{
    (void)dir;
    LL_DETAIL(err, errlen, "no certificates on wires");
    return SDK_EIO;
}

int ll_tls_dev_cert_for(const char *dir, const char *basename, const char *cn, const char *const *sans, char *err,
                        size_t errlen)
{
    (void)dir, (void)basename, (void)cn, (void)sans;
    LL_DETAIL(err, errlen, "no certificates on wires");
    return SDK_EIO;
}

/* The in-memory wire holds no OpenSSL buffers to give back. */
void ll_tls_release_buffers(ll_tls *t)
{
    (void)t;
}
