/*
 * Placeholder until the io_uring core lands: lb refuses to run rather than pretend.
 */
#include <stdio.h>

#include "lb/proxy.h"

int lb_proxy_run(struct conf *c, const char *file)
{
    conf_free(c);
    fprintf(stderr, "lb: %s is valid, but this build cannot proxy yet (io_uring core not built)\n",
            file);
    return 1;
}
