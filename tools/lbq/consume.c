/*
 * `lbq consume`: N delivery threads and the control loop. Each thread owns a Redis context,
 * a keep-alive HTTP connection and a processing list (Q:processing:CONSUMER.THREAD); it takes
 * one entry at a time, so at most N entries are in hand. The control loop (the main thread)
 * keeps every thread's heartbeat alive, takes back the lists of consumers that died, and
 * prints progress. SIGTERM/SIGINT: no new entries are taken, the ones in hand are finished
 * (an entry waiting for a retry goes back to the queue), owners are released, exit 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "tools/lbq/entry.h"
#include "tools/lbq/lbq.h"

struct worker {
    pthread_t tid;
    unsigned idx;
    const struct lbq_opts *o;
    char owner[128];
    char proc[LBQ_KEY_MAX + 128];
    redisContext *rc;
    int64_t last_log_ms; /* failures are logged at most once a second per thread */
    struct lbq_http http;
};

static struct {
    atomic_ullong delivered, failed, retried, dead, malformed, requeued;
} cnt;

static volatile sig_atomic_t stopping;
static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t rate_next_ns;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Sleeps @ms in slices; returns 1 when a stop came first. */
static int nap(int64_t ms)
{
    int64_t end = mono_ns() + ms * 1000000;
    while (!stopping) {
        int64_t left = end - mono_ns();
        if (left <= 0)
            return 0;
        sleep_ns(left < 50000000 ? left : 50000000);
    }
    return 1;
}

/* At most o->rate deliveries per second over all threads: each takes the next slot. */
static void rate_wait(const struct lbq_opts *o)
{
    if (o->rate <= 0)
        return;
    pthread_mutex_lock(&rate_lock);
    int64_t now = mono_ns(), t = rate_next_ns > now ? rate_next_ns : now;
    rate_next_ns = t + (int64_t)(1e9 / o->rate);
    pthread_mutex_unlock(&rate_lock);
    if (t > now)
        sleep_ns(t - now);
}

static void drop_redis(struct worker *w, const char *why)
{
    fprintf(stderr, "lbq: thread %u: %s; reconnecting\n", w->idx, why);
    if (w->rc)
        redisFree(w->rc);
    w->rc = NULL;
}

/* Connects, then takes back whatever this owner's list holds: entries this thread let go
 * of when its previous connection failed. */
static int ensure_redis(struct worker *w)
{
    struct lb_err err = {{0}};
    if (w->rc)
        return 0;
    if (!(w->rc = lbq_redis_connect(w->o, &err)))
        goto fail;
    long n = lbq_requeue(w->rc, w->o, w->owner, false, &err);
    if (n < 0)
        goto fail;
    if (n > 0)
        fprintf(stderr, "lbq: thread %u: put %ld entries back in the queue\n", w->idx, n);
    return 0;
fail:
    if (w->last_log_ms + 1000 <= lbq_now_ms()) {
        fprintf(stderr, "lbq: thread %u: %s\n", w->idx, err.msg);
        w->last_log_ms = lbq_now_ms();
    }
    if (w->rc)
        redisFree(w->rc);
    w->rc = NULL;
    return -EIO;
}

static int64_t backoff_ms(const struct lbq_opts *o, long long tries)
{
    int64_t ms = o->backoff_ms;
    for (long long i = 1; i < tries && ms < o->backoff_max_ms; i++)
        ms *= 2;
    return ms < o->backoff_max_ms ? ms : o->backoff_max_ms;
}

static void finish(struct worker *w, const char *raw, size_t len, const char *id,
                   enum lbq_fate fate)
{
    struct lb_err err = {{0}};
    if (lbq_finish(w->rc, w->o, w->proc, raw, len, id, fate, &err) < 0)
        drop_redis(w, err.msg); /* the entry stays in our list: requeued on reconnect */
}

static void log_failure(struct worker *w, const char *id, long long t, int st, const char *msg)
{
    if (w->last_log_ms + 1000 > lbq_now_ms())
        return;
    w->last_log_ms = lbq_now_ms();
    if (st > 0)
        fprintf(stderr, "lbq: %s: try %lld: HTTP %d\n", id, t, st);
    else
        fprintf(stderr, "lbq: %s: try %lld: %s\n", id, t, msg);
}

