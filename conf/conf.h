/*
 * Configuration: the YAML file of ../shared/DESIGN.md loaded into plain C structs.
 *
 * conf_load() parses with libyaml, fills every struct below (missing optional keys get the
 * defaults named next to each field), then runs a validation pass that resolves names into
 * indices. Every problem is reported as "FILE:LINE:COLUMN: message" and all of them (up to
 * CONF_MAX_ERRORS) are collected in one run. A struct conf is immutable once loaded: the
 * proxy builds its runtime generation from it and may free it afterwards.
 *
 * Durations are stored in milliseconds, sizes in bytes. Relative file paths in the file (static
 * dirs, TLS certificates and keys, the access log, the admin socket) are resolved against the
 * directory of the config file and stored resolved; docs/config.md is the reference.
 *
 * The `*_pos` fields say where a key or value was written, so that later stages (a reload, a
 * failed bind) can point people at the line that caused a problem.
 */
#ifndef CONF_CONF_H
#define CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "conf/err.h"

#define CONF_MAX_ERRORS 50
#define CONF_NAME_MAX 64         /* listener, cluster, server and set names, with the NUL */
#define CONF_MAX_FILE (4u << 20) /* larger files are refused: no real config comes close */
#define CONF_MAX_DEPTH 32        /* YAML nesting deeper than this is refused */

/* A place in the source file, 1-based, as shown to people. */
struct conf_pos {
    uint32_t line;
    uint32_t col;
};

struct conf_addr {
    struct sockaddr_storage ss; /* AF_INET or AF_INET6, port in network order */
    socklen_t len;
    char text[64]; /* as written: "127.0.0.1:8080", "[::1]:80" */
};

enum conf_protocol {
    CONF_PROTO_HTTP,
    CONF_PROTO_TCP,
    CONF_PROTO_REDIS, /* RESP: each command goes to the shard (server) owning its key */
};

enum conf_balance {
    CONF_BAL_ROUND_ROBIN, /* smooth weighted round robin (default) */
    CONF_BAL_LEAST_CONN,
    CONF_BAL_RANDOM_TWO,
    CONF_BAL_MAGLEV,
    CONF_BAL_RING_HASH,
};

static inline bool conf_balance_is_hash(enum conf_balance b)
{
    return b == CONF_BAL_MAGLEV || b == CONF_BAL_RING_HASH;
}

enum conf_hash_kind {
    CONF_HASH_NONE,
    CONF_HASH_CLIENT_IP,
    CONF_HASH_HEADER, /* header:NAME */
    CONF_HASH_COOKIE, /* cookie:NAME */
    CONF_HASH_PATH,
    CONF_HASH_URI,
};

struct conf_hash_key {
    enum conf_hash_kind kind;
    char *name; /* header or cookie name; NULL otherwise */
};

enum conf_check {
    CONF_CHECK_NONE, /* default: no active probes */
    CONF_CHECK_TCP,
    CONF_CHECK_HTTP,
    CONF_CHECK_REDIS, /* PING then ROLE on every member: traffic goes to the master */
};

#define CONF_MAX_REPLICAS 8

/* A request body must arrive within timeouts.body plus one second per this many bytes
 * received: slow senders are cut, big uploads at any reasonable speed are not. */
#define CONF_BODY_MIN_RATE 1024

/* admin.http's token: visible ASCII, long enough not to be guessed. */
#define CONF_TOKEN_MIN 16
#define CONF_TOKEN_MAX 256

enum conf_log_level {
    CONF_LOG_ERROR,
    CONF_LOG_WARN,
    CONF_LOG_INFO, /* default */
    CONF_LOG_DEBUG,
};

enum conf_access_log {
    CONF_ACCESS_OFF, /* default */
    CONF_ACCESS_STDERR,
    CONF_ACCESS_FILE,
};

enum conf_access_format {
    CONF_ACCESS_TEXT, /* default: key=value */
    CONF_ACCESS_JSON, /* one JSON object per line */
};

/* HTTP methods as a bit set, for route matching. */
enum conf_method {
    CONF_M_GET = 1u << 0,
    CONF_M_HEAD = 1u << 1,
    CONF_M_POST = 1u << 2,
    CONF_M_PUT = 1u << 3,
    CONF_M_DELETE = 1u << 4,
    CONF_M_OPTIONS = 1u << 5,
    CONF_M_PATCH = 1u << 6,
    CONF_M_CONNECT = 1u << 7,
    CONF_M_TRACE = 1u << 8,
};

