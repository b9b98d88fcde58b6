/*
 * The running proxy: checks that io_uring can do what lb needs (and says exactly why not
 * when it cannot), builds a generation (struct lb_runtime) from the config, opens one
 * SO_REUSEPORT socket per worker and listener, starts and reaps the workers. The main thread
 * becomes the control thread (lb/core/control.c), which reloads through the same functions.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "health/hc.h"
#include "lb/cache/purge.h"
#include "lb/core/control.h"
#include "lb/core/health.h"
#include "lb/core/limits.h"
#include "lb/core/log.h"
#include "lb/core/notify.h"
#include "lb/tls/tls.h"
#include "lb/core/proxy.h"
#include "lb/core/runtime.h"
#include "lb/core/snapshots.h"
#include "lb/io/worker.h"

#ifndef SO_PEERNAME
#define SO_PEERNAME 28
#endif

static void uring_unavailable(int rc)
{
    fprintf(stderr, "lb: io_uring is not available: io_uring_setup failed: %s\n", strerror(-rc));
    if (rc == -ENOSYS)
        fprintf(stderr, "lb: this kernel has no io_uring (older than 5.1 or built without "
                        "CONFIG_IO_URING); lb needs Linux 6.0 or later\n");
    else if (rc == -EPERM || rc == -EACCES)
        fprintf(stderr,
                "lb: io_uring is blocked: by the sysctl kernel.io_uring_disabled (check: "
                "sysctl kernel.io_uring_disabled; 0 allows it, 1 only for the group in "
                "kernel.io_uring_group, 2 for nobody), or by a seccomp filter of the "
                "container runtime (check: grep Seccomp /proc/self/status; Docker needs "
                "a profile that allows io_uring_setup, io_uring_enter, io_uring_register)\n");
    else if (rc == -ENOMEM)
        fprintf(stderr, "lb: the kernel refused memory for the ring (check ulimit -l)\n");
}

/* Creates and destroys a ring with the flags workers will use; learns what works. */
static int probe_uring(struct lb_runtime *rt)
{
    struct io_uring ring;
    unsigned flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init(8, &ring, flags);
    if (rc == -EINVAL) {
        /* Kernels before 6.1 lack DEFER_TASKRUN; COOP_TASKRUN is the next best. */
        flags = IORING_SETUP_COOP_TASKRUN;
        rc = io_uring_queue_init(8, &ring, flags);
    }
    if (rc < 0) {
        uring_unavailable(rc);
        return rc;
    }
    rt->ring_flags = flags;

    static const struct {
        int op;
        const char *name;
    } need[] = {
        {IORING_OP_ACCEPT, "accept"},   {IORING_OP_RECV, "recv"},
        {IORING_OP_SEND, "send"},       {IORING_OP_CONNECT, "connect"},
        {IORING_OP_SOCKET, "socket"},   {IORING_OP_SHUTDOWN, "shutdown"},
        {IORING_OP_CLOSE, "close"},     {IORING_OP_ASYNC_CANCEL, "cancel"},
        {IORING_OP_LINK_TIMEOUT, "link_timeout"},
    };
    struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
    for (size_t i = 0; p && i < sizeof(need) / sizeof(need[0]); i++) {
        if (!io_uring_opcode_supported(p, need[i].op)) {
            fprintf(stderr, "lb: this kernel's io_uring lacks the %s operation; lb needs "
                            "Linux 6.0 or later (uname -r)\n", need[i].name);
            rc = -EOPNOTSUPP;
        }
    }
    /* Multishot accept and recv, and provided buffer rings, arrived in 5.19 and 6.0 and
     * cannot be probed by opcode: check the version. */
    struct utsname u;
    int major = 0, minor = 0;
    if (uname(&u) == 0 && sscanf(u.release, "%d.%d", &major, &minor) == 2 && major < 6) {
        fprintf(stderr, "lb: kernel %s is too old: lb needs Linux 6.0 or later for "
                        "multishot accept/recv and buffer rings\n", u.release);
        rc = -EOPNOTSUPP;
    }

    /* SO_PEERNAME through uring_cmd (6.7+) gives the client address of a socket that lives
     * only in the fixed-file table. Try it on a real connected pair. */
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int cs = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (ls >= 0 && cs >= 0 && bind(ls, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        listen(ls, 1) == 0 && getsockname(ls, (struct sockaddr *)&a, &al) == 0 &&
        connect(cs, (struct sockaddr *)&a, sizeof(a)) == 0) {
        struct sockaddr_in peer = {0};
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_rw(IORING_OP_URING_CMD, sqe, cs, NULL, 0, 0);
        sqe->cmd_op = 2; /* SOCKET_URING_OP_GETSOCKOPT */
        sqe->addr = (uint64_t)SOL_SOCKET | (uint64_t)SO_PEERNAME << 32;
        sqe->addr3 = (uint64_t)(uintptr_t)&peer;
        sqe->file_index = sizeof(peer);
        struct io_uring_cqe *cqe;
        if (io_uring_submit_and_wait(&ring, 1) >= 0 && io_uring_peek_cqe(&ring, &cqe) == 0) {
            rt->has_peername = cqe->res > 0 && peer.sin_family == AF_INET;
            io_uring_cqe_seen(&ring, cqe);
        }
    }
    if (ls >= 0)
        close(ls);
    if (cs >= 0)
        close(cs);
    if (p)
        io_uring_free_probe(p);
    io_uring_queue_exit(&ring);
    return rc;
}

static int open_listener(const struct conf_listener *l)
{
    int fd = socket(l->bind.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* TCP_NODELAY is inherited by accepted sockets, which exist only in the fixed-file
     * table and so cannot be given socket options one by one. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &(int){1}, sizeof(int)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)) < 0 ||
        bind(fd, (const struct sockaddr *)&l->bind.ss, l->bind.len) < 0 ||
        listen(fd, 4096) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* Fixed-file tables count against RLIMIT_NOFILE (each register call is checked against
 * it), so lift the limit as far as allowed; returns the soft limit in force. */
static uint64_t raise_nofile(uint64_t want)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) < 0)
        return 1024;
    if (r.rlim_cur >= want)
        return r.rlim_cur;
    struct rlimit nr = {.rlim_cur = want, .rlim_max = want > r.rlim_max ? want : r.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &nr) == 0) /* root may raise the hard limit too */
        return want;
    r.rlim_cur = r.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &r) == 0)
        return r.rlim_max;
    getrlimit(RLIMIT_NOFILE, &r);
    return r.rlim_cur;
}