/* Delivers one decoded entry until it is done, dead or handed back. */
static void deliver(struct worker *w, const struct lbq_entry *e, const char *raw, size_t len)
{
    const struct lbq_opts *o = w->o;
    for (;;) {
        struct lb_err err = {{0}};
        long long t = lbq_count_try(w->rc, o, e->id, &err);
        if (t < 0) {
            drop_redis(w, err.msg);
            return;
        }
        rate_wait(o);
        int st = lbq_http_deliver(&w->http, e, (unsigned)t, &err);
        if (st >= 200 && st < 300) {
            finish(w, raw, len, e->id, LBQ_DONE);
            atomic_fetch_add(&cnt.delivered, 1);
            return;
        }
        atomic_fetch_add(&cnt.failed, 1);
        log_failure(w, e->id, t, st, err.msg);
        if (t >= o->max_tries) {
            fprintf(stderr, "lbq: %s: dead-lettered after %lld tries\n", e->id, t);
            finish(w, raw, len, e->id, LBQ_DEAD);
            atomic_fetch_add(&cnt.dead, 1);
            return;
        }
        atomic_fetch_add(&cnt.retried, 1);
        if (nap(backoff_ms(o, t))) {
            finish(w, raw, len, e->id, LBQ_BACK);
            atomic_fetch_add(&cnt.requeued, 1);
            return;
        }
    }
}

static void handle(struct worker *w, const char *raw, size_t len)
{
    struct lbq_entry e;
    struct lb_err err = {{0}};
    if (lbq_entry_parse(&e, raw, len, &err) < 0) {
        fprintf(stderr, "lbq: malformed entry (%zu bytes) moved to %s:dead: %s\n", len, w->o->queue,
                err.msg);
        finish(w, raw, len, NULL, LBQ_DEAD);
        atomic_fetch_add(&cnt.dead, 1);
        atomic_fetch_add(&cnt.malformed, 1);
        return;
    }
    deliver(w, &e, raw, len);
    lbq_entry_free(&e);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!stopping) {
        if (ensure_redis(w) < 0) {
            nap(500);
            continue;
        }
        struct lb_err err = {{0}};
        char *raw = NULL;
        size_t len = 0;
        int rc = lbq_take(w->rc, w->o, w->proc, 0.5, &raw, &len, &err);
        if (rc < 0) {
            drop_redis(w, err.msg);
            nap(500); /* a persistent error (a queue key of another type) must not spin */
        }
        if (rc > 0)
            handle(w, raw, len);
        free(raw);
    }
    lbq_http_close(&w->http);
    if (w->rc)
        redisFree(w->rc);
    w->rc = NULL;
    return NULL;
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void make_consumer_id(struct lbq_opts *o)
{
    char host[64] = "host";
    unsigned rnd = 0;
    gethostname(host, sizeof(host) - 1);
    host[40] = '\0';
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            *p = '_';
    if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
        rnd = (unsigned)mono_ns();
    snprintf(o->consumer, sizeof(o->consumer), "%s-%d-%06x", host, (int)getpid(), rnd & 0xffffff);
}

struct ctl {
    struct lbq_opts *o;
    struct worker *w;
    redisContext *rc;
    int64_t start_ns;
    unsigned long long last_delivered;
    int64_t last_ns;
    long long queue_len; /* -1: unknown */
};

static void ctl_report(struct ctl *c, bool final)
{
    int64_t now = mono_ns();
    unsigned long long d = atomic_load(&cnt.delivered);
    double secs = (double)(now - (final ? c->start_ns : c->last_ns)) / 1e9;
    double rate = secs > 0 ? (double)(d - (final ? 0 : c->last_delivered)) / secs : 0;
    c->last_ns = now;
    c->last_delivered = d;
    if (c->o->json) {
        printf("{\"queue\":");
        lbq_json_str(stdout, c->o->queue);
        printf(",\"consumer\":\"%s\",\"delivered\":%llu,\"failed\":%llu,"
               "\"retried\":%llu,\"dead\":%llu,\"malformed\":%llu,\"requeued\":%llu,"
               "\"rate\":%.1f,\"queue_length\":%lld,\"elapsed_s\":%.3f,\"final\":%s}\n",
               c->o->consumer, d, atomic_load(&cnt.failed), atomic_load(&cnt.retried),
               atomic_load(&cnt.dead), atomic_load(&cnt.malformed), atomic_load(&cnt.requeued),
               rate, c->queue_len, (double)(now - c->start_ns) / 1e9, final ? "true" : "false");
        fflush(stdout);
    }
    if (!final && isatty(STDERR_FILENO))
        fprintf(stderr,
                "\rdelivered %llu  failed %llu  retried %llu  dead %llu  %.0f/s  queue %lld\033[K",
                d, atomic_load(&cnt.failed), atomic_load(&cnt.retried), atomic_load(&cnt.dead),
                rate, c->queue_len);
    if (final && !c->o->json)
        fprintf(stderr,
                "%slbq: delivered %llu, failed attempts %llu, retried %llu, dead %llu "
                "(malformed %llu) in %.1fs, %.0f/s\n",
                isatty(STDERR_FILENO) ? "\n" : "", d, atomic_load(&cnt.failed),
                atomic_load(&cnt.retried), atomic_load(&cnt.dead), atomic_load(&cnt.malformed),
                (double)(now - c->start_ns) / 1e9, rate);
}

