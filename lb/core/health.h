/*
 * lb's side of health checking: builds the health/ checker for the running configuration
 * and turns its decisions into the shared server table (CL_SRV_F_DOWN, CL_SRV_F_EJECTED,
 * the effective weight during slow start) and into log lines. health/ never sees lb's types.
 */
#ifndef LB_HEALTH_H
#define LB_HEALTH_H

#include "conf/err.h"

struct lb_runtime;
struct lb_ctl;

/* Builds rt->hc (no probes yet) so that workers, started next, can report passive results
 * through it. Call after the clusters are built. Returns 0 or -errno with a message in @err. */
int lb_health_init(struct lb_runtime *rt, struct lb_err *err);

/* Runs rt->hc's probe engine on the control loop (when some cluster has checks or passive
 * detection), under rt->hc_tag. Call after the workers started. 0 or -errno with @err. */
int lb_health_start(struct lb_runtime *rt, struct lb_ctl *ctl, struct lb_err *err);

/* Stops rt's probes: no server state changes after it returns. rt->hc_tag turns
 * LB_CTL_TAG_NONE once the engine's last completions are in. Safe when not started. */
void lb_health_stop(struct lb_runtime *rt, struct lb_ctl *ctl);

/* Frees rt->hc: once no worker runs and rt->hc_tag is LB_CTL_TAG_NONE, before the clusters
 * go. */
void lb_health_free(struct lb_runtime *rt);

#endif
