/*
 * The MQTT peer: libmosquitto (Debian's libmosquitto-dev) against a mosquitto broker this
 * benchmark starts itself with its own configuration file in a temp directory, on a free
 * loopback port, TLS with the same certificates as Lifeline's server, persistence off.
 * MQTT 3.1.1, QoS 1: at least once, the broker acknowledges each message (PUBACK).
 *
 * publish: QoS 1 publishes for the duration with at most a window in flight (Lifeline's
 * default window: 16384 messages or 16 MiB), then until every PUBACK is in. No
 * subscriber: the broker acknowledges and drops them.
 *
 * round trip: a client publishes a ping at QoS 1; a responder client, subscribed at QoS 1,
 * publishes it back at QoS 1 from its message callback; the client's message callback
 * wakes the measuring thread. Every client runs libmosquitto's own network thread
 * (mosquitto_loop_start) and sets TCP_NODELAY, as does the broker (set_tcp_nodelay).
 */
#include "bench.h"
#include "server_proc.h"

#include <mosquitto.h>
#include <openssl/ssl.h>

#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READY_MS    10000
#define WINDOW_MSGS 16384
#define WINDOW_B    (16u << 20)
#define PING_TOPIC  "lifeline-bench/ping"
#define PONG_TOPIC  "lifeline-bench/pong"
#define SINK_TOPIC  "lifeline-bench/sink"

static struct {
    pid_t pid;
    uint16_t port;
    char dir[256];
    char describe[256];
    const bench_opts *o;
    int clients; /* for unique client ids */
} mq;

static void check(int rc, const char *what)
{
    if (rc != MOSQ_ERR_SUCCESS) {
        bench_die("MQTT: %s: %s", what, mosquitto_strerror(rc));
    }
}

/* ---- the private broker ---- */

/* server_proc_launch_fn: write mosquitto.conf for port and start mosquitto on it. Run as
 * root, mosquitto would switch to its system user, which cannot read our temp directory:
 * user names the user we are. */
static pid_t launch(uint16_t port, void *arg)
{
    (void)arg;
    char conf[320], log[320];
    const struct passwd *pw = getpwuid(geteuid());
    server_proc_path(log, sizeof log, mq.dir, "mosquitto.log");
    FILE *f = pw ? server_proc_open_config(mq.dir, "mosquitto.conf", "mosquitto.log", conf, sizeof conf) : NULL;
    if (!f) {
        return 0;
    }
    fprintf(f,
            "user %s\nper_listener_settings false\nallow_anonymous true\npersistence false\n"
            "log_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "set_tcp_nodelay true\nlistener %u 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n",
            pw->pw_name, log, (unsigned)port, mq.o->ca, mq.o->cert, mq.o->key);
    fclose(f);
    return server_proc_spawn_config("mosquitto", conf, mq.dir, "mosquitto.out");
}

/* Ready once it logs "running" (after opening its listener) and takes a connection. */
static bool ready(uint16_t port, void *arg)
{
    char log[320];
    server_proc_path(log, sizeof log, mq.dir, "mosquitto.log");
    return server_proc_file_has(log, " running") && server_proc_connects(port, arg);
}

/* ---- clients ---- */

typedef struct mqtt_client {
    struct mosquitto *m;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool connected, subscribed;
    int lost; /* the reason the connection went (a mosquitto error), or 0 */
    bool closing;
    atomic_ulong acked; /* PUBACKs, written under mu */
    bool waiting;       /* the publisher sleeps on cv for acks */
    bool responder;     /* on_message: publish it back on PONG_TOPIC */
    bool got;           /* round trip: the pong has come */
    uint64_t got_counter;
    size_t got_len;
} mqtt_client;

