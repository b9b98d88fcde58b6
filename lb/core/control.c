/*
 * The control loop (see control.h): the ring and its tag table, the connection helpers of the
 * admin and metrics sources, signals, reloads, and the generations that drain after them.
 *
 * One iteration: act on what the last completions asked for (stop, reload), reap generations
 * whose workers are done, tick every source (each arms what is due and says when it next
 * needs the loop), submit and wait once (until a completion or the earliest deadline, at most
 * LB_CTL_TICK_MS), then hand each completion to the source its tag names.
 */
#include <errno.h>
#include <liburing.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "lb/admin/admin.h"
#include "lb/core/control.h"
#include "lb/core/health.h"
#include "lb/core/log.h"
#include "lb/core/notify.h"
#include "lb/core/proxy.h"
#include "lb/core/runtime.h"
#include "lb/fleet/fleet.h"
#include "lb/tls/tls.h"

#define CTL_SQ_ENTRIES 256
#define CTL_CQ_ENTRIES 4096
#define CTL_EXIT_ROUNDS 50 /* at exit, at most 50 waits of CTL_EXIT_WAIT_MS for completions */
#define CTL_EXIT_WAIT_MS 20

enum { CTL_OP_SIGNAL = 1 };

struct ctl_source {
    const struct lb_ctl_ops *ops; /* NULL: the tag is free */
    void *arg;
    bool detached; /* cancelled: released once nothing is in flight */
};

struct lb_ctl {
    struct io_uring ring;
    bool ring_ok;
    struct ctl_source src[LB_CTL_MAX_TAGS]; /* by tag; [0] stays empty (LB_CTL_TAG_NONE) */

    int sigfd;
    int sig_tag;
    bool sig_armed;
    uint64_t sig_retry_ms; /* after a failed read of the signalfd */
    struct signalfd_siginfo si[4];

    bool reload;   /* SIGHUP read: reload before the next wait */
    int hup_pid;   /* who sent it */
    bool stopping; /* the running generation stops: wait for every worker to finish */

    struct lb_runtime *rt; /* the running generation */
    struct lb_runtime *draining[LB_CTL_MAX_DRAINING];
    size_t ndraining;
    struct admin *admin;    /* follows the running generation */
    struct fleet *fleet;    /* global.redis's shared drains and weights, or NULL */
    uint64_t fleet_view_ms; /* when this instance's view last went to the fleet */
};

uint64_t lb_ctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- sources and their tags ------------------------------------------------------------- */

int lb_ctl_attach(struct lb_ctl *ctl, const struct lb_ctl_ops *ops, void *arg)
{
    for (int t = 1; t < LB_CTL_MAX_TAGS; t++) {
        if (!ctl->src[t].ops) {
            ctl->src[t] = (struct ctl_source){.ops = ops, .arg = arg};
            return t;
        }
    }
    return -EBUSY;
}

static void release(struct lb_ctl *ctl, int tag)
{
    struct ctl_source s = ctl->src[tag];
    ctl->src[tag] = (struct ctl_source){0};
    if (s.ops->release)
        s.ops->release(s.arg);
}

void lb_ctl_detach(struct lb_ctl *ctl, int tag)
{
    if (tag <= LB_CTL_TAG_NONE || tag >= LB_CTL_MAX_TAGS)
        return;
    struct ctl_source *s = &ctl->src[tag];
    if (!s->ops || s->detached)
        return;
    s->detached = true;
    s->ops->cancel(s->arg);
    if (!s->ops->inflight(s->arg))
        release(ctl, tag);
}

struct io_uring *lb_ctl_ring(struct lb_ctl *ctl)
{
    return &ctl->ring;
}

struct io_uring_sqe *lb_ctl_sqe(struct lb_ctl *ctl)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ctl->ring);
    while (!sqe) {
        /* The SQ is full: hand it to the kernel to make room. */
        io_uring_submit(&ctl->ring);
        sqe = io_uring_get_sqe(&ctl->ring);
    }
    return sqe;
}

