/*
 * The one error type every module shares. conf/ is the bottom of the dependency graph
 * (lb, health, static and tools all read configuration), so the type lives here.
 *
 * Functions return 0 or -errno; when a caller wants a sentence for a human it passes a
 * struct lb_err, and the callee writes one line into it. A NULL @err is always allowed.
 */
#ifndef CONF_ERR_H
#define CONF_ERR_H

#include <stdarg.h>
#include <stdio.h>

struct lb_err {
    char msg[256];
};

__attribute__((format(printf, 2, 3))) static inline void lb_err_set(struct lb_err *err,
                                                                     const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

#endif
