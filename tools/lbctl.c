/*
 * lbctl: the operator CLI. Sends one text command per line to lb's admin socket and prints
 * the JSON answer as a table for people, or as is with --json for scripts.
 *
 * Exit codes: 0 ok, 1 error (lb said no, or could not be reached), 2 usage.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "tools/ctl_cache.h"
#include "tools/ctl_fleet.h"
#include "tools/ctl_json.h"
#include "tools/ctl_queue.h"

#define CTL_DEFAULT_SOCKET "/tmp/lb.sock"
#define CTL_SERVICE_SOCKET "/run/lb/lb.sock" /* the packaged service's (packaging/lb.yaml) */
#define CTL_ANSWER_MAX (16u << 20)
#define CTL_IO_TIMEOUT_S 15
#define CTL_POLL_MS 100

struct ctl {
    const char *socket;
    bool json;
    int fd;
    char *buf; /* received bytes not yet returned as a line */
    size_t len, cap;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lbctl [-s SOCKET] COMMAND [ARGS] [--json]\n"
            "\n"
            "  status [--json]                              clusters, servers, state, load\n"
            "  drain CLUSTER SERVER [--wait] [--timeout 30s] [--local]\n"
            "                                               no new connections to SERVER;\n"
            "                                               --wait returns once it has none\n"
            "                                               (on every instance of the fleet)\n"
            "  undrain CLUSTER SERVER [--local]\n"
            "  weight CLUSTER SERVER N [--local]            N in 1..256\n"
            "  fleet [--json]                               instances sharing global.redis\n"
            "  (with global.redis, drain, undrain and weight reach every instance; --local:\n"
            "  this one only)\n"
            "  reload                                       same as SIGHUP\n"
            "  snapshots reload [SET]                       publish snapshot directories again\n"
            "  explain METHOD URL [Name: value]...          route, key, server and failover\n"
            "  explain redis KEY                            the shard that owns a Redis key\n"
            "                                               order that request would get\n"
            "  tls [--json]                                 certificates per TLS listener,\n"
            "                                               their names, issuer and expiry\n"
            "  queue stats [NAME] [--json]                  enqueue routes' Redis lists: length,\n"
            "                                               dead, in consumers' hands, oldest\n"
            "  cache purge PATH|PREFIX* [--host HOST]       remove entries from every worker's\n"
            "                                               L1 cache: PATH exactly as requested\n"
            "                                               (query included), or every target\n"
            "                                               starting with PREFIX ('/api/*')\n"
            "  cache stats [--json]                         L1 cache counters per worker and\n"
            "                                               lookups per listener\n"
            "\n"
            "  -s SOCKET   admin socket (default " CTL_DEFAULT_SOCKET ", else " CTL_SERVICE_SOCKET
            " when only that one exists)\n"
            "exit: 0 ok, 1 error, 2 usage\n");
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lbctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n\n");
    va_end(ap);
    usage(stderr);
    return 2;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The config's rule for names; checked here so that a typo with a space or a newline in it
 * is a usage error rather than a different command. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= CONF_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '-' && c != '.')))
            return false;
    }
    return true;
}

static int ctl_connect(struct ctl *c)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(c->socket) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "lbctl: socket path too long: %s\n", c->socket);
        return -1;
    }
    strcpy(sa.sun_path, c->socket);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr,
                "lbctl: cannot connect to %s: %s (is lb running? its socket is "
                "global.admin.socket; choose it with -s)\n",
                c->socket, strerror(errno));
        return -1;
    }
    /* lb never makes a client wait; a timeout here means it is wedged or not lb. */
    struct timeval tv = {.tv_sec = CTL_IO_TIMEOUT_S};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return 0;
}

/* Sends @cmd and reads one answer line into a new string (the caller frees). NULL on error
 * (said on stderr). */
