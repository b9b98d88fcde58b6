/*
 * The admin socket's server: a source of the control loop (lb/core/control.h), a handful of
 * clients on the control thread's ring.
 *
 * It owns the listening unix socket, every client connection, the request rates shown by
 * `status` (sampled from the picks counters once a second) and the state file. It touches the
 * data path only through the server table's atomics, so a stuck or hostile client can cost at
 * most one of ADMIN_MAX_CLIENTS slots for ADMIN_TIMEOUT_MS and never delays a worker. Nothing
 * here waits: accept, recv and send are operations on the ring, one at a time per client
 * (read a command line, write its answer, read the next).
 */
#include <errno.h>
#include <liburing.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lb/admin/admin.h"
#include "lb/core/control.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/fleet/fleet.h"
#include "lb/metrics/metrics.h"

#define OUT_BACKLOG_MAX (64u << 10) /* stop running commands while this much is unsent */
#define RATE_INTERVAL_MS 1000
#define ACCEPT_PAUSE_MS 100 /* after an accept error other than a vanished connection */

struct admin_client {
    struct lb_ctl_conn conn; /* fd -1 and no operation in flight: free slot */
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
    struct lb_ctl *ctl;
    int tag;
    char *path;       /* the socket */
    char *state_path; /* path + ".state" */
    dev_t dev;        /* the socket file we created, so that stop removes only ours */
    ino_t ino;
    bool own_file; /* dev and ino are set, and the file not removed yet */
    int lfd;
    bool accepting; /* an accept is in flight */
    bool stopped;   /* admin_stop: completions are only counted */
    struct admin_client clients[ADMIN_MAX_CLIENTS];
    double **rates;  /* [cluster][server] picks per second over the last interval */
    uint64_t **last; /* picks at the last sample */
    uint64_t last_ms;
    uint64_t accept_pause_until; /* ms */
    struct metrics *metrics;     /* global.metrics.listen, beside it on the loop; NULL if none */
    struct metrics *admin_http;  /* global.admin.http.listen; NULL if none */
};

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

static void client_close(struct admin *a, struct admin_client *c)
{
    lb_ctl_conn_close(a->ctl, &c->conn);
    c->inlen = 0;
    c->outoff = 0;
    c->closing = false;
    c->eof = false;
    lb_jbuf_reset(&c->out); /* keeps its memory: a cancelled send may still point into it */
}

int admin_run(struct admin *a, const struct admin_cmd *cmd, struct lb_jbuf *out)
{
    struct lb_err err = {{0}};
    int r = admin_exec(a->rt, (const double *const *)a->rates, cmd, out);
    if (!(r & ADMIN_R_ERROR))
        admin_fleet_share(cmd, out); /* unless --local or no fleet */
    if (r & ADMIN_R_CHANGED && admin_state_save(a->rt, a->state_path, &err) < 0)
        /* The change holds in this process; only its survival across a restart is lost.
         * Logged rather than answered: the answer is already written. */
        lb_error("admin: cannot save state", "err=\"%s\"", err.msg);
    return r;
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
        admin_run(a, &cmd, &c->out);
        if (c->out.overflow) {
            c->out.len = mark;
            c->out.overflow = false;
            admin_error(&c->out, "answer too large");
        }
    }
    lb_jbuf_printf(&c->out, "\n");
}

bool admin_apply_change(struct admin *a, const struct fleet_change *c)
{
    struct admin_cmd cmd = {
        .verb = c->kind == FLEET_WEIGHT ? ADMIN_WEIGHT
                : c->value              ? ADMIN_DRAIN
                                        : ADMIN_UNDRAIN,
        .weight = c->value,
        .local = true,
    };
    memcpy(cmd.cluster, c->cluster, sizeof(cmd.cluster));
    memcpy(cmd.server, c->server, sizeof(cmd.server));
    struct lb_jbuf out;
    struct lb_err err = {{0}};
    lb_jbuf_init(&out, 4096);
    int r = admin_exec(a->rt, (const double *const *)a->rates, &cmd, &out);
    lb_jbuf_free(&out);
    if (r & ADMIN_R_ERROR)
        return false; /* a server of another instance's configuration */
    lb_info("fleet: applied a change made on another instance",
            "kind=%s cluster=%s server=%s "
            "value=%u by=%s",
            c->kind == FLEET_WEIGHT ? "weight" : "drain", c->cluster, c->server, c->value,
            c->instance);
    if (r & ADMIN_R_CHANGED && admin_state_save(a->rt, a->state_path, &err) < 0)
        lb_error("admin: cannot save state", "err=\"%s\"", err.msg);
    return true;
}

