/*
 * The admin socket's server: one thread, one poll() loop, a handful of clients.
 *
 * The thread owns the listening unix socket, every client connection, the request rates
 * shown by `status` (sampled from the picks counters once a second) and the state file.
 * It touches the data path only through the server table's atomics, so a stuck or hostile
 * client can cost at most one of ADMIN_MAX_CLIENTS slots for ADMIN_TIMEOUT_MS and
 * never delays a worker. Every socket is non-blocking: nothing here waits except poll().
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lb/admin/admin.h"
#include "lb/core/log.h"
#include "lb/metrics/metrics.h"
#include "lb/core/runtime.h"

#define OUT_BACKLOG_MAX (64u << 10) /* stop reading commands while this much is unsent */
#define RATE_INTERVAL_MS 1000

struct admin_client {
    int fd; /* -1: free slot */
    char in[ADMIN_LINE_MAX];
    size_t inlen;
    struct lb_jbuf out;
    size_t outoff;     /* sent so far */
    uint64_t deadline; /* ms: the next line must arrive, or the answer be read, by then */
    bool closing;      /* close once the answer is out: no more commands */
    bool eof;          /* the client sent its last byte; answer what is complete, then close */
};

struct admin {
    struct lb_runtime *rt;
    char *path;       /* the socket */
    char *state_path; /* path + ".state" */
    dev_t dev;        /* the socket file we created, so that stop removes only ours */
    ino_t ino;
    int lfd;
    int wakefd; /* eventfd: admin_stop() */
    pthread_t thread;
    struct admin_client clients[ADMIN_MAX_CLIENTS];
    double **rates;  /* [cluster][server] picks per second over the last interval */
    uint64_t **last; /* picks at the last sample */
    uint64_t last_ms;
    uint64_t accept_pause_until; /* ms: after an accept error other than EAGAIN */
    struct metrics *metrics;  /* global.metrics.listen, served by this loop; NULL if none */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sample_rates(struct admin *a, uint64_t now)
{
    struct lb_runtime *rt = a->rt;
    double secs = (double)(now - a->last_ms) / 1000.0;
    for (size_t ci = 0; ci < rt->conf->nclusters; ci++) {
        for (uint32_t si = 0; si < rt->clusters[ci].n; si++) {
            uint64_t p =
                atomic_load_explicit(&rt->clusters[ci].servers[si].picks, memory_order_relaxed);
            a->rates[ci][si] = a->last_ms && secs > 0 ? (double)(p - a->last[ci][si]) / secs : 0;
            a->last[ci][si] = p;
        }
    }
    a->last_ms = now;
}

static void client_close(struct admin_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->inlen = 0;
    c->outoff = 0;
    c->closing = false;
    c->eof = false;
    lb_jbuf_reset(&c->out);
}

/* Runs one command line and queues its answer. */
static void client_line(struct admin *a, struct admin_client *c, const char *line, size_t len)
{
    struct admin_cmd cmd;
    struct lb_err err = {{0}};
    size_t mark = c->out.len;

    if (admin_parse(line, len, &cmd, &err) < 0) {
        admin_error(&c->out, err.msg);
    } else {
        int r = admin_exec(a->rt, (const double *const *)a->rates, &cmd, &c->out);
        if (c->out.overflow) {
            c->out.len = mark;
            c->out.overflow = false;
            admin_error(&c->out, "answer too large");
        }
        if (r & ADMIN_R_CHANGED && admin_state_save(a->rt, a->state_path, &err) < 0)
            /* The change holds in this process; only its survival across a restart is lost.
             * Logged rather than answered: the answer is already written. */
            lb_error("admin: cannot save state", "err=\"%s\"", err.msg);
    }
    lb_jbuf_printf(&c->out, "\n");
}

/*
 * Runs the complete lines waiting in c->in while the unsent answers stay under
 * OUT_BACKLOG_MAX: a client that pipelines commands without reading the answers is simply
 * not read from until it does (and dropped if that takes longer than the timeout).
 */
static void client_process(struct admin *a, struct admin_client *c, uint64_t now)
{
    size_t start = 0;
    char *nl;

    while (!c->closing && c->out.len - c->outoff <= OUT_BACKLOG_MAX &&
           (nl = memchr(c->in + start, '\n', c->inlen - start))) {
        client_line(a, c, c->in + start, (size_t)(nl - (c->in + start)));
        start = (size_t)(nl - c->in) + 1;
        c->deadline = now + ADMIN_TIMEOUT_MS;
    }
    memmove(c->in, c->in + start, c->inlen - start);
    c->inlen -= start;
    if (!c->closing && c->inlen == sizeof(c->in) && !memchr(c->in, '\n', c->inlen)) {
        admin_error(&c->out, "line too long (max 4096 bytes)");
        lb_jbuf_printf(&c->out, "\n");
        c->closing = true;
        c->inlen = 0;
    }
}

/* Whether the client is done: nothing more will come in and nothing is left to send. */
static bool client_finished(const struct admin_client *c)
{
    if (c->outoff < c->out.len)
        return false;
    return c->closing || (c->eof && !memchr(c->in, '\n', c->inlen));
}

static void client_read(struct admin *a, struct admin_client *c, uint64_t now)
{
    if (c->inlen < sizeof(c->in)) {
        ssize_t n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0) {
            client_close(c);
            return;
        }
        if (n == 0)
            c->eof = true; /* a half-closing client (echo status | nc -U) still gets answers */
        c->inlen += (size_t)n;
    }
    client_process(a, c, now);
    if (client_finished(c))
        client_close(c);
}