static char *ctl_ask(struct ctl *c, const char *cmd)
{
    char line[4096 + 2]; /* lb reads lines up to ADMIN_LINE_MAX (4096) */
    int n = snprintf(line, sizeof(line), "%s\n", cmd);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        fprintf(stderr, "lbctl: command too long\n");
        return NULL;
    }
    for (size_t off = 0; off < (size_t)n;) {
        ssize_t w = send(c->fd, line + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "lbctl: %s: send: %s\n", c->socket, strerror(errno));
            return NULL;
        }
        off += (size_t)w;
    }
    for (;;) {
        char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl) {
            size_t ll = (size_t)(nl - c->buf);
            char *ans = malloc(ll + 1);
            if (!ans) {
                fprintf(stderr, "lbctl: out of memory\n");
                return NULL;
            }
            memcpy(ans, c->buf, ll);
            ans[ll] = '\0';
            memmove(c->buf, nl + 1, c->len - ll - 1);
            c->len -= ll + 1;
            return ans;
        }
        if (c->len == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 4096;
            char *p = cap <= CTL_ANSWER_MAX ? realloc(c->buf, cap) : NULL;
            if (!p) {
                fprintf(stderr, "lbctl: answer too large\n");
                return NULL;
            }
            c->buf = p;
            c->cap = cap;
        }
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "lbctl: %s: %s\n", c->socket,
                    r == 0            ? "lb closed the connection without answering"
                    : errno == EAGAIN ? "no answer (timeout)"
                                      : strerror(errno));
            return NULL;
        }
        c->len += (size_t)r;
    }
}

/* Asks and parses. Returns the tree or NULL (said on stderr); *@raw gets the line. */
static struct ctl_json *ctl_call(struct ctl *c, const char *cmd, char **raw)
{
    char err[128];
    *raw = ctl_ask(c, cmd);
    if (!*raw)
        return NULL;
    struct ctl_json *v = ctl_json_parse(*raw, strlen(*raw), err, sizeof(err));
    if (!v || v->type != CTL_JSON_OBJ) {
        fprintf(stderr, "lbctl: unreadable answer from %s: %s\n", c->socket,
                v ? "not an object" : err);
        ctl_json_free(v);
        return NULL;
    }
    return v;
}

static void print_names(const char *what, const struct ctl_json *arr)
{
    if (!arr || arr->type != CTL_JSON_ARR)
        return;
    const char *sep = " ";
    fprintf(stderr, "lbctl: valid %s:", what);
    for (const struct ctl_json *e = arr->child; e; e = e->next) {
        if (e->type == CTL_JSON_STR) {
            fprintf(stderr, "%s%s", sep, e->str);
            sep = ", ";
        }
    }
    fprintf(stderr, "\n");
}

/* Reports an {"ok":false} answer; returns the exit code 1. */
static int answer_error(const struct ctl_json *v)
{
    fprintf(stderr, "lbctl: %s\n", ctl_json_str(v, "error", "lb answered an error"));
    /* reload: the config's own FILE:LINE:COLUMN errors, one per line. */
    const struct ctl_json *errs = ctl_json_get(v, "errors");
    for (const struct ctl_json *e = errs ? errs->child : NULL; e; e = e->next)
        if (e->str)
            fprintf(stderr, "%s\n", e->str);
    print_names("clusters", ctl_json_get(v, "clusters"));
    print_names("servers", ctl_json_get(v, "servers"));
    return 1;
}

#define NCOLS 12