struct conf_tls_cert {
    char *cert; /* PEM chain, resolved path */
    char *key;  /* PEM private key, resolved path */
    char *ocsp; /* optional DER OCSP response to staple; NULL when unset */
    struct conf_pos pos, cert_pos, key_pos, ocsp_pos;
};

enum conf_tls_version {
    CONF_TLS_1_2, /* default */
    CONF_TLS_1_3,
};

#define CONF_TLS_MAX_ALPN 4

/* TLS termination on a listener. */
struct conf_tls {
    bool enabled;
    struct conf_tls_cert *certs;
    size_t ncerts;
    enum conf_tls_version min_version; /* default tls1.2 */
    char *alpn[CONF_TLS_MAX_ALPN];     /* protocol ids in order of preference; default http/1.1 */
    size_t nalpn;
    bool session_tickets; /* default on */
    char *client_ca;      /* mutual TLS: CA bundle, resolved; NULL = off */
    struct conf_pos pos, client_ca_pos, alpn_pos;
};

/* TLS from lb to a cluster's servers. */
struct conf_upstream_tls {
    bool enabled;
    char *ca;    /* CA bundle, resolved; NULL: the system's default store */
    bool verify; /* default on: the server's chain and name must check */
    char *sni;   /* server name sent and verified; NULL: none sent, the address is verified */
    struct conf_pos pos, ca_pos, sni_pos;
};

struct conf_server {
    char *name;
    struct conf_addr addr;
    uint32_t weight; /* 1..256, default 1 */
    bool backup;     /* default false: gets traffic only while no primary is usable */
    struct conf_addr replicas[CONF_MAX_REPLICAS]; /* check: redis: members that may be master */
    size_t nreplicas;
    struct conf_pos replicas_pos;
    struct conf_pos pos;      /* the server's mapping */
    struct conf_pos addr_pos; /* its address value */
};

struct conf_health {
    enum conf_check check; /* default none */
    char *path;            /* http: default "/healthz" */
    char *host;            /* http Host header; default the server address */
    int expect_status;     /* http: default 200 */
    char *expect_body;     /* optional substring of the body; NULL when unset */
    uint64_t interval_ms;  /* default 2s */
    uint64_t timeout_ms;   /* default 1s */
    uint32_t rise;         /* default 2 */
    uint32_t fall;         /* default 3 */
};

struct conf_passive {
    bool enabled;                  /* true when the passive: block is present */
    uint32_t consecutive_failures; /* default 5 */
    uint64_t ejection_ms;          /* default 10s; doubles on repeats */
    uint64_t max_ejection_ms;      /* default 5m */
    uint32_t max_ejected_percent;  /* default 50 */
};

struct conf_cluster {
    char *name;
    enum conf_balance balance;
    double bounded_load; /* 0 = off; else > 1.0, hash balancers only */
    uint32_t table_size; /* maglev table size, prime >= 100 x servers; default 65537,
                            or the smallest such prime above it for big clusters */
    struct conf_server *servers;
    size_t nservers;
    struct conf_health health;
    struct conf_passive passive;
    uint64_t connect_timeout_ms;         /* default 1s */
    uint64_t response_timeout_ms;        /* default 30s */
    uint64_t idle_timeout_ms;            /* default 60s: pooled backend connections */
    uint32_t retries;                    /* default 2 */
    uint64_t slow_start_ms;              /* default 0 = off */
    uint32_t max_connections_per_server; /* default 0 = unlimited */
    struct conf_upstream_tls tls;        /* off unless a tls: block is given */
    char *password;                      /* Redis AUTH on every connection to its servers */
    struct conf_pos pos;                 /* the cluster's name (its key under clusters:) */
};

struct conf_cache {
    bool enabled;
    bool debug_header;   /* X-Cache: HIT|MISS|... on answers */
    uint64_t ttl_ms;     /* heuristic freshness when the origin gives none; default 0 */
    uint64_t max_ttl_ms; /* cap on any freshness; default 0 = none */
    uint64_t max_bytes;  /* per worker, default 64m */
    char *shared;        /* shared: the name of a caches: entry (the L2 level), or NULL */
    int shared_idx;      /* into conf.caches after validation; -1: none */
    struct conf_pos shared_pos;
};

