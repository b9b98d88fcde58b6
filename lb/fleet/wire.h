/*
 * Fleet state in Redis (lb/fleet): the text lb writes there and reads back. Pure functions
 * over caller buffers, written to be fuzzed: whatever another process wrote under the prefix
 * is parsed strictly, and anything malformed or foreign is refused, never applied.
 *
 *   PREFIX fleet:state         hash   field "drain CLUSTER SERVER" or "weight CLUSTER SERVER"
 *                                     value "T INSTANCE V"
 *   PREFIX fleet:events        channel "drain|weight CLUSTER SERVER T INSTANCE V", and
 *                                     "invalidate INSTANCE HOST TARGET" (a cached URI that
 *                                     an unsafe method changed: see struct fleet_inval)
 *   PREFIX fleet:ack:T         set    the instances that applied change T
 *   PREFIX fleet:instances     set    the names of the instances that sent a heartbeat
 *   PREFIX fleet:instance:NAME string (with a TTL) "lb1 NAME STARTED_MS PID SENT_MS\n" then
 *                                     one line per server "CLUSTER SERVER STATE ACTIVE\n"
 *
 * T is the change's Unix time in milliseconds at the instance that made it; the newer change
 * of a server wins (ties: the greater instance name). V is 0 or 1 for a drain, 1..256 for a
 * weight. Names are conf names: [A-Za-z0-9][A-Za-z0-9_.-]*, under CONF_NAME_MAX bytes.
 */
#ifndef FLEET_WIRE_H
#define FLEET_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

enum fleet_kind {
    FLEET_DRAIN,  /* V: 1 drained, 0 undrained */
    FLEET_WEIGHT, /* V: the operator's weight, 1..256 */
};

struct fleet_change {
    enum fleet_kind kind;
    char cluster[CONF_NAME_MAX], server[CONF_NAME_MAX], instance[CONF_NAME_MAX];
    uint64_t t; /* Unix ms at the instance that made it */
    uint32_t value;
};

/* True when @s (@n bytes) is a conf name. */
bool fleet_name_ok(const char *s, size_t n);

/* The hash field of @c into @buf. Returns its length, or -1 when it does not fit. */
int fleet_field_format(const struct fleet_change *c, char *buf, size_t cap);
/* The hash value "T INSTANCE V". */
int fleet_value_format(const struct fleet_change *c, char *buf, size_t cap);
/* The event "KIND CLUSTER SERVER T INSTANCE V". */
int fleet_event_format(const struct fleet_change *c, char *buf, size_t cap);

/* Parses a field and its value (each @len bytes, no NUL needed) into @c. Returns 0, or -1
 * with the reason in @why (static text). */
int fleet_state_parse(const char *field, size_t flen, const char *value, size_t vlen,
                      struct fleet_change *c, const char **why);
/* Parses an event into @c: 0, or -1 with @why. */
int fleet_event_parse(const char *msg, size_t len, struct fleet_change *c, const char **why);

/* True when @a is newer than @b (same server and kind): later T, or the same T from a greater
 * instance name. */
bool fleet_newer(const struct fleet_change *a, const struct fleet_change *b);

/*
 * A cached URI that a successful unsafe method (POST, PUT, DELETE, PATCH) changed on
 * INSTANCE: every other instance removes HOST + TARGET from its L1 caches, all variants, as
 * lbctl cache purge TARGET --host HOST would. HOST: 1..255 bytes of letters, digits and
 * "-._:[]" (the request's Host as sent); TARGET: 1..2047 bytes of visible ASCII beginning
 * with '/', query included. Never a prefix: a '*' in TARGET is an ordinary byte.
 */
#define FLEET_INVAL_HOST_MAX 256
#define FLEET_INVAL_TARGET_MAX 2048

struct fleet_inval {
    char instance[CONF_NAME_MAX];
    char host[FLEET_INVAL_HOST_MAX];
    char target[FLEET_INVAL_TARGET_MAX];
    uint32_t host_len, target_len;
};

/* True when @host and @target fit an invalidate event (see above). */
bool fleet_inval_ok(const char *host, size_t hlen, const char *target, size_t tlen);
/* The event "invalidate INSTANCE HOST TARGET" into @buf: its length, or -1. */
int fleet_inval_format(const struct fleet_inval *v, char *buf, size_t cap);
/* True when @msg (@len bytes) is an invalidate event, well formed or not. */
bool fleet_is_inval(const char *msg, size_t len);
/* Parses an invalidate event into @v: 0, or -1 with @why. */
int fleet_inval_parse(const char *msg, size_t len, struct fleet_inval *v, const char **why);

/* One server as an instance sees it, in its heartbeat. */
struct fleet_view {
    char cluster[CONF_NAME_MAX], server[CONF_NAME_MAX];
    char state[16]; /* up, down, draining, ejected, backup */
    uint32_t active;
};

/* A heartbeat's first line. */
struct fleet_member {
    char name[CONF_NAME_MAX];
    uint64_t started_ms, sent_ms; /* Unix ms */
    uint32_t pid;
};

/* Parses a heartbeat: its first line into @m, then up to @max server lines into @v (*@nv
 * set). Returns 0, or -1 with @why. */
int fleet_heartbeat_parse(const char *s, size_t len, struct fleet_member *m, struct fleet_view *v,
                          size_t max, size_t *nv, const char **why);

#endif