static void runtime_free(struct lb_runtime *rt)
{
    /* First: the checker's callbacks write into the clusters freed below. */
    lb_health_free(rt);
    if (rt->workers)
        for (uint32_t i = 0; i < rt->nworkers_built; i++)
            io_worker_destroy(&rt->workers[i]);
    tls_gen_free(rt->tls);
    rt->tls = NULL;
    free(rt->threads);
    free(rt->workers);
    if (rt->listen_fds) {
        for (uint32_t i = 0; i < rt->nworkers; i++) {
            for (size_t j = 0; rt->listen_fds[i] && j < rt->conf->nlisteners; j++)
                if (rt->listen_fds[i][j] >= 0)
                    close(rt->listen_fds[i][j]);
            free(rt->listen_fds[i]);
        }
        free(rt->listen_fds);
    }
    if (rt->clusters)
        for (size_t i = 0; i < rt->nclusters_built; i++)
            cl_cluster_destroy(&rt->clusters[i]);
    free(rt->clusters);
    free(rt->lstats);
    free(rt->l2stats);
    for (size_t i = 0; rt->limits && i < rt->conf->nlisteners; i++)
        lb_limits_free(rt->limits[i]);
    free(rt->limits);
    if (rt->access_fd > STDERR_FILENO)
        close(rt->access_fd);
    for (size_t i = 0; i < rt->nsnap_slots; i++)
        snap_slot_destroy(&rt->snap_slots[i]);
    free(rt->snap_slots);
    cache_board_free(rt->cache_board); /* after the workers, which tick on it */
    rt->cache_board = NULL;
    conf_free(rt->conf);
}

