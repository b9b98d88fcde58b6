/*
 * Private to conf/: the table-driven loader's machinery, shared by load.c (the scalar setters,
 * global: and the top level), load_listener.c (listeners, routes), load_cluster.c (clusters,
 * servers) and load_static.c (static sets). A table lists, for one YAML mapping, each key's
 * name, the setter that parses its value and where in the C struct the value goes, in the
 * manner of twemproxy's conf loader.
 */
#ifndef CONF_LOAD_H
#define CONF_LOAD_H

#include "conf/internal.h"

struct conf_key;

/* Parses @n into @field (the table's base plus the key's offset). Returns 0, or -EINVAL after
 * reporting the problem; the field then keeps its default. */
typedef int conf_set_fn(struct conf_ctx *x, const struct conf_node *n, void *field,
                        const struct conf_key *k);

struct conf_key {
    const char *name;
    conf_set_fn *set;
    size_t off;
    const void *arg;  /* setter-specific: a sub-table, a list of enum names */
    int64_t min, max; /* numbers, durations (ms) and sizes (bytes) */
    unsigned flags;
};

#define CONF_K_REQUIRED 0x1 /* conf_map reports the key when it is missing */

#define CONF_MAX_KEYS 16 /* keys in one table */

/* What conf_map saw of each table entry, by index in the table. */
struct conf_seen {
    const struct conf_node *key; /* NULL: not in the file */
    const struct conf_node *val;
    bool bad; /* the value was refused (and reported) */
};

/* Enum names for conf_set_enum, terminated by a NULL name. */
struct conf_enum_name {
    const char *name;
    int value;
};

/*
 * Walks the mapping @n: each known key's setter gets @base + its offset; unknown and duplicate
 * keys are reported (with a suggestion for near misses), then missing required keys. @seen, if
 * not NULL, has room for every entry of @tab. Returns 0, or -EINVAL when @n is not a mapping.
 */
int conf_map(struct conf_ctx *x, const struct conf_node *n, void *base, const struct conf_key *tab,
             struct conf_seen *seen);

/* The entry of @seen for the key called @name in @tab (which must have it). */
const struct conf_seen *conf_seen_get(const struct conf_key *tab, const struct conf_seen *seen,
                                      const char *name);

/* Reports @n unless it has kind @kind; @what says what was expected ("a list of servers"). */
bool conf_expect(struct conf_ctx *x, const struct conf_node *n, enum conf_node_kind kind,
                 const char *what);

/* Checks a listener, cluster, server or set name: letters, digits, '_', '-', '.', starting
 * with a letter or digit, shorter than CONF_NAME_MAX. Returns 0 or -EINVAL (reported). */
int conf_check_name_at(struct conf_ctx *x, const struct conf_node *n, const char *what);

/* For clusters: and static:, which map names to objects: the key @k's name for the object (a
 * new string), or NULL when it is not a valid name (reported). */
char *conf_object_name(struct conf_ctx *x, const struct conf_node *k, const char *what);

/* Calls @report for each item whose key compares equal to an earlier item's (by index).
 * O(n log n). Returns 0 or -ENOMEM. */
int conf_find_dups(size_t n, int (*cmp)(size_t a, size_t b, void *arg),
                   void (*report)(size_t dup, size_t first, void *arg), void *arg);

/* Orders addresses by family, port and address: equal means the same socket address. */
int conf_addr_cmp(const struct conf_addr *a, const struct conf_addr *b);

/* Formats a duration or size the way a config would write it ("250ms", "16k"). */
const char *conf_fmt_duration(char *buf, size_t size, uint64_t ms);
const char *conf_fmt_size(char *buf, size_t size, uint64_t bytes);

/* Setters, for the tables in load*.c. */
conf_set_fn conf_set_str;      /* char *: any non-empty text without control characters */
conf_set_fn conf_set_text;     /* char *: any non-empty text */
conf_set_fn conf_set_name;     /* char *: a name, see conf_check_name_at */
conf_set_fn conf_set_u32;      /* uint32_t in min..max */
conf_set_fn conf_set_int;      /* int in min..max */
conf_set_fn conf_set_u64;      /* uint64_t in min..max */
conf_set_fn conf_set_bool;     /* bool: true or false */
conf_set_fn conf_set_onoff;    /* bool: on, off, true or false */
conf_set_fn conf_set_duration; /* uint64_t ms in min..max */
conf_set_fn conf_set_size;     /* uint64_t bytes in min..max */
conf_set_fn conf_set_addr;     /* struct conf_addr */
conf_set_fn conf_set_enum;     /* an enum, names in arg */
conf_set_fn conf_set_map;      /* a nested mapping, table in arg, same base */
conf_set_fn conf_set_file;     /* char *: a readable regular file, resolved */
conf_set_fn conf_set_dir;      /* char *: an existing directory, resolved */
conf_set_fn conf_set_url_path; /* char *: starts with '/' */

/* A table that a setter of its own passes to conf_map (not conf_set_map, whose sub-tables
 * conf_keys_each() finds by itself), with the path of the mapping it describes: "" for the
 * top level, "listeners[]" for each listener, "clusters.NAME" for each cluster. Each load*.c
 * lists its own; conf/keys.c walks them for `lb.yaml(5)`'s drift test. */
struct conf_key_root {
    const char *path;
    const struct conf_key *tab;
};
extern const struct conf_key_root conf_roots_global[], conf_roots_listener[], conf_roots_cluster[],
    conf_roots_static[], conf_roots_admin[];

/* The top-level sections that live in load_listener.c, load_cluster.c and load_static.c; each
 * takes the struct conf as base. */
conf_set_fn conf_set_listeners;
conf_set_fn conf_set_clusters;
conf_set_fn conf_set_statics;
conf_set_fn conf_set_admin_http;   /* global.admin.http (conf/load_admin.c) */
conf_set_fn conf_set_caches;       /* caches: (conf/load_caches.c) */
conf_set_fn conf_set_cache_shared; /* a route's cache.shared: a name, and where it is written */
extern const struct conf_key_root conf_roots_caches[];

#endif
