/* lbctl queue stats (tools/ctl_queue.c). */
#ifndef TOOLS_CTL_QUEUE_H
#define TOOLS_CTL_QUEUE_H

#include <stdbool.h>

struct ctl_json;

/* Prints the queues of lb's `queues` answer @v (only @only when not NULL), read from Redis.
 * Returns the exit status: 0, or 1 after reporting an error. */
int ctl_queue_stats(const struct ctl_json *v, const char *only, bool json);

#endif
