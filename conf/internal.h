/*
 * Private to conf/: the YAML node tree (tree.c), the load context shared by the loader
 * (load.c, load_*.c) and the validator (validate.c), and diagnostic helpers (conf.c).
 * Nothing outside conf/ includes this file.
 */
#ifndef CONF_INTERNAL_H
#define CONF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conf/conf.h"

#define CONF_MAX_NODES 250000 /* values in one file; keeps a hostile file's tree bounded */

enum conf_node_kind {
    CONF_NODE_SCALAR,
    CONF_NODE_MAP,
    CONF_NODE_SEQ,
};

/*
 * One YAML value. A mapping keeps its pairs flat in @kids: key, value, key, value... Keys are
 * always scalars (the tree builder reports and marks anything else bad).
 */
struct conf_node {
    enum conf_node_kind kind;
    bool bad;    /* already reported (an alias, a NUL in a value...): skip it quietly */
    bool quoted; /* scalar written with quotes: never null */
    struct conf_pos pos;
    char *str; /* scalar text, NUL-terminated; "" for other kinds */
    size_t len;
    struct conf_node **kids;
    size_t nkids;
    const struct conf_node *dup_of; /* a mapping key: the earlier key with the same text */
};

static inline bool conf_node_is_null(const struct conf_node *n)
{
    if (n->kind != CONF_NODE_SCALAR || n->quoted)
        return false;
    return n->len == 0 || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
           !strcmp(n->str, "Null") || !strcmp(n->str, "NULL");
}

/*
 * Checks that @buf is UTF-8 that YAML accepts (no NUL, no control characters) and reports each
 * bad byte at its line and column. Returns 0 or -EINVAL.
 */
int conf_text_check(const char *buf, size_t len, struct conf_diags *d);

/*
 * Parses @buf (already through conf_text_check) into a tree. Returns 0 with *@root set (NULL for
 * an empty file), or -EINVAL after a syntax error or a limit (depth, size), or -ENOMEM. Errors
 * that leave the tree usable (aliases, anchors, tags, odd keys) are reported and the nodes
 * marked bad, and 0 is returned so that the loader can report more. The caller frees *@root
 * with conf_tree_free() in every case.
 */
int conf_tree_parse(const char *buf, size_t len, struct conf_diags *d, struct conf_node **root);
void conf_tree_free(struct conf_node *n);

/* What the loader and validator share for one conf_load. */
struct conf_ctx {
    struct conf *c;
    struct conf_diags *d;
    const char *base_dir;   /* relative paths are joined to it; NULL: kept as written */
    uint8_t *cluster_flags; /* one per c->clusters entry */
    char path[256];         /* where we are, for messages: "clusters.app.health" */
    size_t plen;
};

#define CONF_CF_BAD_BALANCE 0x01 /* balance: failed to parse; skip rules that depend on it */

/* Appends one diagnostic (dropped, and counted, beyond CONF_MAX_ERRORS). */
__attribute__((format(printf, 3, 4))) void conf_diag(struct conf_diags *d, struct conf_pos pos,
                                                     const char *fmt, ...);

/* Same, prefixed with the context's path ("clusters.app.retries: ..."). */
__attribute__((format(printf, 3, 4))) void conf_err(struct conf_ctx *x, struct conf_pos pos,
                                                    const char *fmt, ...);

/* Sorts diagnostics by position, keeping the order of equal ones. */
void conf_diags_sort(struct conf_diags *d);

/* True once more diagnostics would only be counted: lets callers skip costly suggestions. */
static inline bool conf_diags_full(const struct conf_diags *d)
{
    return d->n >= CONF_MAX_ERRORS;
}

/*
 * Writes @s (@len bytes) into @buf for a message: non-printable bytes as \xNN, long text cut
 * with "...". Returns @buf.
 */
const char *conf_quote(char *buf, size_t size, const char *s, size_t len);

/* The closest of @cands (NULL-terminated, or @n entries with @n != 0 when @cands has no
 * terminator) within an edit distance of 2, case-insensitive, or NULL. */
const char *conf_suggest(const char *word, const char *const *cands, size_t n);

/* Edit-distance rows computed by this thread's conf_suggest calls: the work a hostile file
 * can cause, counted instead of timed so that tests can bound it on any machine. */
extern _Thread_local uint64_t conf_suggest_rows;

/* Path of the context, pushed and popped around nested values. */
size_t conf_path_push(struct conf_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void conf_path_pop(struct conf_ctx *x, size_t mark)
{
    x->plen = mark;
    x->path[mark] = '\0';
}

/* Loads the whole tree into x->c (load.c). */
void conf_load_root(struct conf_ctx *x, const struct conf_node *root);

/* Cross-object rules: names, addresses, references, hash keys (validate.c). */
void conf_validate(struct conf_ctx *x);

/* conf/redis.c: appends global.redis as a cluster of lb's own (sets c->redis_cluster, -1
 * without global.redis). Returns -1 when out of memory. */
int conf_add_redis_cluster(struct conf *c);

/* conf/load_caches.c: resolves each route's cache.shared (reports undefined names); appends
 * each caches: entry as a cluster of lb's own (sets its cluster_idx; -1 out of memory);
 * frees them. */
void conf_validate_caches(struct conf_ctx *x);
int conf_add_cache_clusters(struct conf *c);
void conf_free_caches(struct conf *c);

#endif
