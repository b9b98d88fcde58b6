/*
 * demo-backend's process: options, the listening socket, worker threads, signals and the
 * counter file.
 *
 * Model: one listening socket shared by -t worker threads, each with its own epoll set (the
 * socket is added with EPOLLEXCLUSIVE so one connection wakes one worker). Sockets are
 * non-blocking and level-triggered. The main thread only waits for signals and writes the
 * counter file. Requests on a connection are answered strictly in order: while a response is
 * delayed (/delay) or being generated (/bytes, /chunked) no later pipelined request is parsed,
 * and the socket is not read, which is also our back-pressure on a client that never reads.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tools/demo/demo.h"

const char *g_name;
const char *g_health_file;
atomic_uint_fast64_t g_requests;
atomic_uint_fast64_t g_connections;
atomic_uint_fast64_t g_active;
atomic_bool g_health_down;
atomic_bool g_stop;
int g_listen_fd = -1;
static int g_wake_fd = -1; /* eventfd: readable once we stop, wakes every worker */

static struct src g_listen_src = {SRC_LISTEN};
static struct src g_wake_src = {SRC_WAKE};

/* Writes the request count to @path atomically (temp file + rename), so a reader never sees
 * a half-written number. Returns 0 or -errno. */
static int counter_write(const char *path, uint64_t count)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "%" PRIu64 "\n", count);
    if (fclose(f) != 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
}

/* Binds and listens on "HOST:PORT" or "[V6]:PORT". Returns the socket or -errno; *bound gets
 * the address actually bound (port 0 asks the kernel for one). */
static int listen_on(const char *spec, char *bound, size_t bound_len)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || strlen(colon + 1) == 0)
        return -EINVAL;
    size_t hl = (size_t)(colon - spec);
    const char *h = spec;
    if (spec[0] == '[') {
        if (hl < 2 || spec[hl - 1] != ']')
            return -EINVAL;
        h++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return -EINVAL;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        freeaddrinfo(ai);
        return -e;
    }
    /* Reuse an address in TIME_WAIT, but not SO_REUSEPORT: a second server on a port that
     * is taken must fail loudly, not silently share the traffic. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(ai);
        return -e;
    }
    freeaddrinfo(ai);

    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char a[INET6_ADDRSTRLEN + 1], port[16];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, a, sizeof(a), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(bound, bound_len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", a, port);
    else
        snprintf(bound, bound_len, "%s", spec);
    return fd;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
            return false;
    return true;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: demo-backend -l HOST:PORT -n NAME [-c COUNTER_FILE] [-H DOWN_FILE] [-t N]\n"
            "\n"
            "  -l HOST:PORT  listen address (port 0: any free port, printed on stdout)\n"
            "  -n NAME       server name: body of /, X-Server header ([A-Za-z0-9._-], <= 63)\n"
            "  -c FILE       keep the request count in FILE (updated every 200ms and at exit)\n"
            "  -H FILE       /healthz answers 500 while FILE exists\n"
            "  -t N          worker threads (default 1)\n"
            "\n"
            "Endpoints: / (and unknown paths), /healthz, /admin/health/down, /admin/health/up,\n"
            "/status/NNN, /delay/MS, /bytes/N, /chunked/N, /echo, /headers, /stats.\n"
            "SIGTERM or SIGINT: stop, write the counter file, exit 0.\n");
}

struct options {
    const char *listen_spec;
    const char *counter_file;
    int threads;
};

/* Reads the command line into @o and g_name, g_health_file. Returns -1 to go on, or the
 * status to exit with (0 after -h, 2 on a usage error, already reported). */