void lb_ctl_cancel(struct lb_ctl *ctl, uint64_t ud)
{
    struct io_uring_sqe *sqe = lb_ctl_sqe(ctl);
    io_uring_prep_cancel64(sqe, ud, 0);
    io_uring_sqe_set_data64(sqe, lb_ctl_ud(LB_CTL_TAG_NONE, 0, 0, 0));
}

/* Releases the detached sources that are done; ticks the others. Returns the next deadline. */
static uint64_t ctl_tick(struct lb_ctl *ctl, uint64_t now)
{
    uint64_t next = now + LB_CTL_TICK_MS;
    for (int t = 1; t < LB_CTL_MAX_TAGS; t++) {
        struct ctl_source *s = &ctl->src[t];
        if (!s->ops)
            continue;
        if (s->detached) {
            if (!s->ops->inflight(s->arg))
                release(ctl, t);
            continue;
        }
        if (s->ops->tick) {
            uint64_t w = s->ops->tick(s->arg, now);
            next = w < next ? w : next;
        }
    }
    return next;
}

/* The one submit of the iteration, and the wait: until a completion or @next. */
static void ctl_wait(struct lb_ctl *ctl, uint64_t now, uint64_t next)
{
    uint64_t ms = next > now ? next - now : 0;
    struct __kernel_timespec ts = {.tv_sec = (long long)(ms / 1000),
                                   .tv_nsec = (long long)(ms % 1000) * 1000000};
    struct io_uring_cqe *cqe;
    int rc = io_uring_submit_and_wait_timeout(&ctl->ring, &cqe, 1, &ts, NULL);
    /* -ETIME is the timer; -EBUSY a full CQ, emptied below. */
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
        lb_error("control loop: io_uring_enter failed", "err=\"%s\"", strerror(-rc));
}

/* Hands each completion to the source its tag names; others (tag 0: cancellations) drop. */
static void ctl_dispatch(struct lb_ctl *ctl)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&ctl->ring, head, cqe)
    {
        unsigned tag = (unsigned)(cqe->user_data >> 56);
        const struct ctl_source *s = tag < LB_CTL_MAX_TAGS ? &ctl->src[tag] : NULL;
        if (s && s->ops)
            s->ops->cqe(s->arg, cqe);
        n++;
    }
    io_uring_cq_advance(&ctl->ring, n);
}

/* ---- connections ------------------------------------------------------------------------ */

void lb_ctl_conn_init(struct lb_ctl_conn *c, int tag, uint32_t slot)
{
    *c = (struct lb_ctl_conn){.fd = -1, .tag = tag, .slot = slot};
}

void lb_ctl_conn_open(struct lb_ctl_conn *c, int fd)
{
    c->fd = fd;
    c->gen++;
    c->op = LB_CTL_OP_NONE;
    c->closing = false;
}

bool lb_ctl_conn_idle(const struct lb_ctl_conn *c)
{
    return c->fd < 0 && c->op == LB_CTL_OP_NONE;
}

static uint64_t conn_ud(const struct lb_ctl_conn *c, unsigned op)
{
    return lb_ctl_ud(c->tag, op, c->gen, c->slot);
}

void lb_ctl_conn_recv(struct lb_ctl *ctl, struct lb_ctl_conn *c, void *buf, size_t len)
{
    struct io_uring_sqe *sqe = lb_ctl_sqe(ctl);
    io_uring_prep_recv(sqe, c->fd, buf, len, 0);
    io_uring_sqe_set_data64(sqe, conn_ud(c, LB_CTL_OP_RECV));
    c->op = LB_CTL_OP_RECV;
}

void lb_ctl_conn_send(struct lb_ctl *ctl, struct lb_ctl_conn *c, const char *p, size_t len,
                      const size_t *off)
{
    struct io_uring_sqe *sqe = lb_ctl_sqe(ctl);
    io_uring_prep_send(sqe, c->fd, p + *off, len - *off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, conn_ud(c, LB_CTL_OP_SEND));
    c->op = LB_CTL_OP_SEND;
}

int lb_ctl_conn_sent(struct lb_ctl *ctl, struct lb_ctl_conn *c, const char *p, size_t len,
                     size_t *off, int res)
{
    if (res <= 0)
        return res < 0 ? res : -EPIPE;
    *off += (size_t)res;
    if (*off < len) {
        lb_ctl_conn_send(ctl, c, p, len, off); /* short: the rest */
        return 0;
    }
    return 1;
}