/* One caches: entry: a shared (L2) response cache sharded over Redis servers (lb/cache/l2.h). */
struct conf_shared_cache {
    char *name;
    struct conf_addr *servers; /* the shards, in the order written (their hash names) */
    size_t nservers;
    uint64_t max_object; /* default 1m: a longer answer is not stored in L2 */
    uint64_t timeout_ms; /* default 100ms: a shard slower than this is skipped */
    uint64_t lock_ms;    /* default 2s: how long a miss holds the fill lock, and the most
                            another instance waits on it */
    int cluster_idx;     /* its lb:cache:NAME cluster, after conf_load */
    struct conf_pos pos; /* its name (its key under caches:) */
};

#define CONF_ENQ_MAX_HEADERS 16

struct conf_enqueue {
    char *redis_list;
    uint64_t max_length;                 /* default 100000 */
    uint64_t max_body;                   /* default 64k: a longer request body is answered 413 */
    char *headers[CONF_ENQ_MAX_HEADERS]; /* header names kept in the entry, lowercased;
                                            Content-Type and X-Forwarded-For always are */
    size_t nheaders;
};

/* redirect: { scheme, host, port, code }: the same URI somewhere else. */
enum conf_scheme {
    CONF_SCHEME_SAME, /* the listener's own: https with tls:, else http */
    CONF_SCHEME_HTTP,
    CONF_SCHEME_HTTPS,
};

struct conf_redirect {
    enum conf_scheme scheme;
    char *host;    /* NULL: the request's Host (its port dropped) */
    uint32_t port; /* 0: the scheme's default port (80, 443), not written in Location */
    int code;      /* 301, 302, 307 or 308 (default: 308, which keeps the method) */
};

enum conf_action {
    CONF_ACT_CLUSTER,
    CONF_ACT_STATIC,
    CONF_ACT_ENQUEUE,
    CONF_ACT_REDIRECT,
};

struct conf_route {
    bool has_match;    /* false: the default route, matches everything */
    char *host;        /* exact host, stored lowercased, no port; NULL = any */
    char *path_prefix; /* NULL = any */
    uint32_t methods;  /* enum conf_method bits; 0 = any */
    enum conf_action action;
    char *target;                  /* cluster or static set name, as written */
    int target_idx;                /* index into conf.clusters or conf.statics after validation */
    struct conf_hash_key hash_key; /* cluster routes; client_ip when the cluster hashes and
                                      the route names no key; NONE otherwise */
    struct conf_cache cache;
    struct conf_enqueue enqueue;
    struct conf_redirect redirect;
    struct conf_pos pos;          /* the route's mapping */
    struct conf_pos target_pos;   /* the cluster/static/enqueue value */
    struct conf_pos hash_key_pos; /* the hash_key value, when written */
};

struct conf_listener {
    char *name;
    struct conf_addr bind;
    enum conf_protocol protocol; /* default http */
    struct conf_tls tls;
    uint64_t header_timeout_ms;  /* default 10s */
    uint64_t idle_timeout_ms;    /* default 60s */
    uint64_t body_timeout_ms;    /* default 30s: a request body's grace, see CONF_BODY_MIN_RATE */
    uint64_t max_header_bytes;   /* default 16k */
    uint64_t max_body_bytes;     /* default 10m; 0 = unlimited */
    uint32_t per_ip_connections; /* open connections per client address; 0 = unlimited */
    uint32_t per_ip_rate;        /* requests (tcp: connections) a second per address; 0 = off */
    struct conf_route *routes;   /* http */
    size_t nroutes;
    char *cluster;                 /* tcp, redis: the cluster, as written */
    int cluster_idx;               /* tcp, redis: after validation */
    struct conf_hash_key hash_key; /* tcp: client_ip only (the default on a hash cluster) */
    struct conf_pos pos;           /* the listener's mapping */
    struct conf_pos name_pos;
    struct conf_pos bind_pos;
    struct conf_pos cluster_pos;
    struct conf_pos hash_key_pos;
};

struct conf_static {
    char *name;
    char *dir;               /* resolved; must be a directory at load time */
    char *fallback;          /* cluster name or NULL */
    int fallback_idx;        /* -1 when none */
    uint64_t max_age_ms;     /* Cache-Control max-age; default 60s */
    uint64_t max_file_bytes; /* default 16m */
    struct conf_pos pos;     /* the set's name (its key under static:) */
    struct conf_pos fallback_pos;
};