static void print_status(const struct ctl_json *v)
{
    static const char *head[NCOLS] = {"CLUSTER", "SERVER", "ADDRESS", "STATE", "WEIGHT", "ACTIVE",
                                      "RATE/s",  "PICKS",  "FAILS",   "IN",    "OUT",    "CHECK"};
    int width[NCOLS];
    char cell[NCOLS][80];

    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < NCOLS; k++)
            if (pass == 0)
                width[k] = (int)strlen(head[k]);
            else
                printf("%-*s%s", k + 1 < NCOLS ? width[k] : 0, head[k],
                       k + 1 < NCOLS ? "  " : "\n");
        const struct ctl_json *cls = ctl_json_get(v, "clusters");
        for (const struct ctl_json *cl = cls ? cls->child : NULL; cl; cl = cl->next) {
            const struct ctl_json *srvs = ctl_json_get(cl, "servers");
            for (const struct ctl_json *s = srvs ? srvs->child : NULL; s; s = s->next) {
                double w = ctl_json_num(s, "weight", 0), cw = ctl_json_num(s, "config_weight", 0);
                snprintf(cell[0], 80, "%s", ctl_json_str(cl, "name", "?"));
                snprintf(cell[1], 80, "%s", ctl_json_str(s, "name", "?"));
                if (ctl_json_get(s, "master") &&
                    strcmp(ctl_json_str(s, "master", ""), ctl_json_str(s, "address", "")))
                    snprintf(cell[2], 80, "%s (master: %s)", ctl_json_str(s, "address", "?"),
                             ctl_json_str(s, "master", "?"));
                else
                    snprintf(cell[2], 80, "%s", ctl_json_str(s, "address", "?"));
                snprintf(cell[3], 80, "%s", ctl_json_str(s, "state", "?"));
                if (w == cw)
                    snprintf(cell[4], 80, "%.0f", w);
                else
                    snprintf(cell[4], 80, "%.0f (cfg %.0f)", w, cw);
                snprintf(cell[5], 80, "%.0f", ctl_json_num(s, "active", 0));
                snprintf(cell[6], 80, "%.1f", ctl_json_num(s, "rate", 0));
                snprintf(cell[7], 80, "%.0f", ctl_json_num(s, "picks", 0));
                snprintf(cell[8], 80, "%.0f", ctl_json_num(s, "connect_failures", 0));
                ctl_human_bytes(cell[9], 80, ctl_json_num(s, "bytes_in", 0));
                ctl_human_bytes(cell[10], 80, ctl_json_num(s, "bytes_out", 0));
                /* The last active probe and its latency; "-" before the first one. */
                const char *chk = ctl_json_str(s, "last_check", "none");
                if (!strcmp(chk, "none"))
                    snprintf(cell[11], 80, "-");
                else
                    snprintf(cell[11], 80, "%s %.1fms", chk,
                             ctl_json_num(s, "check_latency_ms", 0));
                for (int k = 0; k < NCOLS; k++) {
                    if (pass == 0 && (int)strlen(cell[k]) > width[k])
                        width[k] = (int)strlen(cell[k]);
                    if (pass == 1)
                        printf("%-*s%s", k + 1 < NCOLS ? width[k] : 0, cell[k],
                               k + 1 < NCOLS ? "  " : "\n");
                }
            }
        }
    }
    const struct ctl_json *f = ctl_json_get(v, "fleet");
    if (f)
        printf("fleet: %s\n", ctl_json_bool(f, "up", false)
                                  ? "Redis reachable: drains and weights reach every instance"
                                  : "Redis UNREACHABLE: serving with the last state; changes "
                                    "apply on this instance only until it is back");
}

#define TLS_COLS 6

/* lbctl tls: one line per certificate, columns as wide as their widest cell. */
static void print_tls(const struct ctl_json *v)
{
    static const char *head[TLS_COLS] = {"LISTENER", "NAMES", "KEY", "NOT AFTER", "DAYS", "ISSUER"};
    const struct ctl_json *certs = ctl_json_get(v, "certificates");
    if (!certs || !certs->child) {
        printf("no TLS listeners\n");
        return;
    }
    int width[TLS_COLS];
    char cell[TLS_COLS][160];
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < TLS_COLS; k++) {
            if (pass == 0)
                width[k] = (int)strlen(head[k]);
            else
                printf("%-*s%s", k + 1 < TLS_COLS ? width[k] : 0, head[k],
                       k + 1 < TLS_COLS ? "  " : "\n");
        }
        for (const struct ctl_json *c = certs->child; c; c = c->next) {
            snprintf(cell[0], 160, "%s", ctl_json_str(c, "listener", "?"));
            snprintf(cell[1], 160, "%s", ctl_json_str(c, "names", "?"));
            snprintf(cell[2], 160, "%s", ctl_json_str(c, "key", "?"));
            snprintf(cell[3], 160, "%s", ctl_json_str(c, "not_after", "?"));
            double days = ctl_json_num(c, "days_left", 0);
            snprintf(cell[4], 160, "%.0f%s", days, days < 0 ? " EXPIRED" : "");
            snprintf(cell[5], 160, "%s", ctl_json_str(c, "issuer", "?"));
            for (int k = 0; k < TLS_COLS; k++) {
                if (pass == 0 && (int)strlen(cell[k]) > width[k])
                    width[k] = (int)strlen(cell[k]);
                if (pass == 1)
                    printf("%-*s%s", k + 1 < TLS_COLS ? width[k] : 0, cell[k],
                           k + 1 < TLS_COLS ? "  " : "\n");
            }
        }
    }
}