unsigned lb_ctl_conn_complete(struct lb_ctl_conn *c, const struct io_uring_cqe *cqe)
{
    unsigned op = lb_ctl_ud_op(cqe->user_data);
    uint32_t gen = (uint32_t)(cqe->user_data >> 32) & 0xffff;
    if (op == LB_CTL_OP_NONE || op != c->op || gen != c->gen)
        return LB_CTL_OP_NONE;
    c->op = LB_CTL_OP_NONE;
    if (c->closing) {
        close(c->fd);
        c->fd = -1;
        c->closing = false;
        return LB_CTL_OP_NONE;
    }
    return op;
}

void lb_ctl_conn_close(struct lb_ctl *ctl, struct lb_ctl_conn *c)
{
    if (c->fd < 0 || c->closing)
        return;
    if (c->op != LB_CTL_OP_NONE) {
        /* By user_data: the fd stays open (and its number ours) until the completion. */
        lb_ctl_cancel(ctl, conn_ud(c, c->op));
        c->closing = true;
        return;
    }
    close(c->fd);
    c->fd = -1;
}

/* ---- signals ---------------------------------------------------------------------------- */

static void sig_arm(struct lb_ctl *ctl)
{
    struct io_uring_sqe *sqe = lb_ctl_sqe(ctl);
    io_uring_prep_read(sqe, ctl->sigfd, ctl->si, sizeof(ctl->si), 0);
    io_uring_sqe_set_data64(sqe, lb_ctl_ud(ctl->sig_tag, CTL_OP_SIGNAL, 0, 0));
    ctl->sig_armed = true;
}

static void on_signal(struct lb_ctl *ctl, const struct signalfd_siginfo *si)
{
    /* Once stopping, signals are not acted on (a second SIGTERM does not cut the drain). */
    if (ctl->stopping || !ctl->rt)
        return;
    if (si->ssi_signo == SIGTERM || si->ssi_signo == SIGINT) {
        lb_info("signal received: stopping", "signal=%s",
                si->ssi_signo == SIGTERM ? "TERM" : "INT");
        atomic_store(&ctl->rt->stop, 1);
    } else if (si->ssi_signo == SIGHUP) {
        ctl->reload = true; /* between iterations: it reads files and builds a generation */
        ctl->hup_pid = (int)si->ssi_pid;
    } else if (si->ssi_signo == SIGUSR1) {
        /* Log rotation: the files are reopened by path; workers write on, unaware. */
        lb_log_reopen();
        lb_proxy_reopen_logs(ctl->rt);
        for (size_t i = 0; i < ctl->ndraining; i++)
            lb_proxy_reopen_logs(ctl->draining[i]);
        lb_info("SIGUSR1: logs reopened", "");
    }
}

static void sig_cqe(void *arg, const struct io_uring_cqe *cqe)
{
    struct lb_ctl *ctl = arg;
    ctl->sig_armed = false;
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED && cqe->res != -EINTR && cqe->res != -EAGAIN) {
            lb_error("cannot read signals; trying again", "err=\"%s\"", strerror(-cqe->res));
            ctl->sig_retry_ms = lb_ctl_now_ms() + LB_CTL_TICK_MS;
        }
        return;
    }
    for (size_t i = 0; i < (size_t)cqe->res / sizeof(ctl->si[0]); i++)
        on_signal(ctl, &ctl->si[i]);
}

static uint64_t sig_tick(void *arg, uint64_t now)
{
    struct lb_ctl *ctl = arg;
    /* Session ticket keys rotate on this thread too (every 12 h; reloads rotate them). */
    uint64_t rotate = tls_keys_tick(now);
    if (ctl->sig_armed)
        return rotate;
    if (now < ctl->sig_retry_ms)
        return ctl->sig_retry_ms < rotate ? ctl->sig_retry_ms : rotate;
    sig_arm(ctl);
    return rotate;
}