struct conf_global {
    uint32_t workers;         /* 0 = auto: one per core */
    uint32_t max_connections; /* default 100000, whole process */
    char *admin_socket;       /* default "/tmp/lb.sock"; NULL never */
    bool has_metrics;
    struct conf_addr metrics_listen;
    struct conf_pos metrics_pos;
    bool has_admin_http; /* admin.http: the status page with drain buttons */
    struct conf_addr admin_http_listen;
    struct conf_pos admin_http_pos;
    char *admin_http_token_file;
    char *admin_http_token; /* its first line, CONF_TOKEN_MIN..CONF_TOKEN_MAX chars */
    enum conf_log_level log_level;
    enum conf_access_log access;
    char *access_file;            /* when access == CONF_ACCESS_FILE */
    enum conf_access_format access_format;
    char **redis_nodes;           /* host:port strings, each checked by conf_parse_addr */
    size_t nredis_nodes;          /* 0: no redis: block */
    char *redis_instance;         /* NULL: lb derives one from the host name */
    char *redis_prefix;           /* default "lb:": lb's own keys start with it */
    uint64_t redis_timeout_ms;    /* default 250ms: a slower answer counts as Redis down */
    char *redis_password;         /* NULL: no AUTH */
    uint64_t shutdown_timeout_ms; /* default 10s: how long a stop waits for connections */
};

struct conf {
    char *file;
    struct conf_global global;
    struct conf_listener *listeners;
    size_t nlisteners;
    struct conf_cluster *clusters;
    size_t nclusters;
    struct conf_static *statics;
    size_t nstatics;
    int redis_cluster; /* global.redis as clusters[redis_cluster] (conf/redis.c), or -1 */
    struct conf_shared_cache *caches; /* caches: each also a cluster of lb's own */
    size_t ncaches;
};

/* The name of the cluster lb makes of global.redis: one no config can give. */
#define CONF_REDIS_CLUSTER "lb:redis"
/* The clusters lb makes of caches: entries: this prefix, then the cache's name. */
#define CONF_CACHE_CLUSTER_PREFIX "lb:cache:"

/* One diagnostic; conf_load collects them in order of position. */
struct conf_diag {
    struct conf_pos pos;
    char msg[240];
};

struct conf_diags {
    struct conf_diag items[CONF_MAX_ERRORS];
    size_t n;
    size_t dropped; /* errors beyond the cap */
};

/*
 * Loads and validates FILE. Returns a conf the caller frees with conf_free(), or NULL with
 * every problem in @d (which must not be NULL).
 */
struct conf *conf_load(const char *file, struct conf_diags *d);

/* Same, from memory; @name is what error messages call the file, and relative paths in the
 * config are resolved against its directory part. @buf need not be NUL-terminated. */
struct conf *conf_load_buf(const char *name, const char *buf, size_t len, struct conf_diags *d);

/* Writes every diagnostic as "FILE:LINE:COLUMN: message\n" to @out (a diagnostic without a
 * position, such as an unreadable file, as "FILE: message"), then "FILE: N more errors" when
 * some were dropped. */
void conf_diags_print(const struct conf_diags *d, const char *file, FILE *out);

void conf_free(struct conf *c);

/*
 * Calls @fn with the path of every key the loader accepts, each once: "global.admin.socket",
 * "listeners[].routes[].match.host", "clusters.NAME.servers[].weight" ([] is any list item,
 * NAME any cluster or set name). A mapping's key comes before the keys inside it. Stops at the
 * first non-zero return of @fn and returns it; 0 when every key was seen. With @ntables not
 * NULL, the number of distinct key tables walked is stored there (the drift test compares it
 * with the tables in conf/). lb.yaml(5) documents exactly these keys.
 */
int conf_keys_each(int (*fn)(const char *path, void *arg), void *arg, size_t *ntables);

/*
 * Parsers for scalar forms, shared with lbctl and the admin socket. 0, -EINVAL (malformed) or
 * -ERANGE (overflow, port outside 1..65535). Durations: an unsigned integer and a unit (ms, s,
 * m, h), or a bare 0. Sizes: an unsigned integer, optionally followed by k, m or g (x1024).
 * Addresses: IPv4:port, [IPv6]:port or localhost:port (127.0.0.1); no DNS.
 */
int conf_parse_duration(const char *s, uint64_t *ms);
int conf_parse_size(const char *s, uint64_t *bytes);
int conf_parse_addr(const char *s, struct conf_addr *out);

/* Names for enums, for logs and status output. */
const char *conf_balance_name(enum conf_balance b);
const char *conf_check_name(enum conf_check c);
const char *conf_protocol_name(enum conf_protocol p);
const char *conf_hash_kind_name(enum conf_hash_kind k);

/* Index of a cluster by name, or -1. */
int conf_cluster_find(const struct conf *c, const char *name);

#endif