/* Listening socket of @prev's worker @wi for an address like @l's, or -1. */
static int prev_listen_fd(const struct lb_runtime *prev, uint32_t wi, const struct conf_listener *l)
{
    if (!prev || wi >= prev->nworkers || !prev->workers)
        return -1;
    const struct io_worker *pw = &prev->workers[wi];
    for (uint32_t j = 0; j < pw->nls; j++) {
        const struct conf_listener *o = pw->ls[j].cf;
        if (pw->ls[j].fd >= 0 && o->bind.len == l->bind.len &&
            !memcmp(&o->bind.ss, &l->bind.ss, l->bind.len))
            return pw->ls[j].fd;
    }
    return -1;
}

/* Carries what the running generation knows of a server into the new one, for servers whose
 * cluster, name and address did not change: health and drain state, operator weight,
 * counters. Ejections are not carried: passive detection starts over. */
static void carry_state(struct lb_runtime *rt, const struct lb_runtime *prev)
{
    for (size_t ci = 0; ci < rt->conf->nclusters; ci++) {
        const char *cname = rt->conf->clusters[ci].name;
        int pci = conf_cluster_find(prev->conf, cname);
        if (pci < 0)
            continue;
        struct cl_cluster *pc = &prev->clusters[pci];
        struct cl_cluster *nc = &rt->clusters[ci];
        bool reweigh = false;
        for (uint32_t si = 0; si < nc->n; si++) {
            struct cl_server *ns = &nc->servers[si];
            for (uint32_t k = 0; k < pc->n; k++) {
                struct cl_server *ps = &pc->servers[k];
                if (strcmp(ps->cf->name, ns->cf->name) || strcmp(ps->cf->addr.text, ns->cf->addr.text))
                    continue;
                cl_server_carry(ns, ps);
                if (atomic_load(&ns->op_weight))
                    reweigh = true;
                if ((atomic_load(&ns->flags) & CL_SRV_F_DOWN) &&
                    !hc_seed_down(rt->hc, (uint32_t)ci, si))
                    atomic_fetch_and(&ns->flags, ~(uint32_t)CL_SRV_F_DOWN);
                break;
            }
        }
        /* Operator weights carried into a hash cluster: its tables must hold them. */
        if (reweigh)
            cl_cluster_reweigh(nc, NULL);
    }
}

static int nomem(struct lb_err *err)
{
    lb_err_set(err, "out of memory");
    return -ENOMEM;
}

/* Certificates and keys: read and checked for this generation; the first error is the
 * reason the generation is refused (a reload keeps the running one). */
static int build_tls(struct lb_runtime *rt, const char *file, struct lb_err *err)
{
    struct conf_diags *errs = calloc(1, sizeof(*errs)), *warns = calloc(1, sizeof(*warns));
    int rc = 0;
    if (!errs || !warns) {
        rc = nomem(err);
    } else if (!(rt->tls = tls_gen_build(rt->conf, errs, warns))) {
        const struct conf_diag *e = &errs->items[0];
        lb_err_set(err, "%s:%u:%u: %s", file, e->pos.line, e->pos.col, e->msg);
        rc = -EINVAL;
    } else {
        for (size_t i = 0; i < warns->n; i++)
            lb_warn("tls", "at=%s:%u:%u msg=\"%s\"", file, warns->items[i].pos.line,
                    warns->items[i].pos.col, warns->items[i].msg);
    }
    free(errs);
    free(warns);
    return rc;
}