static void sig_cancel(void *arg)
{
    struct lb_ctl *ctl = arg;
    if (ctl->sig_armed)
        lb_ctl_cancel(ctl, lb_ctl_ud(ctl->sig_tag, CTL_OP_SIGNAL, 0, 0));
}

static unsigned sig_inflight(const void *arg)
{
    const struct lb_ctl *ctl = arg;
    return ctl->sig_armed;
}

static const struct lb_ctl_ops sig_ops = {
    .name = "signals",
    .cqe = sig_cqe,
    .tick = sig_tick,
    .cancel = sig_cancel,
    .inflight = sig_inflight,
};

/* ---- generations ------------------------------------------------------------------------ */

/* Loads the config file again; NULL (logged) when it has errors. */
static struct conf *reload_conf(const char *file)
{
    struct conf_diags *d = calloc(1, sizeof(*d));
    if (!d) {
        lb_error("reload failed: out of memory; the running configuration stays", "");
        return NULL;
    }
    struct conf *c = conf_load(file, d);
    if (!c) {
        lb_error("reload failed: the configuration has errors; the running one stays",
                 "config=%s errors=%zu", file, d->n + d->dropped);
        conf_diags_print(d, file, stderr);
    }
    free(d);
    return c;
}

/* ---- the fleet ---- */

/* This instance's servers, for its heartbeat: "CLUSTER SERVER STATE ACTIVE" lines. */
static void fleet_view(struct lb_ctl *ctl)
{
    struct lb_runtime *rt = ctl->rt;
    size_t cap = 256, len = 0;
    char *text = malloc(cap);
    for (size_t ci = 0; text && ci < rt->conf->nclusters; ci++) {
        const struct cl_cluster *cl = &rt->clusters[ci];
        if ((int)ci == rt->conf->redis_cluster ||
            !strncmp(rt->conf->clusters[ci].name, CONF_CACHE_CLUSTER_PREFIX,
                     strlen(CONF_CACHE_CLUSTER_PREFIX)))
            continue; /* lb's own: not a name another instance could drain */
        for (uint32_t si = 0; si < cl->n; si++) {
            if (cap - len < 3 * CONF_NAME_MAX) {
                char *n = realloc(text, cap *= 2);
                if (!n)
                    break;
                text = n;
            }
            len += (size_t)snprintf(text + len, cap - len, "%s %s %s %u\n", cl->cf->name,
                                    cl->servers[si].cf->name, cl_server_state(&cl->servers[si]),
                                    atomic_load(&cl->servers[si].active));
        }
    }
    if (text)
        fleet_set_view(ctl->fleet, text, len);
    free(text);
}

/* Applies what other instances changed; sends this one's view once a second. */
static void ctl_fleet(struct lb_ctl *ctl, uint64_t now)
{
    if (!ctl->fleet)
        return;
    struct fleet_change ch[64];
    size_t n;
    while ((n = fleet_take(ctl->fleet, ch, 64)) > 0)
        for (size_t i = 0; i < n; i++)
            if (ctl->admin && admin_apply_change(ctl->admin, &ch[i]))
                fleet_applied(ctl->fleet, &ch[i]);
    fleet_inval_apply(ctl->rt ? ctl->rt->cache_board : NULL);
    if (now - ctl->fleet_view_ms >= 1000) {
        ctl->fleet_view_ms = now;
        fleet_view(ctl);
    }
}

/* A reload that changes global.redis starts the fleet again with the new one. */
static void ctl_fleet_reload(struct lb_ctl *ctl, const struct conf *c)
{
    if (fleet_same_conf(ctl->fleet, c) || (!ctl->fleet && !c->global.nredis_nodes))
        return;
    fleet_stop(ctl->fleet);
    struct lb_err err = {{0}};
    ctl->fleet = fleet_start(c, &err);
    if (!ctl->fleet && c->global.nredis_nodes)
        lb_error("reload: the fleet did not start: drains apply here only", "err=\"%s\"", err.msg);
    ctl->fleet_view_ms = 0;
}

