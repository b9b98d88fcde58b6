/*
 * The running proxy: workers, the control thread, signals and shutdown.
 */
#ifndef LB_PROXY_H
#define LB_PROXY_H

#include "conf/conf.h"

/* Runs until SIGTERM/SIGINT and a bounded drain. Takes @c. Returns the process exit code. */
int lb_proxy_run(struct conf *c, const char *file);

#endif