/* The server's entry in a status answer, or NULL. */
static const struct ctl_json *find_server(const struct ctl_json *st, const char *cluster,
                                          const char *server)
{
    const struct ctl_json *cls = ctl_json_get(st, "clusters");
    for (const struct ctl_json *cl = cls ? cls->child : NULL; cl; cl = cl->next) {
        if (strcmp(ctl_json_str(cl, "name", ""), cluster))
            continue;
        const struct ctl_json *srvs = ctl_json_get(cl, "servers");
        for (const struct ctl_json *s = srvs ? srvs->child : NULL; s; s = s->next)
            if (!strcmp(ctl_json_str(s, "name", ""), server))
                return s;
    }
    return NULL;
}

/*
 * drain --wait: polls status until the server's active count is 0, printing each new count
 * (on stderr with --json, so stdout stays one JSON answer). Returns the exit code.
 */
/* The connections the other instances of the fleet report for @cluster/@server (0 without
 * a fleet): a drain --wait waits for them too. */
static double fleet_active(struct ctl *c, const char *cluster, const char *server)
{
    char *raw;
    struct ctl_json *v = ctl_call(c, "fleet", &raw);
    double n = v && ctl_json_bool(v, "ok", false) ? ctl_fleet_active(v, cluster, server) : 0;
    ctl_json_free(v);
    free(raw);
    return n;
}

/* After a drain, undrain or weight shared with the fleet: waits (at most 2 s) for the live
 * instances to acknowledge it, and says how many did. */
static void fleet_report(struct ctl *c, const struct ctl_json *v)
{
    const struct ctl_json *f = ctl_json_get(v, "fleet");
    if (!f || c->json)
        return;
    if (!ctl_json_bool(f, "reachable", false)) {
        printf("fleet unreachable: applied on this instance only (sent to Redis when it is "
               "back)\n");
        return;
    }
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "fleet ack %.0f", ctl_json_num(f, "t", 0));
    double acks = 0, live = ctl_json_num(f, "live", 1);
    for (uint64_t end = now_ms() + 2000;;) {
        char *raw;
        struct ctl_json *a = ctl_call(c, cmd, &raw);
        if (a && ctl_json_bool(a, "ok", false)) {
            acks = ctl_json_num(a, "acks", 0);
            live = ctl_json_num(a, "live", live);
        }
        ctl_json_free(a);
        free(raw);
        if (acks >= live || now_ms() >= end)
            break;
        usleep(CTL_POLL_MS * 1000);
    }
    printf("fleet: applied on %.0f of %.0f live instances\n", acks, live);
}

static int wait_drained(struct ctl *c, const char *cluster, const char *server, uint64_t tmo_ms)
{
    FILE *out = c->json ? stderr : stdout;
    uint64_t end = now_ms() + tmo_ms;
    double last = -1;

    for (;;) {
        char *raw;
        struct ctl_json *st = ctl_call(c, "status", &raw);
        if (!st) {
            free(raw);
            return 1;
        }
        if (!ctl_json_bool(st, "ok", false)) {
            int rc = answer_error(st);
            ctl_json_free(st);
            free(raw);
            return rc;
        }
        const struct ctl_json *s = find_server(st, cluster, server);
        double active = s ? ctl_json_num(s, "active", 0) : -1;
        bool draining = s && !strcmp(ctl_json_str(s, "state", ""), "draining");
        ctl_json_free(st);
        free(raw);
        if (!s || !draining) {
            fprintf(stderr, "lbctl: %s/%s is %s while waiting\n", cluster, server,
                    s ? "no longer draining (undrained)" : "gone");
            return 1;
        }
        if (active != last) {
            fprintf(out, "%s/%s: %.0f active\n", cluster, server, active);
            fflush(out);
            last = active;
        }
        if (active <= 0)
            active = fleet_active(c, cluster, server);
        if (active <= 0) {
            fprintf(out, "%s/%s: drained\n", cluster, server);
            return 0;
        }
        if (now_ms() >= end) {
            fprintf(stderr, "lbctl: timeout: %s/%s still has %.0f active\n", cluster, server,
                    active);
            return 1;
        }
        usleep(CTL_POLL_MS * 1000);
    }
}