/* Heartbeats of every thread; reconnects the control context when needed. */
static int ctl_heartbeat(struct ctl *c)
{
    struct lb_err err = {{0}};
    if (!c->rc && !(c->rc = lbq_redis_connect(c->o, &err)))
        goto fail;
    for (unsigned i = 0; i < c->o->threads; i++)
        if (lbq_heartbeat(c->rc, c->o, c->w[i].owner, &err) < 0)
            goto fail;
    return 0;
fail:
    fprintf(stderr, "lbq: heartbeat: %s\n", err.msg);
    if (c->rc)
        redisFree(c->rc);
    c->rc = NULL;
    return -EIO;
}

static void ctl_tick(struct ctl *c, unsigned tick)
{
    struct lb_err err = {{0}};
    unsigned hb_every = c->o->hb_ttl * 10 / 3 ? c->o->hb_ttl * 10 / 3 : 1;
    if (tick % hb_every == 0)
        ctl_heartbeat(c);
    if (c->rc && tick % (c->o->hb_ttl * 10) == 0 && lbq_recover(c->rc, c->o, &err) < 0)
        fprintf(stderr, "lbq: recovery: %s\n", err.msg);
    if (tick % 10)
        return;
    redisReply *r =
        c->rc ? lbq_cmd(c->rc, REDIS_REPLY_INTEGER, &err, "LLEN %s", c->o->queue) : NULL;
    c->queue_len = r ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    ctl_report(c, false);
}

static int ctl_start(struct ctl *c)
{
    struct lb_err err = {{0}};
    if (!(c->rc = lbq_redis_connect(c->o, &err))) {
        fprintf(stderr, "lbq: %s\n", err.msg);
        return -EIO;
    }
    long n = lbq_recover(c->rc, c->o, &err);
    if (n < 0) {
        fprintf(stderr, "lbq: recovery: %s\n", err.msg);
        return -EIO;
    }
    for (unsigned i = 0; i < c->o->threads; i++) {
        struct worker *w = &c->w[i];
        w->idx = i;
        w->o = c->o;
        snprintf(w->owner, sizeof(w->owner), "%s.%u", c->o->consumer, i);
        snprintf(w->proc, sizeof(w->proc), "%s:processing:%s", c->o->queue, w->owner);
        lbq_http_init(&w->http, &c->o->url, c->o->timeout_ms);
    }
    return ctl_heartbeat(c);
}

int lbq_consume(struct lbq_opts *o)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    make_consumer_id(o);
    struct ctl c = {.o = o, .start_ns = mono_ns(), .queue_len = -1};
    c.last_ns = c.start_ns;
    c.w = calloc(o->threads, sizeof(*c.w));
    if (!c.w || ctl_start(&c) < 0) {
        free(c.w);
        if (c.rc)
            redisFree(c.rc);
        return 1;
    }
    fprintf(stderr, "lbq: consumer %s: %u threads from %s to http://%s%s\n", o->consumer,
            o->threads, o->queue, o->url.authority, o->url.path);
    /* Signals go to this thread only: the workers notice `stopping` between entries. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    unsigned started = 0;
    for (; started < o->threads; started++)
        if (pthread_create(&c.w[started].tid, NULL, worker_main, &c.w[started]) != 0) {
            fprintf(stderr, "lbq: cannot start thread %u\n", started);
            stopping = 1;
            break;
        }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (unsigned tick = 1; !stopping; tick++) {
        sleep_ns(100000000);
        ctl_tick(&c, tick);
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(c.w[i].tid, NULL);
    struct lb_err err = {{0}};
    for (unsigned i = 0; i < o->threads && (c.rc || !ctl_heartbeat(&c)); i++)
        if (lbq_release(c.rc, o, c.w[i].owner, &err) < 0)
            fprintf(stderr, "lbq: release %s: %s\n", c.w[i].owner, err.msg);
    ctl_report(&c, true);
    if (c.rc)
        redisFree(c.rc);
    free(c.w);
    return 0;
}
