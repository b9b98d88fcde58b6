/*
 * key=value log lines with a per-thread token bucket; see log.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lb/core/log.h"

enum conf_log_level lb_log_level = CONF_LOG_INFO;

/* Where stderr pointed at startup when it was a regular file; "" otherwise. Written once by
 * lb_log_init before any thread starts, read by the control thread only. */
static char err_path[PATH_MAX];

static __thread int log_worker = -1;
static __thread double log_tokens = LB_LOG_BURST;
static __thread struct timespec log_last;
static __thread unsigned long log_dropped;

static const char *const level_names[] = {
    [CONF_LOG_ERROR] = "error",
    [CONF_LOG_WARN] = "warn",
    [CONF_LOG_INFO] = "info",
    [CONF_LOG_DEBUG] = "debug",
};

void lb_log_set_thread(int worker)
{
    log_worker = worker;
}

/* Refills the bucket from the time passed; returns whether a line may be written. */
static int log_take_token(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    if (log_last.tv_sec) {
        double dt = (double)(now.tv_sec - log_last.tv_sec) +
                    (double)(now.tv_nsec - log_last.tv_nsec) / 1e9;
        log_tokens += dt * LB_LOG_RATE;
        if (log_tokens > LB_LOG_BURST)
            log_tokens = LB_LOG_BURST;
    }
    log_last = now;
    if (log_tokens < 1.0) {
        log_dropped++;
        return 0;
    }
    log_tokens -= 1.0;
    return 1;
}

void lb_log_at(enum conf_log_level lvl, const char *msg, const char *fmt, ...)
{
    if (!log_take_token())
        return;

    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[lvl]);
    if (log_worker >= 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " worker=%d", log_worker);
    else
        n += snprintf(line + n, sizeof(line) - (size_t)n, " thread=control");
    n += snprintf(line + n, sizeof(line) - (size_t)n, " msg=\"%s\"", msg);
    if (fmt[0] && n < (int)sizeof(line) - 1) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    if (log_dropped && n < (int)sizeof(line))
        n += snprintf(line + n, sizeof(line) - (size_t)n, " suppressed=%lu", log_dropped);
    log_dropped = 0;
    if (n >= (int)sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One write per line so lines from different threads never interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void lb_log_init(void)
{
    struct stat st;
    err_path[0] = 0;
    if (fstat(STDERR_FILENO, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    ssize_t n = readlink("/proc/self/fd/2", err_path, sizeof(err_path) - 1);
    if (n <= 0 || err_path[0] != '/' || (n > 10 && !memcmp(err_path + n - 10, " (deleted)", 10))) {
        err_path[0] = 0;
        return;
    }
    err_path[n] = 0;
}

/*
 * dup2 swaps the file under @fd in one step: a thread's write() lands whole in either the old
 * file or the new one, so no line is lost, torn or written twice, and the threads that write
 * to @fd need not know the file changed.
 */
int lb_log_reopen_fd(int fd, const char *path)
{
    int nfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (nfd < 0)
        return -errno;
    int rc = 0;
    if (nfd != fd && dup3(nfd, fd, fd == STDERR_FILENO ? 0 : O_CLOEXEC) < 0)
        rc = -errno;
    if (nfd != fd)
        close(nfd);
    return rc;
}

int lb_log_reopen(void)
{
    if (!err_path[0])
        return 0;
    int rc = lb_log_reopen_fd(STDERR_FILENO, err_path);
    if (rc < 0)
        lb_error("cannot reopen the error log; still writing to the old file", "path=%s err=\"%s\"",
                 err_path, strerror(-rc));
    return rc;
}
