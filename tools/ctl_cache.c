/*
 * lbctl cache purge PATH|PREFIX* [--host HOST] and lbctl cache stats: the arguments checked
 * as lb will (lb checks again: lbctl is only the first, friendlier, line), and lb's answers
 * as text. A purge says how many L1 entries each worker removed; stats are one row per worker
 * (the L1 cache is per worker, shared by every cached route), a total, then the lookups of
 * each listener with cached routes.
 */
#include <stdio.h>
#include <string.h>

#include "tools/ctl_cache.h"
#include "tools/ctl_json.h"

const char *ctl_cache_check(int npos, char *const *pos, const char *host)
{
    if (npos < 2)
        return "usage: cache purge PATH|PREFIX* [--host HOST] | cache stats";
    if (!strcmp(pos[1], "stats")) {
        if (npos != 2)
            return "usage: cache stats";
        return host ? "--host goes with cache purge only" : NULL;
    }
    if (strcmp(pos[1], "purge"))
        return "unknown cache command: cache purge, cache stats";
    if (npos != 3)
        return "usage: cache purge PATH|PREFIX* [--host HOST] (quote a PREFIX* for the shell)";
    const char *p = pos[2];
    if (p[0] != '/')
        return "bad path: an absolute path such as /a/b, or a prefix such as /api/*";
    for (const char *c = p; *c; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return "bad path: visible ASCII only";
        if (*c == '*' && c[1])
            return "bad path: '*' only at the end, for a prefix";
    }
    if (host && (!host[0] || strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789-._:[]") != strlen(host)))
        return "bad --host: letters, digits, '-', '.', '_', ':', '[', ']'";
    return NULL;
}

static void print_purge(const struct ctl_json *v)
{
    double workers = ctl_json_num(v, "workers", 0), pending = ctl_json_num(v, "pending", 0);
    const char *host = ctl_json_str(v, "host", NULL);
    printf("%s%s%s%s: ", ctl_json_str(v, "path", "?"), ctl_json_bool(v, "prefix", false) ? "*" : "",
           host ? " on host " : "", host ? host : "");
    if (pending > 0 && pending >= workers) {
        printf("purge queued on %.0f workers (see lbctl cache stats, purged)\n", workers);
    } else {
        printf("removed %.0f entries (", ctl_json_num(v, "removed", 0));
        const struct ctl_json *pw = ctl_json_get(v, "per_worker");
        int i = 0;
        for (const struct ctl_json *e = pw ? pw->child : NULL; e; e = e->next, i++) {
            if (e->type == CTL_JSON_NUM)
                printf("%sworker %d: %.0f", i ? ", " : "", i, e->num);
            else
                printf("%sworker %d: pending", i ? ", " : "", i);
        }
        printf(")\n");
        if (pending > 0)
            printf("purge still queued on %.0f workers (see lbctl cache stats, purged)\n", pending);
    }
    /* An L2 part of the answer (the shared cache over Redis), when lb sends one. */
    const struct ctl_json *l2 = ctl_json_get(v, "l2");
    if (l2) {
        printf("l2: %.0f keys\n", ctl_json_num(l2, "keys", 0));
        const char *e = ctl_json_str(l2, "error", NULL);
        if (e)
            printf("l2: %s\n", e);
    }
}

static void stats_row(const char *name, const struct ctl_json *s)
{
    char bytes[32], max[32];
    ctl_human_bytes(bytes, sizeof(bytes), ctl_json_num(s, "bytes", 0));
    ctl_human_bytes(max, sizeof(max), ctl_json_num(s, "max_bytes", 0));
    printf("%-7s %8.0f %8s %8s %9.0f %9.0f %9.0f %9.0f %8.0f %11.0f %7.0f %11.0f\n", name,
           ctl_json_num(s, "entries", 0), bytes, max, ctl_json_num(s, "hits", 0),
           ctl_json_num(s, "misses", 0), ctl_json_num(s, "coalesced", 0),
           ctl_json_num(s, "evictions", 0), ctl_json_num(s, "expired", 0),
           ctl_json_num(s, "invalidated", 0), ctl_json_num(s, "purged", 0),
           ctl_json_num(s, "fill_aborts", 0));
}

static void print_stats(const struct ctl_json *v)
{
    printf("L1 cache: one per worker, shared by the cached routes\n");
    printf("%-7s %8s %8s %8s %9s %9s %9s %9s %8s %11s %7s %11s\n", "WORKER", "ENTRIES", "BYTES",
           "MAX", "HITS", "MISSES", "COALESCED", "EVICTIONS", "EXPIRED", "INVALIDATED", "PURGED",
           "FILL_ABORTS");
    const struct ctl_json *ws = ctl_json_get(v, "workers");
    for (const struct ctl_json *w = ws ? ws->child : NULL; w; w = w->next) {
        char name[16];
        snprintf(name, sizeof(name), "%.0f", ctl_json_num(w, "worker", 0));
        stats_row(name, w);
    }
    stats_row("total", ctl_json_get(v, "total"));
    printf("\n%-16s %-12s %9s %9s %9s %11s %7s %8s %13s\n", "LISTENER", "ROUTES", "HIT", "304",
           "MISS", "REVALIDATED", "STALE", "BYPASS", "INVALIDATIONS");
    const struct ctl_json *ls = ctl_json_get(v, "listeners");
    for (const struct ctl_json *l = ls ? ls->child : NULL; l; l = l->next) {
        char routes[64] = "";
        size_t used = 0;
        const struct ctl_json *rs = ctl_json_get(l, "routes");
        for (const struct ctl_json *r = rs ? rs->child : NULL; r && used < sizeof(routes) - 12;
             r = r->next)
            used += (size_t)snprintf(routes + used, sizeof(routes) - used, "%s%.0f",
                                     used ? "," : "", r->num);
        printf("%-16s %-12s %9.0f %9.0f %9.0f %11.0f %7.0f %8.0f %13.0f\n",
               ctl_json_str(l, "listener", "?"), routes, ctl_json_num(l, "hit", 0),
               ctl_json_num(l, "not_modified", 0), ctl_json_num(l, "miss", 0),
               ctl_json_num(l, "revalidated", 0), ctl_json_num(l, "stale", 0),
               ctl_json_num(l, "bypass", 0), ctl_json_num(l, "invalidations", 0));
    }
    printf("\npurges: %.0f\n", ctl_json_num(v, "purges", 0));
}

void ctl_cache_print(const struct ctl_json *v, const char *sub)
{
    if (!strcmp(sub, "purge"))
        print_purge(v);
    else
        print_stats(v);
}