static int open_access_log(struct lb_runtime *rt, struct lb_err *err)
{
    const struct conf *c = rt->conf;
    if (c->global.access == CONF_ACCESS_STDERR) {
        rt->access_fd = STDERR_FILENO;
    } else if (c->global.access == CONF_ACCESS_FILE) {
        rt->access_fd = open(c->global.access_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (rt->access_fd < 0) {
            lb_err_set(err, "cannot open the access log %s: %s", c->global.access_file,
                       strerror(errno));
            return -errno;
        }
    }
    return 0;
}

int lb_proxy_reopen_logs(struct lb_runtime *rt)
{
    const struct conf_global *g = &rt->conf->global;
    if (g->access != CONF_ACCESS_FILE || rt->access_fd < 0)
        return 0;
    int rc = lb_log_reopen_fd(rt->access_fd, g->access_file);
    if (rc < 0)
        lb_error("cannot reopen the access log; still writing to the old file",
                 "path=%s err=\"%s\"", g->access_file, strerror(-rc));
    return rc;
}

/* Workers, connections per worker and the fixed-file table each worker's ring gets. */
static void size_workers(struct lb_runtime *rt, bool first)
{
    const struct conf *c = rt->conf;
    rt->nworkers = c->global.workers;
    if (!rt->nworkers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        rt->nworkers = n > 0 ? (uint32_t)n : 1;
    }
    rt->conns_per_worker = c->global.max_connections / rt->nworkers;
    if (rt->conns_per_worker < 64)
        rt->conns_per_worker = 64;
    /* Two table entries per slot when the limit allows (an L4 connection holds two
     * sockets). The kernel checks each ring's table against RLIMIT_NOFILE on its own. */
    uint64_t want = (uint64_t)rt->conns_per_worker * 2;
    uint64_t nofile = raise_nofile(want + 1024);
    uint64_t fit = nofile > 1024 + 128 ? nofile - 1024 : 128;
    rt->files_per_worker = (uint32_t)(want < fit ? want : fit);
    if (want > fit && first)
        lb_warn("open file limit below two sockets per connection: the fixed-file table is "
                "smaller; accepts pause when it is full", "nofile=%lu files_per_worker=%u "
                "max_connections=%u hint=\"raise ulimit -n (hard limit)\"",
                (unsigned long)nofile, rt->files_per_worker,
                rt->conns_per_worker * rt->nworkers);
}

/* Snapshot sets: loaded whole before anything listens, so a broken directory stops the start
 * (or the reload) with the file named, not a worker at its first request. */
static int load_snapshots(struct lb_runtime *rt, struct lb_err *err)
{
    const struct conf *c = rt->conf;
    rt->snap_slots = calloc(c->nstatics ? c->nstatics : 1, sizeof(*rt->snap_slots));
    if (!rt->snap_slots)
        return nomem(err);
    for (size_t i = 0; i < c->nstatics; i++) {
        snap_slot_init(&rt->snap_slots[i]);
        rt->nsnap_slots = i + 1;
        struct snap_set *set = NULL;
        struct lb_err e = {{0}};
        if (snap_set_load(&c->statics[i], &set, &e) < 0) {
            lb_err_set(err, "%s:%u:%u: %s", rt->file, c->statics[i].pos.line,
                       c->statics[i].pos.col, e.msg);
            return -EINVAL;
        }
        struct snap_stats st;
        snap_set_stats(set, &st);
        lb_info("snapshots loaded", "set=%s files=%lu bytes=%lu memory=%lu", c->statics[i].name,
                (unsigned long)st.files, (unsigned long)st.body_bytes,
                (unsigned long)st.memory_bytes);
        snap_slot_publish(&rt->snap_slots[i], set);
    }
    return 0;
}

static int build_clusters(struct lb_runtime *rt, struct lb_err *err)
{
    const struct conf *c = rt->conf;
    rt->clusters = calloc(c->nclusters ? c->nclusters : 1, sizeof(*rt->clusters));
    if (!rt->clusters)
        return nomem(err);
    for (size_t i = 0; i < c->nclusters; i++) {
        struct lb_err e = {{0}};
        if (cl_cluster_init(&rt->clusters[i], &c->clusters[i], &e) < 0) {
            lb_err_set(err, "%s: %s", rt->file, e.msg);
            return -EINVAL;
        }
        rt->nclusters_built = i + 1;
        if (cl_cluster_stats_init(&rt->clusters[i], (uint32_t)c->nlisteners) < 0)
            return nomem(err);
    }
    rt->lstats = calloc(c->nlisteners ? c->nlisteners : 1, sizeof(*rt->lstats));
    rt->limits = calloc(c->nlisteners ? c->nlisteners : 1, sizeof(*rt->limits));
    rt->l2stats = calloc(c->ncaches ? c->ncaches : 1, sizeof(*rt->l2stats));
    if (!rt->lstats || !rt->limits || !rt->l2stats)
        return nomem(err);
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        if ((l->per_ip_connections || l->per_ip_rate) &&
            !(rt->limits[i] = lb_limits_new(l->per_ip_connections, l->per_ip_rate)))
            return nomem(err);
        if (rt->limits[i] && !rt->has_peername)
            lb_warn("per-address limits are not enforced: lb cannot learn client addresses "
                    "on this kernel (SO_PEERNAME through io_uring needs Linux 6.7)",
                    "listener=%s", l->name);
    }
    return 0;
}