static void client_write(struct admin *a, struct admin_client *c, uint64_t now)
{
    while (c->outoff < c->out.len) {
        ssize_t n =
            send(c->fd, c->out.p + c->outoff, c->out.len - c->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            client_close(c);
            return;
        }
        c->outoff += (size_t)n;
    }
    lb_jbuf_reset(&c->out);
    c->outoff = 0;
    client_process(a, c, now); /* lines held back while the answers were unread */
    if (client_finished(c))
        client_close(c);
}

static void accept_clients(struct admin *a, uint64_t now)
{
    for (;;) {
        int fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            /* Out of descriptors (EMFILE...): the connection stays queued and the socket
             * readable, so pause accepting a little instead of spinning on it. */
            if (errno != EAGAIN && errno != EINTR)
                a->accept_pause_until = now + 100;
            return;
        }
        struct admin_client *c = NULL;
        for (int i = 0; i < ADMIN_MAX_CLIENTS && !c; i++)
            if (a->clients[i].fd < 0)
                c = &a->clients[i];
        if (!c) {
            static const char full[] = "{\"ok\":false,\"error\":\"too many admin clients\"}\n";
            /* Best effort: the socket buffer of a fresh connection always has room. */
            ssize_t n = send(fd, full, sizeof(full) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)n;
            close(fd);
            continue;
        }
        c->fd = fd;
        c->inlen = 0;
        c->outoff = 0;
        c->closing = false;
        c->eof = false;
        lb_jbuf_reset(&c->out);
        c->deadline = now + ADMIN_TIMEOUT_MS;
    }
}