/*
 * SIGHUP (lbctl reload raises it): a new generation from the file, built and checked whole
 * before anything changes. On any error the running generation stays and the reason is
 * logged. Otherwise the new one starts (on the same listening sockets where addresses did
 * not change), then the old one stops accepting and finishes its connections, bounded by
 * global.shutdown_timeout; ctl_reap() destroys it once its workers are gone.
 */
static void ctl_reload(struct lb_ctl *ctl)
{
    struct lb_runtime *cur = ctl->rt;
    const char *file = cur->file;
    lb_info("SIGHUP: reloading", "config=%s from_pid=%d", file, ctl->hup_pid);
    struct conf *c = reload_conf(file);
    if (!c)
        return;
    if (ctl->ndraining >= LB_CTL_MAX_DRAINING) {
        lb_error("reload refused: too many generations still draining", "draining=%zu",
                 ctl->ndraining);
        conf_free(c);
        return;
    }
    struct lb_err err = {{0}};
    struct lb_runtime *rt = lb_proxy_build(c, file, cur, cur, &err);
    if (!rt) {
        lb_error("reload failed; the running configuration stays", "err=\"%s\"", err.msg);
        return;
    }
    /* New ticket key; tickets of the previous one still resume (and are renewed). */
    if (tls_keys_rotate() < 0)
        lb_warn("reload: session ticket keys not rotated (no randomness)", "");
    /* The admin socket follows the new generation (its state file re-applies drains). */
    admin_stop(ctl->admin);
    ctl->admin = admin_start(rt, ctl, &err);
    if (!ctl->admin)
        lb_error("admin socket not restarted after reload", "err=\"%s\"", err.msg);
    /* The old probes stop first: only the new generation may change server state now. The
     * old checker stays until the old workers are gone: they still report to it. */
    lb_health_stop(cur, ctl);
    ctl->rt = rt;
    ctl_fleet_reload(ctl, rt->conf);
    ctl->draining[ctl->ndraining++] = cur;
    if (lb_proxy_start(rt, ctl, &err) < 0) {
        lb_error("reload: the new generation failed to start; stopping", "err=\"%s\"", err.msg);
        atomic_store(&cur->stop, 2);
        return;
    }
    atomic_store(&cur->stop, 1);
    lb_info("reloaded: the previous generation drains", "draining=%zu", ctl->ndraining);
}

/* Destroys the draining generations whose workers are gone and whose probes are drained. */
static void ctl_reap(struct lb_ctl *ctl)
{
    for (size_t i = 0; i < ctl->ndraining;) {
        struct lb_runtime *g = ctl->draining[i];
        if (g->hc_tag != LB_CTL_TAG_NONE || !lb_proxy_reap(g)) {
            i++;
            continue;
        }
        if (!ctl->stopping)
            lb_info("previous generation finished draining", "");
        lb_proxy_destroy(g);
        ctl->draining[i] = ctl->draining[--ctl->ndraining];
    }
}

/* The running generation stops (signal, or a failed start): so do the draining ones. */
static void ctl_stop(struct lb_ctl *ctl)
{
    ctl->stopping = true;
    lb_notify_stopping();
    for (size_t i = 0; i < ctl->ndraining; i++) {
        int zero = 0;
        atomic_compare_exchange_strong(&ctl->draining[i]->stop, &zero, 1);
    }
}

int lb_ctl_run(struct lb_ctl *ctl)
{
    for (;;) {
        if (!ctl->stopping && atomic_load(&ctl->rt->stop))
            ctl_stop(ctl);
        if (ctl->reload && !ctl->stopping) {
            ctl->reload = false;
            lb_notify_reloading();
            ctl_reload(ctl);
            lb_notify_ready(ctl->rt); /* the new generation, or the one that stayed */
        }
        ctl_reap(ctl);
        /* Stopping: the admin socket, metrics and probes serve until the last worker ends. */
        if (ctl->stopping && !ctl->ndraining && lb_proxy_reap(ctl->rt))
            break;
        uint64_t now = lb_ctl_now_ms();
        ctl_fleet(ctl, now);
        uint64_t next = ctl_tick(ctl, now);
        /* Changes from other instances are taken at least this often. */
        next = ctl->fleet && next > now + 100 ? now + 100 : next;
        uint64_t due = lb_notify_tick(ctl->rt, now); /* watchdog pings, STATUS= */
        ctl_wait(ctl, now, due < next ? due : next);
        ctl_dispatch(ctl);
    }
    int rc = atomic_load(&ctl->rt->stop) == 1 ? 0 : 1;
    lb_info("lb stopped", "exit=%d", rc);
    return rc;
}