/* One listening socket per worker and listener: @prev's own socket (a dup of it) for an
 * address it already has, so that connections waiting in its queue are accepted by
 * whichever generation asks first and none is refused. */
static int open_listeners(struct lb_runtime *rt, const struct lb_runtime *prev,
                          struct lb_err *err)
{
    const struct conf *c = rt->conf;
    rt->listen_fds = calloc(rt->nworkers, sizeof(*rt->listen_fds));
    if (!rt->listen_fds)
        return nomem(err);
    for (uint32_t wi = 0; wi < rt->nworkers; wi++) {
        rt->listen_fds[wi] = malloc((c->nlisteners ? c->nlisteners : 1) * sizeof(int));
        if (!rt->listen_fds[wi])
            return nomem(err);
        for (size_t j = 0; j < c->nlisteners; j++)
            rt->listen_fds[wi][j] = -1;
        for (size_t j = 0; j < c->nlisteners; j++) {
            int old = prev_listen_fd(prev, wi, &c->listeners[j]);
            int fd = old >= 0 ? fcntl(old, F_DUPFD_CLOEXEC, 0) : open_listener(&c->listeners[j]);
            if (old >= 0 && fd < 0)
                fd = -errno;
            if (fd < 0) {
                lb_err_set(err, "listener %s: cannot listen on %s: %s", c->listeners[j].name,
                           c->listeners[j].bind.text, strerror(-fd));
                return fd;
            }
            rt->listen_fds[wi][j] = fd;
        }
    }
    return 0;
}

static int build_workers(struct lb_runtime *rt, struct lb_err *err)
{
    rt->workers = calloc(rt->nworkers, sizeof(*rt->workers));
    rt->threads = calloc(rt->nworkers, sizeof(*rt->threads));
    if (!rt->workers || !rt->threads)
        return nomem(err);
    for (uint32_t wi = 0; wi < rt->nworkers; wi++) {
        int rc = io_worker_init(&rt->workers[wi], rt, (int)wi, err);
        if (rc < 0)
            return rc;
        rt->nworkers_built = wi + 1;
        /* The worker owns its listening sockets from here on. */
        for (size_t j = 0; j < rt->conf->nlisteners; j++)
            rt->listen_fds[wi][j] = -1;
    }
    return 0;
}

