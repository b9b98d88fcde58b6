/*
 * The running proxy: generations, their workers, startup and shutdown.
 */
#ifndef LB_PROXY_H
#define LB_PROXY_H

#include <stdbool.h>

#include "conf/conf.h"

struct lb_runtime;
struct lb_ctl;

/* Runs until SIGTERM/SIGINT and a bounded drain. Takes @c. Returns the process exit code. */
int lb_proxy_run(struct conf *c, const char *file);

/*
 * Generations, for the control thread (lb/core/control.c).
 *
 * build: one generation from @c (taken, freed on failure): snapshot sets, clusters, listening
 * sockets (@prev's own socket for an address it already has, so nothing queued on it is lost),
 * health checker and workers, none started; @prev's server state carried over. @tmpl gives
 * the startup probe's findings; @prev is NULL at the first start. NULL with @err on failure.
 */
struct lb_runtime *lb_proxy_build(struct conf *c, const char *file,
                                  const struct lb_runtime *tmpl, const struct lb_runtime *prev,
                                  struct lb_err *err);
/* Starts the workers (which inherit the caller's blocked signals), then the probes on @ctl.
 * On failure rt->stop is 2 and -errno returned with @err. */
int lb_proxy_start(struct lb_runtime *rt, struct lb_ctl *ctl, struct lb_err *err);
/* SIGUSR1: reopens @rt's access log file by its path (rotation); the workers keep writing to
 * the same descriptor. Returns 0 (also with no access log file) or -errno, logged. */
int lb_proxy_reopen_logs(struct lb_runtime *rt);
/* True once every worker of @rt has finished (joins them; never waits). */
bool lb_proxy_reap(struct lb_runtime *rt);
/* Joins the workers, frees @rt. Its probes must be drained (rt->hc_tag 0). */
void lb_proxy_destroy(struct lb_runtime *rt);

#endif