/*
 * Runs the complete lines waiting in c->in while the unsent answers stay under
 * OUT_BACKLOG_MAX: a client that pipelines commands without reading the answers is simply
 * not read from until it does (and dropped if that takes longer than the timeout). Called
 * with nothing in flight on the client, so c->in and c->out are the loop's alone.
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

/* The client's next operation: its answers first, then its next lines. */
static void client_next(struct admin *a, struct admin_client *c)
{
    if (client_finished(c))
        client_close(a, c);
    else if (c->outoff < c->out.len)
        lb_ctl_conn_send(a->ctl, &c->conn, c->out.p, c->out.len, &c->outoff);
    else if (!c->closing && !c->eof && c->inlen < sizeof(c->in))
        lb_ctl_conn_recv(a->ctl, &c->conn, c->in + c->inlen, sizeof(c->in) - c->inlen);
}

static void client_received(struct admin *a, struct admin_client *c, int res)
{
    if (res < 0) {
        client_close(a, c);
        return;
    }
    if (res == 0)
        c->eof = true; /* a half-closing client (echo status | nc -U) still gets answers */
    c->inlen += (size_t)res;
    client_process(a, c, lb_ctl_now_ms());
    client_next(a, c);
}

static void client_sent(struct admin *a, struct admin_client *c, int res)
{
    int r = lb_ctl_conn_sent(a->ctl, &c->conn, c->out.p, c->out.len, &c->outoff, res);
    if (r < 0)
        client_close(a, c);
    if (r <= 0)
        return;
    lb_jbuf_reset(&c->out);
    c->outoff = 0;
    client_process(a, c, lb_ctl_now_ms()); /* lines held back while the answers were unread */
    client_next(a, c);
}

static void arm_accept(struct admin *a)
{
    struct io_uring_sqe *sqe = lb_ctl_sqe(a->ctl);
    io_uring_prep_accept(sqe, a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, lb_ctl_ud(a->tag, LB_CTL_OP_ACCEPT, 0, 0));
    a->accepting = true;
}

static void accepted(struct admin *a, int fd)
{
    uint64_t now = lb_ctl_now_ms();
    if (fd < 0) {
        /* Out of descriptors (EMFILE...): the connection stays queued, so pause accepting a
         * little instead of spinning on it. */
        if (fd != -EAGAIN && fd != -EINTR && fd != -ECONNABORTED)
            a->accept_pause_until = now + ACCEPT_PAUSE_MS;
        return;
    }
    struct admin_client *c = NULL;
    for (int i = 0; i < ADMIN_MAX_CLIENTS && !c; i++)
        if (lb_ctl_conn_idle(&a->clients[i].conn))
            c = &a->clients[i];
    if (!c) {
        static const char full[] = "{\"ok\":false,\"error\":\"too many admin clients\"}\n";
        /* Best effort: the socket buffer of a fresh connection always has room. */
        ssize_t n = send(fd, full, sizeof(full) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
        close(fd);
        return;
    }
    lb_ctl_conn_open(&c->conn, fd);
    c->inlen = 0;
    c->outoff = 0;
    c->closing = false;
    c->eof = false;
    lb_jbuf_reset(&c->out);
    c->deadline = now + ADMIN_TIMEOUT_MS;
    client_next(a, c);
}

static void admin_cqe(void *arg, const struct io_uring_cqe *cqe)
{
    struct admin *a = arg;
    if (lb_ctl_ud_op(cqe->user_data) == LB_CTL_OP_ACCEPT) {
        a->accepting = false;
        if (a->stopped && cqe->res >= 0)
            close(cqe->res);
        else if (!a->stopped)
            accepted(a, cqe->res);
        return; /* the next accept is armed by the tick, which knows about pauses */
    }
    uint32_t slot = lb_ctl_ud_slot(cqe->user_data);
    if (slot >= ADMIN_MAX_CLIENTS)
        return;
    struct admin_client *c = &a->clients[slot];
    unsigned op = lb_ctl_conn_complete(&c->conn, cqe);
    if (op == LB_CTL_OP_NONE)
        return;
    if (a->stopped)
        client_close(a, c);
    else if (op == LB_CTL_OP_RECV)
        client_received(a, c, cqe->res);
    else
        client_sent(a, c, cqe->res);
}

static uint64_t admin_tick(void *arg, uint64_t now)
{
    struct admin *a = arg;
    if (now - a->last_ms >= RATE_INTERVAL_MS)
        sample_rates(a, now);
    uint64_t next = a->last_ms + RATE_INTERVAL_MS;
    if (!a->accepting && now >= a->accept_pause_until)
        arm_accept(a);
    else if (!a->accepting && a->accept_pause_until < next)
        next = a->accept_pause_until;
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++) {
        struct admin_client *c = &a->clients[i];
        if (c->conn.fd < 0 || c->conn.closing)
            continue;
        if (now >= c->deadline) {
            client_close(a, c); /* too slow to send a line or to read an answer */
            continue;
        }
        next = c->deadline < next ? c->deadline : next;
    }
    return next;
}