struct lb_ctl *lb_ctl_new(struct lb_runtime *rt, struct lb_err *err)
{
    struct lb_ctl *ctl = calloc(1, sizeof(*ctl));
    if (!ctl) {
        lb_err_set(err, "control loop: out of memory");
        return NULL;
    }
    ctl->sigfd = -1;
    /* The flags the startup probe found to work, and room for many completions at once. */
    struct io_uring_params p = {.flags = rt->ring_flags | IORING_SETUP_CQSIZE,
                                .cq_entries = CTL_CQ_ENTRIES};
    int rc = io_uring_queue_init_params(CTL_SQ_ENTRIES, &ctl->ring, &p);
    if (rc < 0) {
        lb_err_set(err, "control loop: io_uring_queue_init: %s", strerror(-rc));
        goto fail;
    }
    ctl->ring_ok = true;

    /* Blocked in every thread by lb_proxy_run. The signalfd stays blocking: io_uring gives
     * -EAGAIN for a non-blocking file that cannot be read without waiting (signalfd before
     * Linux 6.8) rather than waiting for it, while a blocking one is polled, then read. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    ctl->sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (ctl->sigfd < 0) {
        lb_err_set(err, "control loop: signalfd: %s", strerror(errno));
        goto fail;
    }
    ctl->sig_tag = lb_ctl_attach(ctl, &sig_ops, ctl);

    ctl->admin = admin_start(rt, ctl, err);
    if (!ctl->admin)
        goto fail;
    ctl->rt = rt;
    /* The fleet's drains hold from the first connection: read them before the workers
     * start (bounded: an unreachable Redis is found within a few timeouts). */
    struct lb_err ferr = {{0}};
    ctl->fleet = fleet_start(rt->conf, &ferr);
    if (!ctl->fleet && rt->conf->global.nredis_nodes)
        lb_error("the fleet did not start: drains apply here only", "err=\"%s\"", ferr.msg);
    if (ctl->fleet) {
        fleet_wait_first_read(ctl->fleet, 1000 + 4 * rt->conf->global.redis_timeout_ms *
                                                     (rt->conf->global.nredis_nodes + 1));
        ctl_fleet(ctl, lb_ctl_now_ms());
    }
    return ctl;
fail:
    lb_ctl_free(ctl);
    return NULL;
}

static bool ctl_busy(const struct lb_ctl *ctl)
{
    for (int t = 1; t < LB_CTL_MAX_TAGS; t++)
        if (ctl->src[t].ops)
            return true;
    return false;
}

void lb_ctl_free(struct lb_ctl *ctl)
{
    if (!ctl)
        return;
    ctl->stopping = true;
    fleet_stop(ctl->fleet);
    ctl->fleet = NULL;
    admin_stop(ctl->admin);
    ctl->admin = NULL;
    if (ctl->rt)
        lb_health_stop(ctl->rt, ctl);
    lb_ctl_detach(ctl, ctl->sig_tag);
    /* Cancelled operations complete at once; the bound is for a kernel that disagrees. */
    for (int round = 0; ctl->ring_ok && round < CTL_EXIT_ROUNDS; round++) {
        uint64_t now = lb_ctl_now_ms();
        ctl_tick(ctl, now);
        if (!ctl_busy(ctl))
            break;
        ctl_wait(ctl, now, now + CTL_EXIT_WAIT_MS);
        ctl_dispatch(ctl);
    }
    if (ctl->ring_ok)
        io_uring_queue_exit(&ctl->ring);
    for (size_t i = 0; i < ctl->ndraining; i++)
        lb_proxy_destroy(ctl->draining[i]);
    if (ctl->rt)
        lb_proxy_destroy(ctl->rt);
    if (ctl->sigfd >= 0)
        close(ctl->sigfd);
    free(ctl);
}