struct lb_runtime *lb_proxy_build(struct conf *c, const char *file,
                                  const struct lb_runtime *tmpl, const struct lb_runtime *prev,
                                  struct lb_err *err)
{
    struct lb_runtime *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        conf_free(c);
        lb_err_set(err, "out of memory");
        return NULL;
    }
    rt->conf = c;
    rt->access_fd = -1;
    rt->ring_flags = tmpl->ring_flags;
    rt->has_peername = tmpl->has_peername;
    rt->file = file;

    int rc = build_tls(rt, file, err);
    if (rc == 0)
        rc = open_access_log(rt, err);
    if (rc == 0) {
        size_workers(rt, !prev);
        rc = load_snapshots(rt, err);
    }
    if (rc == 0)
        rc = build_clusters(rt, err);
    if (rc == 0)
        rc = open_listeners(rt, prev, err);
    if (rc == 0)
        rc = lb_health_init(rt, err);
    if (rc == 0 && prev)
        carry_state(rt, prev);
    if (rc == 0 && cache_board_create(rt->nworkers, &rt->cache_board) < 0)
        rc = nomem(err);
    if (rc == 0)
        rc = build_workers(rt, err);
    if (rc == 0)
        return rt;
    runtime_free(rt);
    free(rt);
    return NULL;
}

int lb_proxy_start(struct lb_runtime *rt, struct lb_ctl *ctl, struct lb_err *err)
{
    for (; rt->started < rt->nworkers; rt->started++) {
        if (pthread_create(&rt->threads[rt->started], NULL, io_worker_main,
                           &rt->workers[rt->started])) {
            lb_err_set(err, "cannot start worker %u", rt->started);
            atomic_store(&rt->stop, 2);
            return -EAGAIN;
        }
    }
    lb_info("lb started", "config=%s workers=%u max_connections=%u listeners=%zu", rt->file,
            rt->nworkers, rt->conns_per_worker * rt->nworkers, rt->conf->nlisteners);
    if (lb_health_start(rt, ctl, err) < 0) {
        atomic_store(&rt->stop, 2);
        return -EAGAIN;
    }
    return 0;
}

bool lb_proxy_reap(struct lb_runtime *rt)
{
    for (uint32_t i = 0; i < rt->started; i++) {
        if (!rt->threads[i])
            continue;
        if (pthread_tryjoin_np(rt->threads[i], NULL) != 0)
            return false;
        rt->threads[i] = 0;
    }
    return true;
}

void lb_proxy_destroy(struct lb_runtime *rt)
{
    for (uint32_t i = 0; i < rt->started; i++)
        if (rt->threads[i])
            pthread_join(rt->threads[i], NULL);
    runtime_free(rt);
    free(rt);
}

int lb_proxy_run(struct conf *c, const char *file)
{
    struct lb_runtime probe = {0};
    struct lb_err err = {{0}};

    lb_log_level = c->global.log_level;
    if (probe_uring(&probe) < 0) {
        conf_free(c);
        return 1;
    }
    if (!probe.has_peername)
        lb_warn("kernel lacks uring_cmd getsockopt (Linux < 6.7): client addresses unknown, "
                "client_ip hashing sends every client to one server", "");

    /* Every thread inherits this mask: the control loop alone takes these signals, through
     * its signalfd. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    lb_log_init();

    struct lb_runtime *rt = lb_proxy_build(c, file, &probe, NULL, &err);
    if (!rt) {
        fprintf(stderr, "lb: %s\n", err.msg);
        return 1;
    }
    /* Before the workers: another lb answering on the admin socket most likely holds our
     * addresses too, and a drain restored from the state file must hold from the first
     * connection. */
    struct lb_ctl *ctl = lb_ctl_new(rt, &err);
    if (!ctl) {
        fprintf(stderr, "lb: %s\n", err.msg);
        lb_proxy_destroy(rt);
        return 1;
    }
    lb_notify_init();
    if (lb_proxy_start(rt, ctl, &err) < 0)
        lb_error("cannot start: stopping", "err=\"%s\"", err.msg);
    else
        lb_notify_ready(rt); /* the listening sockets are open: connections queue */
    int rc = lb_ctl_run(ctl);
    lb_ctl_free(ctl);
    return rc;
}
