/* bench-stream: the two ends of tools/bench/l4_stream.sh's bulk transfer, as fast as plain
 * read(2)/write(2) on loopback go (python3 tops out far below a proxy's GB/s).
 *
 *   bench-stream sink PORT          listen on 127.0.0.1:PORT; for each connection, one at a
 *                                   time, read and discard until EOF, then close it
 *   bench-stream source PORT BYTES  connect to 127.0.0.1:PORT, write BYTES from a 256 KiB
 *                                   buffer, shut down the write side, wait for the peer to
 *                                   close (every byte has reached the sink), and print
 *                                   "BYTES SECONDS" on stdout
 *
 * The clock runs from before connect() to the peer's close, so a proxy that buffers bytes
 * without delivering them cannot look faster than it is. Exit 0 on success, 1 on an error
 * (described on stderr), 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)

static char buf[BUF_SIZE];

static int usage(void)
{
    fprintf(stderr, "usage: bench-stream sink PORT | source PORT BYTES\n");
    return 2;
}

static void addr_of(struct sockaddr_in *sa, const char *port)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((unsigned short)atoi(port));
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static int sink(const char *port)
{
    struct sockaddr_in sa;
    int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);

    addr_of(&sa, port);
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 64) < 0) {
        fprintf(stderr, "bench-stream: sink on 127.0.0.1:%s: %s\n", port, strerror(errno));
        return 1;
    }
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "bench-stream: accept: %s\n", strerror(errno));
            return 1;
        }
        for (;;) {
            ssize_t n = read(c, buf, sizeof(buf));
            if (n > 0)
                continue;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                fprintf(stderr, "bench-stream: read: %s\n", strerror(errno));
            break;
        }
        close(c);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int source(const char *port, const char *bytes)
{
    struct sockaddr_in sa;
    unsigned long long total = strtoull(bytes, NULL, 10), left = total;
    double t0 = now();
    int s = socket(AF_INET, SOCK_STREAM, 0);

    memset(buf, 'x', sizeof(buf));
    addr_of(&sa, port);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "bench-stream: connect to 127.0.0.1:%s: %s\n", port, strerror(errno));
        return 1;
    }
    while (left > 0) {
        size_t want = left < sizeof(buf) ? (size_t)left : sizeof(buf);
        ssize_t n = write(s, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "bench-stream: write after %llu bytes: %s\n", total - left,
                    n < 0 ? strerror(errno) : "nothing written");
            return 1;
        }
        left -= (unsigned long long)n;
    }
    shutdown(s, SHUT_WR);
    /* The sink closes once it has read our EOF; a proxy passes that close on. */
    for (;;) {
        ssize_t n = read(s, buf, sizeof(buf));
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "bench-stream: waiting for the sink's close: %s\n", strerror(errno));
            return 1;
        }
    }
    printf("%llu %.6f\n", total, now() - t0);
    close(s);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "sink") == 0)
        return sink(argv[2]);
    if (argc == 4 && strcmp(argv[1], "source") == 0)
        return source(argv[2], argv[3]);
    return usage();
}