static void signal_locked(mqtt_client *c)
{
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_connect(struct mosquitto *m, void *user, int rc)
{
    (void)m;
    mqtt_client *c = user;
    pthread_mutex_lock(&c->mu);
    c->connected = rc == 0;
    c->lost = rc == 0 ? 0 : MOSQ_ERR_CONN_REFUSED;
    signal_locked(c);
}

static void on_disconnect(struct mosquitto *m, void *user, int rc)
{
    (void)m;
    mqtt_client *c = user;
    pthread_mutex_lock(&c->mu);
    c->lost = c->closing ? 0 : rc ? rc : MOSQ_ERR_CONN_LOST;
    signal_locked(c);
}

static void on_publish(struct mosquitto *m, void *user, int mid)
{
    (void)m;
    (void)mid;
    mqtt_client *c = user;
    pthread_mutex_lock(&c->mu);
    atomic_fetch_add(&c->acked, 1);
    if (c->waiting) {
        pthread_cond_signal(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

static void on_subscribe(struct mosquitto *m, void *user, int mid, int count, const int *qos)
{
    (void)m;
    (void)mid;
    mqtt_client *c = user;
    if (count != 1 || qos[0] != 1) {
        bench_die("MQTT: the broker did not grant QoS 1");
    }
    pthread_mutex_lock(&c->mu);
    c->subscribed = true;
    signal_locked(c);
}

static void on_message(struct mosquitto *m, void *user, const struct mosquitto_message *msg)
{
    mqtt_client *c = user;
    if (c->responder) {
        check(mosquitto_publish(m, NULL, PONG_TOPIC, msg->payloadlen, msg->payload, 1, false), "publish (responder)");
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->got = true;
    c->got_len = (size_t)msg->payloadlen;
    c->got_counter = msg->payloadlen >= 8 ? bench_get_u64(msg->payload) : UINT64_MAX;
    signal_locked(c);
}

/* Wait on c->cv until *flag; bench_die if the connection goes first. Holds c->mu. */
static void wait_for(mqtt_client *c, const bool *flag, const char *what)
{
    while (!*flag && !c->lost) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    if (c->lost) {
        bench_die("MQTT: connection lost waiting for %s: %s", what, mosquitto_strerror(c->lost));
    }
}

/* A connected client (TLS, the dev CA, host name checked against 127.0.0.1), its network
 * thread running; subscribed at QoS 1 to topic unless NULL. */
static void open_client(mqtt_client *c, bool responder, const char *topic)
{
    *c = (mqtt_client){.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .responder = responder};
    char id[64];
    snprintf(id, sizeof id, "lifeline-bench-%ld-%d", (long)getpid(), mq.clients++);
    c->m = mosquitto_new(id, true, c);
    if (!c->m) {
        bench_die("MQTT: mosquitto_new failed");
    }
    mosquitto_connect_callback_set(c->m, on_connect);
    mosquitto_disconnect_callback_set(c->m, on_disconnect);
    mosquitto_publish_callback_set(c->m, on_publish);
    mosquitto_subscribe_callback_set(c->m, on_subscribe);
    mosquitto_message_callback_set(c->m, on_message);
    check(mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1), "MOSQ_OPT_TCP_NODELAY");
    check(mosquitto_max_inflight_messages_set(c->m, 0), "max_inflight_messages_set"); /* our window */
    check(mosquitto_tls_set(c->m, mq.o->ca, NULL, NULL, NULL, NULL), "mosquitto_tls_set");
    check(mosquitto_connect(c->m, "127.0.0.1", mq.port, 60), "mosquitto_connect");
    check(mosquitto_loop_start(c->m), "mosquitto_loop_start");
    pthread_mutex_lock(&c->mu);
    wait_for(c, &c->connected, "CONNACK");
    pthread_mutex_unlock(&c->mu);
    if (topic) {
        check(mosquitto_subscribe(c->m, NULL, topic, 1), "mosquitto_subscribe");
        pthread_mutex_lock(&c->mu);
        wait_for(c, &c->subscribed, "SUBACK");
        pthread_mutex_unlock(&c->mu);
    }
}

static void close_client(mqtt_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    pthread_mutex_unlock(&c->mu);
    mosquitto_disconnect(c->m);
    mosquitto_loop_stop(c->m, false);
    mosquitto_destroy(c->m);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

/* Wait until at most `allowed` of sent are unacknowledged. */
static void wait_acks(mqtt_client *c, uint64_t sent, uint64_t allowed)
{
    if (sent - atomic_load(&c->acked) <= allowed) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->waiting = true;
    while (sent - atomic_load(&c->acked) > allowed && !c->lost) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    c->waiting = false;
    if (c->lost) {
        bench_die("MQTT: connection lost with %llu PUBACKs missing: %s",
                  (unsigned long long)(sent - atomic_load(&c->acked)), mosquitto_strerror(c->lost));
    }
    pthread_mutex_unlock(&c->mu);
}

typedef struct mqtt_publisher {
    mqtt_client c;
    uint64_t window; /* messages unacknowledged at most */
} mqtt_publisher;

/* bench_send_fn: one QoS 1 publish, once the window has room. */
static void publish_one(void *ctx, const uint8_t *buf, size_t size, uint64_t n)
{
    mqtt_publisher *p = ctx;
    wait_acks(&p->c, n, p->window - 1);
    check(mosquitto_publish(p->c.m, NULL, SINK_TOPIC, (int)size, buf, 1, false), "mosquitto_publish");
}

double bench_mqtt_publish(const bench_opts *o, size_t size)
{
    static char phase[64];
    snprintf(phase, sizeof phase, "MQTT QoS 1 publish %zu B", size);
    mqtt_publisher p = {.window = WINDOW_B / size < WINDOW_MSGS ? WINDOW_B / size : WINDOW_MSGS};
    open_client(&p.c, false, NULL);
    bench_phase(phase, (int)o->duration_s + 90, NULL);
    uint64_t t0;
    uint64_t n = bench_send_for(o->duration_s, size, publish_one, &p, &t0);
    wait_acks(&p.c, n, 0);
    uint64_t t1 = bench_now_ns();
    bench_phase(NULL, 0, NULL);
    close_client(&p.c);
    return (double)n / ((double)(t1 - t0) / 1e9);
}

/* bench_round_trip_fn: ping i out, its pong back. */
static double ping_once(void *ctx, uint8_t *buf, size_t size, int i)
{
    mqtt_client *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->got = false;
    pthread_mutex_unlock(&c->mu);
    uint64_t t0 = bench_now_ns();
    check(mosquitto_publish(c->m, NULL, PING_TOPIC, (int)size, buf, 1, false), "mosquitto_publish (ping)");
    pthread_mutex_lock(&c->mu);
    wait_for(c, &c->got, "a pong");
    double us = (double)(bench_now_ns() - t0) / 1e3;
    if (c->got_len != size || c->got_counter != (uint64_t)i) {
        bench_die("MQTT: pong %d is not the echo of ping %d", i, i);
    }
    pthread_mutex_unlock(&c->mu);
    return us;
}

bench_latency bench_mqtt_round_trip(const bench_opts *o, size_t size)
{
    mqtt_client responder, c;
    open_client(&responder, true, PING_TOPIC);
    open_client(&c, false, PONG_TOPIC);
    bench_latency l = bench_ping_pong(o, "MQTT QoS 1 round trip", size, ping_once, &c);
    wait_acks(&c, (uint64_t)(o->latency_iters + o->latency_iters / 20), 0); /* the pings' PUBACKs */
    close_client(&c);
    close_client(&responder);
    return l;
}

/* ---- start and stop ---- */

/* The TLS version and cipher a client negotiates with the broker, for the description. */
static void negotiated(char *out, size_t len)
{
    mqtt_client c;
    open_client(&c, false, NULL);
    const SSL *ssl = mosquitto_ssl_get(c.m);
    snprintf(out, len, "%s %s", ssl ? SSL_get_version(ssl) : "no TLS?", ssl ? SSL_get_cipher_name(ssl) : "");
    close_client(&c);
}

void bench_mqtt_start(const bench_opts *o)
{
    mq.o = o;
    mosquitto_lib_init();
    if (!server_proc_tempdir(mq.dir, sizeof mq.dir, "lifeline-bench-mqtt")) {
        bench_die("MQTT: no temp directory");
    }
    if (!server_proc_start(&mq.pid, &mq.port, launch, ready, NULL, READY_MS)) {
        bench_die("MQTT: mosquitto did not start (files in %s; bash setup.sh bench --peers installs it)", mq.dir);
    }
    int major = 0, minor = 0, rev = 0;
    mosquitto_lib_version(&major, &minor, &rev);
    char tls[96];
    negotiated(tls, sizeof tls);
    snprintf(mq.describe, sizeof mq.describe,
             "mosquitto on 127.0.0.1:%u (private, persistence off), libmosquitto %d.%d.%d, MQTT 3.1.1, %s", mq.port,
             major, minor, rev, tls);
}

void bench_mqtt_stop(void)
{
    server_proc_kill(&mq.pid);
    static const char *const files[] = {"mosquitto.conf", "mosquitto.log", "mosquitto.out", NULL};
    server_proc_remove_dir(mq.dir, files);
    /* No mosquitto_lib_cleanup: it frees OpenSSL state that OpenSSL's own exit handler,
     * used by Lifeline and the raw pair too, frees again (a crash at exit). */
}

const char *bench_mqtt_describe(void)
{
    return mq.describe;
}