static int parse_options(int argc, char **argv, struct options *o)
{
    int opt;
    while ((opt = getopt(argc, argv, "l:n:c:H:t:h")) != -1) {
        switch (opt) {
        case 'l':
            o->listen_spec = optarg;
            break;
        case 'n':
            g_name = optarg;
            break;
        case 'c':
            o->counter_file = optarg;
            break;
        case 'H':
            g_health_file = optarg;
            break;
        case 't':
            o->threads = atoi(optarg);
            if (o->threads < 1 || o->threads > 64) {
                fprintf(stderr, "demo-backend: -t wants 1..64\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!o->listen_spec || !g_name || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!name_ok(g_name)) {
        fprintf(stderr, "demo-backend: bad name '%s' (want [A-Za-z0-9._-], 1..63)\n", g_name);
        return 2;
    }
    return -1;
}

/* Tests open thousands of connections: take every descriptor we are allowed. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Starts @n workers on the listening socket. Returns how many started; on a failure it says
 * why and sets g_stop, so those that did start stop at once. */
static int start_workers(struct worker *workers, int n)
{
    int started = 0;
    for (; started < n; started++) {
        struct worker *w = &workers[started];
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        /* EPOLLEXCLUSIVE: a new connection wakes one worker, not all of them. */
        struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &g_listen_src};
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &g_wake_src};
        if (w->ep < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, g_listen_fd, &lev) < 0 ||
            epoll_ctl(w->ep, EPOLL_CTL_ADD, g_wake_fd, &wev) < 0 ||
            pthread_create(&w->thread, NULL, demo_worker_main, w) != 0) {
            fprintf(stderr, "demo-backend %s: cannot start worker: %s\n", g_name, strerror(errno));
            atomic_store(&g_stop, true);
            break;
        }
    }
    return started;
}

/* The main thread's loop: waits for SIGTERM or SIGINT (@sigs, blocked in every thread) and
 * meanwhile keeps @counter_file up to date every 200ms. */
static void serve_until_signal(const sigset_t *sigs, const char *counter_file)
{
    uint64_t written = 0;
    const struct timespec tick = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
    while (!atomic_load(&g_stop)) {
        int sig = sigtimedwait(sigs, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        uint64_t n = atomic_load(&g_requests);
        if (counter_file && n != written && counter_write(counter_file, n) == 0)
            written = n;
    }
}

/* Stops the first @started workers, waits for them and closes what they held. */
static void stop_workers(struct worker *workers, int started)
{
    atomic_store(&g_stop, true);
    uint64_t one = 1;
    if (write(g_wake_fd, &one, sizeof(one)) < 0) {
        /* Cannot happen with a fresh eventfd; workers would still stop at their next event. */
    }
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        close(workers[i].ep);
        if (workers[i].reserve_fd >= 0)
            close(workers[i].reserve_fd);
    }
}

int main(int argc, char **argv)
{
    struct options o = {.threads = 1};
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    raise_fd_limit();

    char bound[128];
    g_listen_fd = listen_on(o.listen_spec, bound, sizeof(bound));
    if (g_listen_fd < 0) {
        fprintf(stderr, "demo-backend %s: cannot listen on %s: %s\n", g_name, o.listen_spec,
                g_listen_fd == -EINVAL ? "bad address" : strerror(-g_listen_fd));
        return 1;
    }
    if (o.counter_file && (rc = counter_write(o.counter_file, 0)) < 0) {
        fprintf(stderr, "demo-backend %s: %s: %s\n", g_name, o.counter_file, strerror(-rc));
        return 1;
    }

    /* Workers inherit this mask, so signals reach only the main thread's sigtimedwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    g_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct worker *workers = calloc((size_t)o.threads, sizeof(*workers));
    if (g_wake_fd < 0 || !workers) {
        fprintf(stderr, "demo-backend %s: startup: %s\n", g_name, strerror(errno));
        return 1;
    }
    int started = start_workers(workers, o.threads);
    if (!atomic_load(&g_stop)) {
        printf("demo-backend %s: listening on %s (%d thread%s)\n", g_name, bound, o.threads,
               o.threads == 1 ? "" : "s");
        fflush(stdout);
    }
    serve_until_signal(&sigs, o.counter_file);
    stop_workers(workers, started);
    free(workers);
    close(g_listen_fd);
    close(g_wake_fd);
    rc = 0;
    if (o.counter_file && counter_write(o.counter_file, atomic_load(&g_requests)) < 0) {
        fprintf(stderr, "demo-backend %s: cannot write %s\n", g_name, o.counter_file);
        rc = 1;
    }
    return started == o.threads ? rc : 1;
}