/* explain redis KEY: one line per redis listener. */
static void print_explain_key(const struct ctl_json *v)
{
    const struct ctl_json *ls = ctl_json_get(v, "listeners");
    if (!ls || !ls->child)
        printf("no redis listener\n");
    for (const struct ctl_json *l = ls ? ls->child : NULL; l; l = l->next) {
        printf("%s (%s): key %s", ctl_json_str(l, "listener", "?"), ctl_json_str(l, "bind", "?"),
               ctl_json_str(v, "key", "?"));
        if (ctl_json_get(v, "hash_tag"))
            printf(" (hash tag %s)", ctl_json_str(v, "hash_tag", ""));
        printf(", cluster %s (%s): shard %s at %s, %s\n", ctl_json_str(l, "cluster", "?"),
               ctl_json_str(l, "balance", "?"), ctl_json_str(l, "server", "?"),
               ctl_json_str(l, "address", "?"), ctl_json_str(l, "state", "?"));
    }
}

/* explain's answer, one line per http listener. */
static void print_explain(const struct ctl_json *v)
{
    if (ctl_json_get(v, "key")) {
        print_explain_key(v);
        return;
    }
    if (ctl_json_get(v, "answer")) {
        printf("lb answers %.0f itself: %s\n", ctl_json_num(v, "answer", 0),
               ctl_json_str(v, "why", ""));
        return;
    }
    const struct ctl_json *ls = ctl_json_get(v, "listeners");
    for (const struct ctl_json *l = ls ? ls->child : NULL; l; l = l->next) {
        printf("%s (%s): ", ctl_json_str(l, "listener", "?"), ctl_json_str(l, "bind", "?"));
        if (!ctl_json_get(l, "route") || ctl_json_get(l, "route")->type != CTL_JSON_NUM) {
            printf("no route: lb answers %.0f\n", ctl_json_num(l, "answer", 404));
            continue;
        }
        const char *action = ctl_json_str(l, "action", "?");
        printf("route %.0f (line %.0f)", ctl_json_num(l, "route", 0),
               ctl_json_num(l, "route_line", 0));
        if (strcmp(action, "cluster"))
            printf(", %s", action);
        if (ctl_json_get(l, "set"))
            printf(" %s: snapshot %s", ctl_json_str(l, "set", ""), ctl_json_str(l, "snapshot", ""));
        if (ctl_json_get(l, "cluster")) {
            printf("%s, cluster %s (%s", ctl_json_bool(l, "fallback", false) ? ", fallback" : "",
                   ctl_json_str(l, "cluster", ""), ctl_json_str(l, "balance", ""));
            if (ctl_json_get(l, "hash_key"))
                printf(", key %s=%s", ctl_json_str(l, "hash_key", ""),
                       ctl_json_str(l, "key", "(client address)"));
            printf(")");
            const struct ctl_json *order = ctl_json_get(l, "order");
            const char *sep = ": server ";
            for (const struct ctl_json *s = order ? order->child : NULL; s; s = s->next) {
                printf("%s%s%s", sep, ctl_json_str(s, "server", "?"),
                       ctl_json_bool(s, "backup", false) ? " (backup)" : "");
                sep = sep[0] == ':' ? ", then " : ", ";
            }
        }
        if (ctl_json_get(l, "answer"))
            printf(": lb answers %.0f", ctl_json_num(l, "answer", 0));
        printf("\n");
    }
}

