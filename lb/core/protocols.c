/*
 * The protocol table (lb/core/protocols.h).
 */
#include <pthread.h>

#include "lb/core/protocols.h"
#include "lb/http/http.h"
#include "lb/io/worker.h"
#include "lb/l4/l4.h"
#include "lb/redis/redis.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void register_all(void)
{
    io_module_register(&http_module);
    io_module_register(&rds_module);
}

void lb_protocols_init(void)
{
    pthread_once(&once, register_all);
}

const struct io_conn_ops *lb_listener_ops(const struct conf_listener *l)
{
    switch (l->protocol) {
    case CONF_PROTO_HTTP:
        return &http_client_ops;
    case CONF_PROTO_REDIS:
        return &rds_client_ops;
    default:
        return &l4_ops;
    }
}
