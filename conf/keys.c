/*
 * The list of every key path the loader accepts (conf_keys_each, see conf.h), taken from the
 * loader's own tables so that it cannot drift from them: each load*.c names the tables its
 * setters map themselves (conf_roots_*), and the tables below those through conf_set_map are
 * found here. The manual page lb.yaml(5) is checked against this list by tests/unit.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conf/load.h"

#define KEYS_MAX_TABLES 64
#define KEYS_PATH_MAX 160

struct keys_walk {
    int (*fn)(const char *path, void *arg);
    void *arg;
    const struct conf_key *seen[KEYS_MAX_TABLES]; /* distinct tables walked */
    size_t nseen;
};

static void keys_note(struct keys_walk *w, const struct conf_key *tab)
{
    for (size_t i = 0; i < w->nseen; i++)
        if (w->seen[i] == tab)
            return;
    if (w->nseen < KEYS_MAX_TABLES)
        w->seen[w->nseen++] = tab;
}

/* Every key of @tab under @prefix ("" at the top), and the keys of its conf_set_map tables. */
static int keys_table(struct keys_walk *w, const char *prefix, const struct conf_key *tab,
                      int depth)
{
    keys_note(w, tab);
    for (const struct conf_key *k = tab; k->name; k++) {
        char path[KEYS_PATH_MAX];
        int n = snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", k->name);
        if (n < 0 || (size_t)n >= sizeof(path))
            return -ENAMETOOLONG;
        int rc = w->fn(path, w->arg);
        if (rc)
            return rc;
        /* The tables nest a few levels deep; a cycle would be a bug in a table. */
        if (k->set == conf_set_map && k->arg && depth < 8) {
            rc = keys_table(w, path, k->arg, depth + 1);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int conf_keys_each(int (*fn)(const char *path, void *arg), void *arg, size_t *ntables)
{
    static const struct conf_key_root *const roots[] = {conf_roots_global,  conf_roots_listener,
                                                        conf_roots_cluster, conf_roots_static,
                                                        conf_roots_admin,   conf_roots_caches};
    struct keys_walk w = {.fn = fn, .arg = arg};
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof(roots) / sizeof(roots[0]); i++)
        for (const struct conf_key_root *r = roots[i]; !rc && r->tab; r++)
            rc = keys_table(&w, r->path, r->tab, 0);
    if (ntables)
        *ntables = w.nseen;
    return rc;
}