static void admin_cancel(void *arg)
{
    struct admin *a = arg;
    a->stopped = true;
    if (a->accepting)
        lb_ctl_cancel(a->ctl, lb_ctl_ud(a->tag, LB_CTL_OP_ACCEPT, 0, 0));
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++)
        client_close(a, &a->clients[i]);
}

static unsigned admin_inflight(const void *arg)
{
    const struct admin *a = arg;
    unsigned n = a->accepting;
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++)
        n += a->clients[i].conn.op != LB_CTL_OP_NONE;
    return n;
}

static void admin_free(struct admin *a);

static void admin_release(void *arg)
{
    admin_free(arg);
}

static const struct lb_ctl_ops admin_ops = {
    .name = "admin",
    .cqe = admin_cqe,
    .tick = admin_tick,
    .cancel = admin_cancel,
    .inflight = admin_inflight,
    .release = admin_release,
};

/*
 * Whether the lb listening on the socket @fd is connected to is dead. A killed lb's socket
 * takes connections for a moment after its death: the kernel tears down the io_uring whose
 * accept holds it in the background. The pid of the process that called listen() tells.
 */
static bool listener_dead(int fd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.pid > 0 &&
           kill(cr.pid, 0) < 0 && errno == ESRCH;
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
        if (crc == 0 && listener_dead(probe)) {
            crc = -1;
            cerr = ECONNREFUSED;
        }
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
     * no moment when the file is open to others. No other thread of lb creates files. */
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
    a->own_file = true;
    return 0;
}

/* Removes the socket file if it is still the one we bound (not a successor's). */
static void unlink_ours(struct admin *a)
{
    struct stat st;
    if (a->own_file && stat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
        unlink(a->path);
    a->own_file = false;
}

/* Nothing of @a is in flight (or it never was attached). */
static void admin_free(struct admin *a)
{
    unlink_ours(a);
    if (a->lfd >= 0)
        close(a->lfd);
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++) {
        if (a->clients[i].conn.fd >= 0)
            close(a->clients[i].conn.fd);
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

struct admin *admin_start(struct lb_runtime *rt, struct lb_ctl *ctl, struct lb_err *err)
{
    struct admin *a = calloc(1, sizeof(*a));
    size_t nc = rt->conf->nclusters;
    if (!a) {
        lb_err_set(err, "admin socket: out of memory");
        return NULL;
    }
    a->rt = rt;
    a->ctl = ctl;
    a->lfd = -1;
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++) {
        lb_ctl_conn_init(&a->clients[i].conn, LB_CTL_TAG_NONE, (uint32_t)i);
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
    if (rt->conf->global.has_metrics &&
        !(a->metrics = metrics_open(rt, ctl, (const double *const *)a->rates, err)))
        goto fail;
    if (rt->conf->global.has_admin_http &&
        !(a->admin_http = metrics_open_admin(
              rt, ctl, (const double *const *)a->rates,
              &(struct metrics_admin){.admin = a, .token = rt->conf->global.admin_http_token},
              err)))
        goto fail;
    int n = admin_state_load(rt, a->state_path, err);
    if (n < 0)
        goto fail;
    if (n > 0)
        lb_info("admin: state restored", "file=%s entries=%d", a->state_path, n);
    a->tag = lb_ctl_attach(ctl, &admin_ops, a);
    if (a->tag < 0) {
        lb_err_set(err, "admin socket: no tag left on the control loop");
        goto fail;
    }
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++)
        a->clients[i].conn.tag = a->tag;
    sample_rates(a, lb_ctl_now_ms());
    lb_info("admin socket listening", "path=%s", a->path);
    return a;
oom:
    lb_err_set(err, "admin socket: out of memory");
fail:
    metrics_close(a->metrics);
    metrics_close(a->admin_http);
    admin_free(a);
    return NULL;
}

void admin_stop(struct admin *a)
{
    if (!a)
        return;
    metrics_close(a->metrics);
    a->metrics = NULL;
    metrics_close(a->admin_http);
    a->admin_http = NULL;
    /* Now, not at release: a successor binds the same path right after this. */
    unlink_ours(a);
    lb_ctl_detach(a->ctl, a->tag); /* frees @a once its cancelled operations are back */
}
