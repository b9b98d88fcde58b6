/*
 * Routing of parsed HTTP requests (lb/route/route.c): which route of a listener takes a request,
 * and the hash key it carries for the hash balancers. Shared by the data path (lb/http/proxy.c)
 * and by the admin socket's `explain`, so both answer the same way.
 */
#ifndef ROUTE_H
#define ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "lb/http/h1.h"

/* CONF_M_* bit of a parsed method (0 for methods routes cannot name). */
uint32_t route_method_bit(enum http_method m);

/*
 * The first route of @l that takes @req (parsed from @buf), or -1. When none does, *@allowed
 * gets the methods of the routes that matched but for the method (non-zero: answer 405 with
 * Allow), else 0 (404). Hosts compare without the port and case-insensitively.
 */
int route_match(const struct conf_listener *l, const char *buf, const struct http_req *req,
                   uint32_t *allowed);

/*
 * The hash of @req's key for route @r (hash_key header:NAME, cookie:NAME, path, uri,
 * client_ip). A missing header or cookie, and client_ip, give @client_hash, so that such
 * clients still stick to one server. @v and @vl get the key's text (NULL when the client
 * address was used); both may be NULL.
 */
uint64_t route_key(const struct conf_route *r, const char *buf, const struct http_req *req,
                      uint64_t client_hash, const char **v, size_t *vl);

#endif
