/*
 * The running proxy: checks that io_uring can do what lb needs (and says exactly why not
 * when it cannot), builds the runtime from the config, opens one SO_REUSEPORT socket per
 * worker and listener, starts the workers, and waits for signals on the main thread,
 * which is the control thread.
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

#include "lb/admin.h"
#include "lb/health.h"
#include "lb/log.h"
#include "lb/proxy.h"
#include "lb/runtime.h"
#include "lb/snapshots.h"
#include "lb/worker.h"

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
    /* First: the health thread writes into the clusters freed below. */
    lb_health_free(rt);
    if (rt->workers)
        for (uint32_t i = 0; i < rt->nworkers; i++)
            lb_worker_destroy(&rt->workers[i]);
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
        for (size_t i = 0; i < rt->conf->nclusters; i++)
            lb_cluster_destroy(&rt->clusters[i]);
    free(rt->clusters);
    free(rt->lstats);
    if (rt->access_fd > STDERR_FILENO)
        close(rt->access_fd);
    for (size_t i = 0; i < rt->nsnap_slots; i++)
        snap_slot_destroy(&rt->snap_slots[i]);
    free(rt->snap_slots);
    conf_free(rt->conf);
}

int lb_proxy_run(struct conf *c, const char *file)
{
    struct lb_runtime rt = {.conf = c};
    struct lb_err err = {{0}};
    int rc = 1;
    struct lb_admin *admin = NULL;
    pthread_t *threads = NULL;
    uint32_t started = 0;

    lb_log_level = c->global.log_level;
    rt.access_fd = -1;
    /* Refuse what this version cannot do yet rather than pretend: a config that asks for
     * it gets a clear message and lb does not start. */
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        if (l->tls.enabled) {
            fprintf(stderr, "%s: listener %s: tls is not built yet in this version\n", file,
                    l->name);
            goto out;
        }
        for (size_t j = 0; j < l->nroutes; j++) {
            const struct conf_route *r = &l->routes[j];
            if (r->action == CONF_ACT_ENQUEUE) {
                fprintf(stderr, "%s:%u:%u: listener %s: enqueue routes (Redis) are not built "
                                "yet in this version\n", file, r->pos.line, r->pos.col, l->name);
                goto out;
            }
        }
    }
    if (c->global.access == CONF_ACCESS_STDERR) {
        rt.access_fd = STDERR_FILENO;
    } else if (c->global.access == CONF_ACCESS_FILE) {
        rt.access_fd = open(c->global.access_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (rt.access_fd < 0) {
            fprintf(stderr, "lb: cannot open the access log %s: %s\n", c->global.access_file,
                    strerror(errno));
            goto out;
        }
    }
    if (probe_uring(&rt) < 0)
        goto out;
    if (!rt.has_peername)
        lb_warn("kernel lacks uring_cmd getsockopt (Linux < 6.7): client addresses unknown, "
                "client_ip hashing sends every client to one server", "");

    rt.nworkers = c->global.workers;
    if (!rt.nworkers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        rt.nworkers = n > 0 ? (uint32_t)n : 1;
    }
    rt.conns_per_worker = c->global.max_connections / rt.nworkers;
    if (rt.conns_per_worker < 64)
        rt.conns_per_worker = 64;
    uint64_t nofile = raise_nofile((uint64_t)rt.conns_per_worker * 2 + 1024);
    if ((uint64_t)rt.conns_per_worker * 2 + 1024 > nofile) {
        uint32_t fit = nofile > 1024 + 128 ? (uint32_t)((nofile - 1024) / 2) : 64;
        lb_warn("open file limit too low for max_connections: lowered", "nofile=%lu "
                "max_connections=%u hint=\"raise ulimit -n (hard limit)\"",
                (unsigned long)nofile, fit * rt.nworkers);
        rt.conns_per_worker = fit;
    }

    /* Snapshot sets: loaded whole before anything listens, so a broken directory stops the
     * start with the file named, not a worker at its first request. */
    rt.snap_slots = calloc(c->nstatics ? c->nstatics : 1, sizeof(*rt.snap_slots));
    if (!rt.snap_slots)
        goto out;
    for (size_t i = 0; i < c->nstatics; i++) {
        snap_slot_init(&rt.snap_slots[i]);
        rt.nsnap_slots = i + 1;
        struct snap_set *set = NULL;
        if (snap_set_load(&c->statics[i], &set, &err) < 0) {
            fprintf(stderr, "%s:%u:%u: %s\n", file, c->statics[i].pos.line,
                    c->statics[i].pos.col, err.msg);
            goto out;
        }
        struct snap_stats st;
        snap_set_stats(set, &st);
        lb_info("snapshots loaded", "set=%s files=%lu bytes=%lu memory=%lu", c->statics[i].name,
                (unsigned long)st.files, (unsigned long)st.body_bytes,
                (unsigned long)st.memory_bytes);
        snap_slot_publish(&rt.snap_slots[i], set);
    }

    rt.clusters = calloc(c->nclusters ? c->nclusters : 1, sizeof(*rt.clusters));
    if (!rt.clusters)
        goto out;
    for (size_t i = 0; i < c->nclusters; i++) {
        if (lb_cluster_init(&rt.clusters[i], &c->clusters[i], &err) < 0) {
            fprintf(stderr, "%s: %s\n", file, err.msg);
            goto out;
        }
        if (lb_cluster_stats_init(&rt.clusters[i], (uint32_t)c->nlisteners) < 0)
            goto out;
    }
    rt.lstats = calloc(c->nlisteners ? c->nlisteners : 1, sizeof(*rt.lstats));
    if (!rt.lstats)
        goto out;
    /* Before the listeners: another lb answering on the admin socket most likely holds our
     * addresses too (SO_REUSEPORT would let us share them silently); and before the workers,
     * so that a drain restored from the state file holds from the first connection. */
    admin = lb_admin_start(&rt, &err);
    if (!admin) {
        fprintf(stderr, "lb: %s\n", err.msg);
        goto out;
    }

    rt.listen_fds = calloc(rt.nworkers, sizeof(*rt.listen_fds));
    if (!rt.listen_fds)
        goto out;
    for (uint32_t wi = 0; wi < rt.nworkers; wi++) {
        rt.listen_fds[wi] = malloc((c->nlisteners ? c->nlisteners : 1) * sizeof(int));
        if (!rt.listen_fds[wi])
            goto out;
        for (size_t j = 0; j < c->nlisteners; j++)
            rt.listen_fds[wi][j] = -1;
        for (size_t j = 0; j < c->nlisteners; j++) {
            int fd = open_listener(&c->listeners[j]);
            if (fd < 0) {
                fprintf(stderr, "lb: listener %s: cannot listen on %s: %s\n",
                        c->listeners[j].name, c->listeners[j].bind.text, strerror(-fd));
                goto out;
            }
            rt.listen_fds[wi][j] = fd;
        }
    }

    if (lb_health_init(&rt, &err) < 0) {
        fprintf(stderr, "lb: %s\n", err.msg);
        goto out;
    }

    rt.workers = calloc(rt.nworkers, sizeof(*rt.workers));
    threads = calloc(rt.nworkers, sizeof(*threads));
    if (!rt.workers || !threads)
        goto out;
    for (uint32_t wi = 0; wi < rt.nworkers; wi++) {
        if (lb_worker_init(&rt.workers[wi], &rt, (int)wi, &err) < 0) {
            fprintf(stderr, "lb: %s\n", err.msg);
            goto out;
        }
        /* The worker owns its listening sockets from here on. */
        for (size_t j = 0; j < c->nlisteners; j++)
            rt.listen_fds[wi][j] = -1;
    }

    /* Workers inherit a full signal mask; only this thread takes signals. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (; started < rt.nworkers; started++) {
        if (pthread_create(&threads[started], NULL, lb_worker_main, &rt.workers[started])) {
            fprintf(stderr, "lb: cannot start worker %u\n", started);
            atomic_store(&rt.stop, 2);
            break;
        }
    }
    lb_info("lb started", "config=%s workers=%u max_connections=%u listeners=%zu", file,
            rt.nworkers, rt.conns_per_worker * rt.nworkers, c->nlisteners);
    /* After the workers, with signals blocked: the health thread must not take them. */
    if (!atomic_load(&rt.stop) && lb_health_start(&rt, &err) < 0) {
        lb_error("cannot start health checks: stopping", "err=\"%s\"", err.msg);
        atomic_store(&rt.stop, 2);
    }

    struct timespec tmo = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
    while (!atomic_load(&rt.stop)) {
        int sig = sigtimedwait(&set, NULL, &tmo);
        if (sig == SIGTERM || sig == SIGINT) {
            lb_info("signal received: stopping", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
            atomic_store(&rt.stop, 1);
        } else if (sig == SIGHUP) {
            /* Full config reload comes with the admin work; snapshots republish now. */
            lb_info("SIGHUP: republishing snapshot sets", "sets=%zu", rt.nsnap_slots);
            lb_snapshots_reload(&rt, NULL, NULL);
        }
    }
    for (uint32_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    rc = atomic_load(&rt.stop) == 1 ? 0 : 1;
    lb_info("lb stopped", "exit=%d", rc);
out:
    lb_admin_stop(admin);
    free(threads);
    runtime_free(&rt);
    return rc;
}
