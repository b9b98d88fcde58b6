/*
 * lb's side of health checking: builds the health/ checker for the running configuration
 * and turns its decisions into the shared server table (CL_SRV_F_DOWN, CL_SRV_F_EJECTED,
 * the effective weight during slow start) and into log lines. health/ never sees lb's types.
 */
#ifndef LB_HEALTH_H
#define LB_HEALTH_H

#include "conf/err.h"

struct lb_runtime;

/* Builds rt->hc (no thread yet) so that workers, started next, can report passive results
 * through it. Call after the clusters are built. Returns 0 or -errno with a message in @err. */
int lb_health_init(struct lb_runtime *rt, struct lb_err *err);

/* Starts the health thread (when some cluster has checks or passive detection). Call after
 * the workers started, with the control thread's signals blocked. 0 or -errno with @err. */
int lb_health_start(struct lb_runtime *rt, struct lb_err *err);

/* Stops the thread and frees rt->hc; call once no worker runs, before the clusters go. */
void lb_health_free(struct lb_runtime *rt);

#endif