static int run(struct ctl *c, const char *cmdline, char **pos, bool wait, uint64_t tmo_ms)
{
    char *raw = NULL;
    int rc = 1;
    struct ctl_json *v = ctl_call(c, cmdline, &raw);
    if (!v)
        goto out;
    if (c->json && strcmp(pos[0], "queue")) { /* queue stats writes its own */
        printf("%s\n", raw);
        fflush(stdout);
    }
    if (!ctl_json_bool(v, "ok", false)) {
        rc = c->json ? 1 : answer_error(v);
        goto out;
    }
    rc = 0;
    if (!strcmp(pos[0], "status")) {
        if (!c->json)
            print_status(v);
    } else if (!strcmp(pos[0], "drain") || !strcmp(pos[0], "undrain")) {
        if (!c->json)
            printf("%s/%s: %s (%.0f active)\n", pos[1], pos[2], ctl_json_str(v, "state", "?"),
                   ctl_json_num(v, "active", 0));
        fleet_report(c, v);
        if (wait)
            rc = wait_drained(c, pos[1], pos[2], tmo_ms);
    } else if (!strcmp(pos[0], "explain")) {
        if (!c->json)
            print_explain(v);
    } else if (!strcmp(pos[0], "fleet")) {
        if (!c->json)
            ctl_fleet_print(v);
    } else if (!strcmp(pos[0], "queue")) {
        rc = ctl_queue_stats(v, pos[2], c->json);
    } else if (!strcmp(pos[0], "cache")) {
        if (!c->json)
            ctl_cache_print(v, pos[1]);
    } else if (!strcmp(pos[0], "tls")) {
        if (!c->json)
            print_tls(v);
    } else if (!strcmp(pos[0], "weight")) {
        if (!c->json) {
            printf("%s/%s: weight %.0f (configured %.0f, was %.0f)\n", pos[1], pos[2],
                   ctl_json_num(v, "weight", 0), ctl_json_num(v, "config_weight", 0),
                   ctl_json_num(v, "previous", 0));
            const char *note = ctl_json_str(v, "note", NULL);
            if (note)
                printf("note: %s\n", note);
        }
        fleet_report(c, v);
    } else if (!c->json) {
        printf("ok\n");
    }
out:
    ctl_json_free(v);
    free(raw);
    return rc;
}

/* The command line once the options are read. */
struct args {
    char *pos[64]; /* the command and its arguments */
    int npos;
    bool wait, has_timeout, local;
    uint64_t tmo_ms;
    const char *host; /* cache purge --host */
};

/* Reads the options into @c and @a, the rest into a->pos. Returns -1 to go on, or the status
 * to exit with (0 after --help, 2 on a usage error, already reported). */
static int parse_args(int argc, char **argv, struct ctl *c, struct args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(s, "-s") || !strcmp(s, "--socket")) {
            if (++i >= argc)
                return usage_error("%s needs a path", s);
            c->socket = argv[i];
        } else if (!strncmp(s, "--socket=", 9)) {
            c->socket = s + 9;
        } else if (!strcmp(s, "--json")) {
            c->json = true;
        } else if (!strcmp(s, "--wait")) {
            a->wait = true;
        } else if (!strcmp(s, "--local")) {
            a->local = true;
        } else if (!strcmp(s, "--host") || !strncmp(s, "--host=", 7)) {
            a->host = s[6] == '=' ? s + 7 : (++i < argc ? argv[i] : NULL);
            if (!a->host)
                return usage_error("--host needs a host name");
        } else if (!strcmp(s, "--timeout") || !strncmp(s, "--timeout=", 10)) {
            const char *d = s[9] == '=' ? s + 10 : (++i < argc ? argv[i] : NULL);
            if (!d)
                return usage_error("--timeout needs a duration (30s, 2m, 500ms)");
            if (conf_parse_duration(d, &a->tmo_ms) < 0)
                return usage_error("bad --timeout '%s': a duration such as 30s, 2m, 500ms", d);
            a->has_timeout = true;
        } else if (s[0] == '-' && s[1]) {
            return usage_error("unknown option %s", s);
        } else if (a->npos < (int)(sizeof(a->pos) / sizeof(a->pos[0]))) {
            a->pos[a->npos++] = argv[i];
        } else {
            return usage_error("too many arguments");
        }
    }
    if (!c->socket[0])
        return usage_error("empty socket path");
    if (a->npos == 0)
        return usage_error("a command is needed");
    return -1;
}

/* Checks the command, its number of arguments, the options that go with it, and its names
 * and weight, before anything is sent. Returns 0, or 2 after reporting a usage error. */
