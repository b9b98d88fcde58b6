/*
 * Republishing snapshot sets at run time (lb/core/snapshots.c).
 */
#ifndef LB_SNAPSHOTS_H
#define LB_SNAPSHOTS_H

#include "conf/err.h"

struct lb_runtime;

/*
 * Loads set @name (NULL: every set) from its directory again and publishes it. Returns 0;
 * -ENOENT when no set has that name (the names are listed in @err); -EIO when a set failed
 * to load (its published set stays; the reason is in @err and in the log). Control thread.
 */
int lb_snapshots_reload(struct lb_runtime *rt, const char *name, struct lb_err *err);

#endif
