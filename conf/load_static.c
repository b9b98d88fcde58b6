/*
 * The loader of static: (snapshot sets): defaults, then the table of keys. Whether a fallback
 * cluster exists is checked with the other references in validate.c.
 */
#include <errno.h>
#include <stdlib.h>

#include "conf/load.h"

#define Q(buf, n) conf_quote((buf), sizeof(buf), (n)->str, (n)->len)
#define SEC 1000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define KIB 1024ull
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

static const struct conf_key static_keys[] = {
    {.name = "dir",
     .set = conf_set_dir,
     .off = offsetof(struct conf_static, dir),
     .flags = CONF_K_REQUIRED},
    {.name = "fallback", .set = conf_set_name, .off = offsetof(struct conf_static, fallback)},
    {.name = "max_age",
     .set = conf_set_duration,
     .off = offsetof(struct conf_static, max_age_ms),
     .max = 365 * 24 * HOUR},
    {.name = "max_file_size",
     .set = conf_set_size,
     .off = offsetof(struct conf_static, max_file_bytes),
     .min = 1,
     .max = 1 * GIB},
    {.name = NULL},
};

int conf_set_statics(struct conf_ctx *x, const struct conf_node *n, void *field,
                     const struct conf_key *k)
{
    struct conf *c = field;
    struct conf_seen seen[CONF_MAX_KEYS];
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_MAP, "a mapping of set names to snapshot sets"))
        return -EINVAL;
    size_t npairs = n->nkids / 2;
    if (npairs == 0)
        return 0;
    c->statics = calloc(npairs, sizeof(*c->statics));
    if (!c->statics) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < npairs; i++) {
        const struct conf_node *key = n->kids[2 * i], *v = n->kids[2 * i + 1];
        if (key->bad)
            continue;
        if (key->dup_of) {
            conf_err(x, key->pos, "duplicate static set '%s' (first at %u:%u)", Q(q, key),
                     key->dup_of->pos.line, key->dup_of->pos.col);
            continue;
        }
        struct conf_static *st = &c->statics[c->nstatics++];
        st->pos = key->pos;
        st->fallback_idx = -1;
        st->max_age_ms = 60 * SEC;
        st->max_file_bytes = 16 * MIB;
        st->name = conf_object_name(x, key, "static set name");
        size_t mark = conf_path_push(x, ".%s", Q(q, key));
        if (!v->bad && conf_map(x, v, st, static_keys, seen) == 0) {
            const struct conf_seen *fb = conf_seen_get(static_keys, seen, "fallback");
            if (fb->key)
                st->fallback_pos = fb->val->pos;
        }
        conf_path_pop(x, mark);
    }
    return 0;
}

/* For conf_keys_each() (keys.c). */
const struct conf_key_root conf_roots_static[] = {{"static.NAME", static_keys}, {NULL, NULL}};