static int check_command(const struct args *a)
{
    char *const *pos = a->pos;
    const char *cmd = pos[0];
    int want_min, want_max;
    if (!strcmp(cmd, "cache")) {
        const char *why = ctl_cache_check(a->npos, pos, a->host);
        return why ? usage_error("%s", why) : 0;
    }
    if (a->host)
        return usage_error("--host goes with cache purge only");
    if (!strcmp(cmd, "status") || !strcmp(cmd, "reload") || !strcmp(cmd, "tls") ||
        !strcmp(cmd, "fleet"))
        want_min = want_max = 1;
    else if (!strcmp(cmd, "drain") || !strcmp(cmd, "undrain"))
        want_min = want_max = 3;
    else if (!strcmp(cmd, "weight"))
        want_min = want_max = 4;
    else if (!strcmp(cmd, "snapshots") || !strcmp(cmd, "queue"))
        want_min = 2, want_max = 3;
    else if (!strcmp(cmd, "explain") && a->npos > 1 && !strcmp(pos[1], "redis"))
        want_min = want_max = 3;
    else if (!strcmp(cmd, "explain"))
        want_min = 3, want_max = 64;
    else
        return usage_error("unknown command '%s'", cmd);
    if (a->npos < want_min || a->npos > want_max)
        return usage_error("wrong number of arguments for %s", cmd);
    if (!strcmp(cmd, "snapshots") && strcmp(pos[1], "reload"))
        return usage_error("unknown command 'snapshots %s': snapshots reload [SET]", pos[1]);
    if (!strcmp(cmd, "queue"))
        return strcmp(pos[1], "stats")
                   ? usage_error("unknown command 'queue %s': queue stats [NAME]", pos[1])
                   : 0;
    if ((a->wait || a->has_timeout) && strcmp(cmd, "drain"))
        return usage_error("--wait and --timeout go with drain only");
    if (a->has_timeout && !a->wait)
        return usage_error("--timeout needs --wait");
    if (a->local && strcmp(cmd, "drain") && strcmp(cmd, "undrain") && strcmp(cmd, "weight"))
        return usage_error("--local goes with drain, undrain and weight only");
    for (int k = 1; k < a->npos && strcmp(cmd, "explain"); k++) {
        bool is_weight = !strcmp(cmd, "weight") && k == 3;
        bool is_reload = !strcmp(cmd, "snapshots") && k == 1;
        if (!is_weight && !is_reload && !name_ok(pos[k]))
            return usage_error("bad name '%s': letters, digits, '_', '-', '.'", pos[k]);
    }
    if (!strcmp(cmd, "weight")) {
        const char *w = pos[3];
        size_t n = strspn(w, "0123456789");
        if (n == 0 || n > 3 || w[n] || atoi(w) < 1 || atoi(w) > 256)
            return usage_error("bad weight '%s': a whole number in 1..256", w);
    }
    return 0;
}

/* The command line sent to lb: the words of @a joined by spaces into @line (@cap bytes).
 * Returns 0, or -ENAMETOOLONG when it does not fit. */
static int join_command(const struct args *a, char *line, size_t cap)
{
    size_t used = 0;
    for (int k = 0; k < a->npos; k++) {
        size_t n = strlen(a->pos[k]);
        if (used + n + 2 > cap)
            return -ENAMETOOLONG;
        if (k)
            line[used++] = ' ';
        memcpy(line + used, a->pos[k], n + 1);
        used += n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct ctl c = {.socket = CTL_DEFAULT_SOCKET, .fd = -1};
    /* An lb run by hand listens on the default; the packaged service on /run/lb. */
    if (access(CTL_DEFAULT_SOCKET, F_OK) < 0 && access(CTL_SERVICE_SOCKET, F_OK) == 0)
        c.socket = CTL_SERVICE_SOCKET;
    struct args a = {.tmo_ms = 30000};
    int rc = parse_args(argc, argv, &c, &a);
    if (rc >= 0)
        return rc;
    if ((rc = check_command(&a)) != 0)
        return rc;
    char line[4096] = "";
    if (join_command(&a, line, sizeof(line)) < 0)
        return usage_error("command too long");
    if (!strcmp(a.pos[0], "queue")) /* lb names the lists; lbctl reads them in Redis */
        snprintf(line, sizeof(line), "queues");
    if (a.local && strlen(line) + 9 < sizeof(line))
        strcat(line, " --local");
    if (a.host && strlen(line) + strlen(a.host) + 9 >= sizeof(line))
        return usage_error("command too long");
    if (a.host)
        strcat(strcat(line, " --host "), a.host);
    if (ctl_connect(&c) < 0)
        return 1;
    rc = run(&c, line, a.pos, a.wait, a.tmo_ms);
    close(c.fd);
    free(c.buf);
    return rc;
}