static void *admin_main(void *arg)
{
    struct admin *a = arg;
    struct pollfd pfd[2 + ADMIN_MAX_CLIENTS + METRICS_NPOLL];
    int slot[2 + ADMIN_MAX_CLIENTS];

    lb_log_set_thread(-1);
    sample_rates(a, now_ms());
    for (;;) {
        uint64_t now = now_ms();
        if (now - a->last_ms >= RATE_INTERVAL_MS)
            sample_rates(a, now);
        uint64_t next = a->last_ms + RATE_INTERVAL_MS;
        nfds_t n = 0;
        pfd[n++] = (struct pollfd){.fd = a->wakefd, .events = POLLIN};
        pfd[n++] =
            (struct pollfd){.fd = a->lfd, .events = now >= a->accept_pause_until ? POLLIN : 0};
        if (now < a->accept_pause_until && a->accept_pause_until < next)
            next = a->accept_pause_until;
        for (int i = 0; i < ADMIN_MAX_CLIENTS; i++) {
            struct admin_client *c = &a->clients[i];
            if (c->fd < 0)
                continue;
            if (now >= c->deadline) {
                client_close(c); /* too slow to send a line or to read an answer */
                continue;
            }
            next = c->deadline < next ? c->deadline : next;
            short ev = 0;
            if (c->outoff < c->out.len)
                ev |= POLLOUT;
            if (!c->closing && !c->eof && c->inlen < sizeof(c->in) &&
                c->out.len - c->outoff <= OUT_BACKLOG_MAX)
                ev |= POLLIN;
            slot[n] = i;
            pfd[n++] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        nfds_t nadmin = n;
        if (a->metrics)
            n += metrics_poll_prepare(a->metrics, pfd + n, now, &next);
        int rc = poll(pfd, n, next > now ? (int)(next - now) : 0);
        if (rc < 0 && errno != EINTR) {
            lb_error("admin: poll failed; the admin socket stops answering", "err=\"%s\"",
                     strerror(errno));
            break;
        }
        if (rc <= 0)
            continue;
        if (pfd[0].revents)
            break;
        now = now_ms();
        for (nfds_t i = 2; i < nadmin; i++) {
            struct admin_client *c = &a->clients[slot[i]];
            if (pfd[i].revents & POLLERR)
                client_close(c);
            else if (pfd[i].revents & POLLIN)
                client_read(a, c, now);
            else if (pfd[i].revents & POLLHUP && !(pfd[i].events & POLLOUT))
                client_close(c); /* gone, and nothing of ours left to deliver */
            if (c->fd >= 0 && c->outoff < c->out.len)
                client_write(a, c, now);
        }
        if (pfd[1].revents)
            accept_clients(a, now);
        if (a->metrics)
            metrics_poll_done(a->metrics, pfd + nadmin, n - nadmin,
                                 (const double *const *)a->rates, now);
    }
    return NULL;
}

/*
 * Claims @path for the admin socket. A socket file nobody answers on is what a killed lb
 * leaves behind and is removed; one that answers belongs to a running lb, and taking it over
 * would leave that lb unreachable, so startup stops instead. Anything else at the path is
 * the operator's file and is left alone.
 */
static int open_socket(struct admin *a, struct lb_err *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;

    if (strlen(a->path) >= sizeof(sa.sun_path)) {
        lb_err_set(err, "admin socket %s: path longer than %zu bytes", a->path,
                   sizeof(sa.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, a->path, strlen(a->path) + 1);
    if (lstat(a->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            lb_err_set(err, "admin socket %s: a file that is not a socket is in the way", a->path);
            return -EEXIST;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0) {
            lb_err_set(err, "admin socket: %s", strerror(errno));
            return -errno;
        }
        int crc = connect(probe, (struct sockaddr *)&sa, sizeof(sa));
        int cerr = errno;
        close(probe);
        if (crc == 0 || cerr == EAGAIN) {
            lb_err_set(err,
                       "admin socket %s: another lb is running there (it answers); stop it "
                       "or set global.admin.socket to another path",
                       a->path);
            return -EADDRINUSE;
        }
        if (cerr != ECONNREFUSED) {
            lb_err_set(err, "admin socket %s: cannot tell whether it is in use: %s", a->path,
                       strerror(cerr));
            return -cerr;
        }
        if (unlink(a->path) < 0 && errno != ENOENT) {
            lb_err_set(err, "admin socket %s: cannot remove the stale socket: %s", a->path,
                       strerror(errno));
            return -errno;
        }
        lb_info("admin: removed a stale socket nobody answered on", "path=%s", a->path);
    }

    a->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a->lfd < 0) {
        lb_err_set(err, "admin socket: %s", strerror(errno));
        return -errno;
    }
    /* bind() creates the file with the umask applied; a tight umask around it means there is
     * no moment when the file is open to others. Startup is single-threaded here. */
    mode_t old = umask(0177);
    int brc = bind(a->lfd, (struct sockaddr *)&sa, sizeof(sa));
    int berr = errno;
    umask(old);
    if (brc < 0 || chmod(a->path, 0600) < 0 || listen(a->lfd, 64) < 0 || stat(a->path, &st) < 0) {
        int e = brc < 0 ? berr : errno;
        lb_err_set(err, "admin socket %s: %s", a->path, strerror(e));
        return -e;
    }
    a->dev = st.st_dev;
    a->ino = st.st_ino;
    return 0;
}

static void admin_free(struct admin *a)
{
    if (a->lfd >= 0) {
        struct stat st;
        /* Remove the file only if it is still the one we bound (not a successor's). */
        if (stat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
            unlink(a->path);
        close(a->lfd);
    }
    metrics_close(a->metrics);
    if (a->wakefd >= 0)
        close(a->wakefd);
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++) {
        client_close(&a->clients[i]);
        lb_jbuf_free(&a->clients[i].out);
    }
    if (a->rates)
        for (size_t i = 0; i < a->rt->conf->nclusters; i++)
            free(a->rates[i]);
    if (a->last)
        for (size_t i = 0; i < a->rt->conf->nclusters; i++)
            free(a->last[i]);
    free(a->rates);
    free(a->last);
    free(a->path);
    free(a->state_path);
    free(a);
}

struct admin *admin_start(struct lb_runtime *rt, struct lb_err *err)
{
    struct admin *a = calloc(1, sizeof(*a));
    size_t nc = rt->conf->nclusters;
    if (!a) {
        lb_err_set(err, "admin socket: out of memory");
        return NULL;
    }
    a->rt = rt;
    a->lfd = a->wakefd = -1;
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++) {
        a->clients[i].fd = -1;
        lb_jbuf_init(&a->clients[i].out, ADMIN_ANSWER_MAX);
    }
    a->path = strdup(rt->conf->global.admin_socket);
    a->state_path = malloc(strlen(rt->conf->global.admin_socket) + sizeof(".state"));
    a->rates = calloc(nc ? nc : 1, sizeof(*a->rates));
    a->last = calloc(nc ? nc : 1, sizeof(*a->last));
    if (!a->path || !a->state_path || !a->rates || !a->last)
        goto oom;
    sprintf(a->state_path, "%s.state", a->path);
    for (size_t i = 0; i < nc; i++) {
        a->rates[i] = calloc(rt->clusters[i].n + 1, sizeof(**a->rates));
        a->last[i] = calloc(rt->clusters[i].n + 1, sizeof(**a->last));
        if (!a->rates[i] || !a->last[i])
            goto oom;
    }
    if (open_socket(a, err) < 0)
        goto fail;
    if (rt->conf->global.has_metrics && !(a->metrics = metrics_open(rt, err)))
        goto fail;
    int n = admin_state_load(rt, a->state_path, err);
    if (n < 0)
        goto fail;
    if (n > 0)
        lb_info("admin: state restored", "file=%s entries=%d", a->state_path, n);
    a->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->wakefd < 0) {
        lb_err_set(err, "admin socket: eventfd: %s", strerror(errno));
        goto fail;
    }

    /* The control thread takes signals through its signalfd; a thread that did not block
     * them could be picked to run SIGTERM's default action and kill the process. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&a->thread, NULL, admin_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        lb_err_set(err, "admin socket: cannot start its thread: %s", strerror(rc));
        goto fail;
    }
    lb_info("admin socket listening", "path=%s", a->path);
    return a;
oom:
    lb_err_set(err, "admin socket: out of memory");
fail:
    admin_free(a);
    return NULL;
}

void admin_stop(struct admin *a)
{
    if (!a)
        return;
    uint64_t one = 1;
    if (write(a->wakefd, &one, sizeof(one)) != sizeof(one)) {
        /* Cannot happen with an eventfd; if it did, freeing under a running thread would be
         * worse than leaking at exit. */
        lb_error("admin: cannot wake the admin thread", "err=\"%s\"", strerror(errno));
        return;
    }
    pthread_join(a->thread, NULL);
    admin_free(a);
}
