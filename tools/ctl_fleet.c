/*
 * lbctl fleet: the instances sharing global.redis, from lb's `fleet` answer: one line per
 * instance (heartbeat age, uptime, pid), then every server the instances do not see alike
 * (one sees it down while another sees it up), which is where an operator looks first.
 */
#include <stdio.h>
#include <string.h>

#include "tools/ctl_fleet.h"
#include "tools/ctl_json.h"

/* The state member @name of instance @m sees @cluster/@server in, or NULL. */
static const char *state_of(const struct ctl_json *m, const char *cluster, const char *server)
{
    const struct ctl_json *ss = ctl_json_get(m, "servers");
    for (const struct ctl_json *s = ss ? ss->child : NULL; s; s = s->next)
        if (!strcmp(ctl_json_str(s, "cluster", ""), cluster) &&
            !strcmp(ctl_json_str(s, "server", ""), server))
            return ctl_json_str(s, "state", "?");
    return NULL;
}

/* Prints the servers whose state differs between instances; returns how many. */
static int disagreements(const struct ctl_json *members)
{
    int n = 0;
    for (const struct ctl_json *m = members ? members->child : NULL; m; m = m->next) {
        const struct ctl_json *ss = ctl_json_get(m, "servers");
        for (const struct ctl_json *s = ss ? ss->child : NULL; s; s = s->next) {
            const char *cl = ctl_json_str(s, "cluster", ""), *sv = ctl_json_str(s, "server", "");
            bool differs = false, seen_before = false;
            for (const struct ctl_json *o = members->child; o; o = o->next) {
                const char *st = state_of(o, cl, sv);
                differs |= st && strcmp(st, ctl_json_str(s, "state", ""));
                if (o == m)
                    break;
                seen_before |= st != NULL;
            }
            for (const struct ctl_json *o = m->next; o && !differs; o = o->next) {
                const char *st = state_of(o, cl, sv);
                differs |= st && strcmp(st, ctl_json_str(s, "state", ""));
            }
            if (!differs || seen_before)
                continue; /* printed once, at the first instance that has it */
            printf("  %s/%s:", cl, sv);
            for (const struct ctl_json *o = members->child; o; o = o->next) {
                const char *st = state_of(o, cl, sv);
                if (st)
                    printf(" %s %s", ctl_json_str(o, "name", "?"), st);
            }
            printf("\n");
            n++;
        }
    }
    return n;
}

void ctl_fleet_print(const struct ctl_json *v)
{
    const struct ctl_json *f = ctl_json_get(v, "fleet");
    const struct ctl_json *members = ctl_json_get(f, "members");
    printf("this instance: %s, Redis %s\n", ctl_json_str(f, "instance", "?"),
           ctl_json_bool(f, "up", false) ? "reachable" : "UNREACHABLE (last state shown)");
    printf("%-24s %10s %10s %8s %8s\n", "INSTANCE", "HEARTBEAT", "UPTIME", "PID", "SERVERS");
    for (const struct ctl_json *m = members ? members->child : NULL; m; m = m->next) {
        size_t ns = 0;
        const struct ctl_json *ss = ctl_json_get(m, "servers");
        for (const struct ctl_json *s = ss ? ss->child : NULL; s; s = s->next)
            ns++;
        printf("%-24s %9.1fs %9.0fs %8.0f %8zu\n", ctl_json_str(m, "name", "?"),
               ctl_json_num(m, "age_ms", 0) / 1000, ctl_json_num(m, "uptime_s", 0),
               ctl_json_num(m, "pid", 0), ns);
    }
    printf("views that disagree:\n");
    if (!disagreements(members))
        printf("  none\n");
}

double ctl_fleet_active(const struct ctl_json *v, const char *cluster, const char *server)
{
    double sum = 0;
    const struct ctl_json *members = ctl_json_get(ctl_json_get(v, "fleet"), "members");
    for (const struct ctl_json *m = members ? members->child : NULL; m; m = m->next) {
        const struct ctl_json *ss = ctl_json_get(m, "servers");
        for (const struct ctl_json *s = ss ? ss->child : NULL; s; s = s->next)
            if (!strcmp(ctl_json_str(s, "cluster", ""), cluster) &&
                !strcmp(ctl_json_str(s, "server", ""), server))
                sum += ctl_json_num(s, "active", 0);
    }
    return sum;
}
