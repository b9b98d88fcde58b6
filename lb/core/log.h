/*
 * Logging: one key=value line per event on stderr, with a level, for people and for grep.
 *
 *   ts=2026-11-25T10:00:00.123Z level=warn worker=1 msg="connect failed" server=app1 err=ECONNREFUSED
 *
 * Lines are rate-limited per thread (a token bucket: LB_LOG_BURST lines, refilled at
 * LB_LOG_RATE per second) so a storm of failures cannot turn lb into a log writer; the
 * number of lines dropped is reported on the next line that gets through.
 *
 * SIGUSR1 reopens stderr by its path when it was a file at startup (log rotation).
 */
#ifndef LB_LOG_H
#define LB_LOG_H

#include "conf/conf.h"

#define LB_LOG_RATE 100
#define LB_LOG_BURST 200

extern enum conf_log_level lb_log_level;

/* Remembers the file stderr points to, when it is a regular file, for lb_log_reopen. Call once
 * at startup, before any thread. */
void lb_log_init(void);

/* Reopens the error log (stderr) by the path it had at startup, when it was a file: after
 * logrotate moved it away (SIGUSR1). Returns 0 (also when stderr is no file) or -errno, and
 * logs the failure; stderr then stays on the old file. Control thread only. */
int lb_log_reopen(void);

/* Opens @path for appending and puts it in place of @fd atomically (dup3): writers of @fd go
 * on without noticing. Returns 0 or -errno, @fd unchanged then. */
int lb_log_reopen_fd(int fd, const char *path);

/* Sets the calling thread's worker id shown in each line (-1: the control thread). */
void lb_log_set_thread(int worker);

/* @fmt continues the line after "msg=...": pass the message, then key=value pairs. */
__attribute__((format(printf, 3, 4))) void lb_log_at(enum conf_log_level lvl, const char *msg,
                                                      const char *fmt, ...);

#define lb_log(lvl, msg, ...)                                                                      \
    do {                                                                                           \
        if ((lvl) <= lb_log_level)                                                                 \
            lb_log_at((lvl), (msg), "" __VA_ARGS__);                                               \
    } while (0)
#define lb_error(msg, ...) lb_log(CONF_LOG_ERROR, msg, __VA_ARGS__)
#define lb_warn(msg, ...) lb_log(CONF_LOG_WARN, msg, __VA_ARGS__)
#define lb_info(msg, ...) lb_log(CONF_LOG_INFO, msg, __VA_ARGS__)
#define lb_debug(msg, ...) lb_log(CONF_LOG_DEBUG, msg, __VA_ARGS__)

#endif
