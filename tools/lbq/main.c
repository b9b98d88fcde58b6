/*
 * lbq: the consumer of lb's enqueue routes (docs/lbq.md).
 *
 *   lbq [-c FILE] [--redis HOST:PORT] consume QUEUE --to URL [--threads N] [--max-tries N]
 *       [--rate R] [--json] [--timeout DUR] [--backoff DUR] [--heartbeat-ttl DUR]
 *   lbq [-c FILE] [--redis HOST:PORT] stats QUEUE [--json]
 *
 * Redis: --redis, else global.redis.nodes of the lb config FILE (the node answering ROLE as
 * master), else 127.0.0.1:6379; a password comes from $LBQ_REDIS_PASSWORD.
 * Exit codes: 0 ok (also after SIGTERM/SIGINT), 1 error, 2 usage.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "tools/lbq/lbq.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lbq [-c FILE] [--redis HOST:PORT] consume QUEUE --to http://HOST:PORT[/PATH]\n"
            "           [--threads N] [--max-tries N] [--rate R] [--json] [--timeout DUR]\n"
            "           [--backoff DUR] [--heartbeat-ttl DUR]\n"
            "       lbq [-c FILE] [--redis HOST:PORT] stats QUEUE [--json]\n"
            "defaults: --threads 4, --max-tries 5, --rate 0 (unlimited), --timeout 10s,\n"
            "          --backoff 200ms (doubled each try, at most 10s), --heartbeat-ttl 10s\n"
            "exit: 0 ok, 1 error, 2 usage\n");
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lbq: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    usage(stderr);
    return 2;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

static int parse_ms(const char *s, uint64_t min, uint64_t max, uint64_t *ms)
{
    return conf_parse_duration(s, ms) < 0 || *ms < min || *ms > max ? -EINVAL : 0;
}

static int add_node(struct lbq_opts *o, const char *node)
{
    if (o->nnodes == LBQ_MAX_NODES || strlen(node) >= sizeof(o->nodes[0]) || !strchr(node, ':'))
        return -EINVAL;
    snprintf(o->nodes[o->nnodes++], sizeof(o->nodes[0]), "%s", node);
    return 0;
}

/* global.redis.nodes of an lb config. 0, or 1 with the errors printed. */
static int load_config(struct lbq_opts *o, const char *file)
{
    static struct conf_diags d;
    struct conf *c = conf_load(file, &d);
    if (!c) {
        conf_diags_print(&d, file, stderr);
        return 1;
    }
    int rc = 0;
    if (!c->global.nredis_nodes) {
        fprintf(stderr, "lbq: %s: no global.redis block (use --redis HOST:PORT)\n", file);
        rc = 1;
    }
    for (size_t i = 0; i < c->global.nredis_nodes && !rc; i++)
        if (add_node(o, c->global.redis_nodes[i]) < 0) {
            fprintf(stderr, "lbq: %s: too many redis nodes\n", file);
            rc = 1;
        }
    conf_free(c);
    return rc;
}

struct args {
    const char *cmd, *config, *redis, *to;
};

/* One option with a value at argv[*i]; returns 0, or 2 after a usage error. */
static int option(struct lbq_opts *o, struct args *a, int argc, char **argv, int *i)
{
    const char *name = argv[*i];
    if (!strcmp(name, "--json")) {
        o->json = true;
        return 0;
    }
    if (*i + 1 >= argc)
        return usage_error("%s needs a value", name);
    const char *v = argv[++*i];
    uint64_t ms;
    char *end;
    if (!strcmp(name, "-c"))
        a->config = v;
    else if (!strcmp(name, "--redis"))
        a->redis = v;
    else if (!strcmp(name, "--to"))
        a->to = v;
    else if (!strcmp(name, "--threads")) {
        if (parse_uint(v, 1, LBQ_MAX_THREADS, &o->threads) < 0)
            return usage_error("--threads: 1 to %d", LBQ_MAX_THREADS);
    } else if (!strcmp(name, "--max-tries")) {
        if (parse_uint(v, 1, 1000, &o->max_tries) < 0)
            return usage_error("--max-tries: 1 to 1000");
    } else if (!strcmp(name, "--rate")) {
        o->rate = strtod(v, &end);
        if (end == v || *end || !(o->rate >= 0 && o->rate <= 1e7))
            return usage_error("--rate: deliveries per second, 0 (unlimited) to 1e7");
    } else if (!strcmp(name, "--timeout")) {
        if (parse_ms(v, 1, 3600000, &ms) < 0)
            return usage_error("--timeout: a duration from 1ms to 1h");
        o->timeout_ms = (int)ms;
    } else if (!strcmp(name, "--backoff")) {
        if (parse_ms(v, 1, 600000, &ms) < 0)
            return usage_error("--backoff: a duration from 1ms to 10m");
        o->backoff_ms = (unsigned)ms;
    } else if (!strcmp(name, "--heartbeat-ttl")) {
        if (parse_ms(v, 1000, 3600000, &ms) < 0 || ms % 1000)
            return usage_error("--heartbeat-ttl: whole seconds from 1s to 1h");
        o->hb_ttl = (unsigned)(ms / 1000);
    } else
        return usage_error("unknown option %s", name);
    return 0;
}

/* Returns -1 to go on, or an exit code. */
static int parse_args(struct lbq_opts *o, struct args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (argv[i][0] == '-') {
            int rc = option(o, a, argc, argv, &i);
            if (rc)
                return rc;
        } else if (!a->cmd)
            a->cmd = argv[i];
        else if (!o->queue)
            o->queue = argv[i];
        else
            return usage_error("unexpected argument %s", argv[i]);
    }
    if (!a->cmd || (strcmp(a->cmd, "consume") && strcmp(a->cmd, "stats")))
        return usage_error(a->cmd ? "unknown command %s" : "a command is needed%s",
                           a->cmd ? a->cmd : "");
    if (!o->queue || !o->queue[0] || strlen(o->queue) > 200)
        return usage_error("%s needs a QUEUE name (at most 200 bytes)", a->cmd);
    if (!strcmp(a->cmd, "consume") && !a->to)
        return usage_error("consume needs --to URL");
    if (!strcmp(a->cmd, "stats") && a->to)
        return usage_error("stats takes no --to");
    return -1;
}

static int redis_from_args(struct lbq_opts *o, const struct args *a)
{
    if (a->redis) {
        if (add_node(o, a->redis) < 0)
            return usage_error("--redis: HOST:PORT");
        return -1;
    }
    if (a->config)
        return load_config(o, a->config) ? 1 : -1;
    add_node(o, "127.0.0.1:6379");
    return -1;
}

static int cmd_stats(struct lbq_opts *o)
{
    struct lb_err err = {{0}};
    struct lbq_qstats s;
    redisContext *c = lbq_redis_connect(o, &err);
    if (!c || lbq_stats_get(c, o, &s, &err) < 0) {
        fprintf(stderr, "lbq: %s\n", err.msg);
        if (c)
            redisFree(c);
        return 1;
    }
    redisFree(c);
    char age[32] = "null";
    if (s.oldest_age_ms >= 0)
        snprintf(age, sizeof(age), "%lld", s.oldest_age_ms);
    if (o->json) {
        printf("{\"queue\":");
        lbq_json_str(stdout, o->queue);
        printf(",\"length\":%lld,\"dead\":%lld,\"processing\":%lld,"
               "\"consumers\":%lld,\"live_consumers\":%lld,\"retrying\":%lld,"
               "\"oldest_age_ms\":%s}\n",
               s.length, s.dead, s.processing, s.consumers, s.live_consumers, s.tries_pending, age);
        return 0;
    }
    if (s.oldest_age_ms == -1)
        snprintf(age, sizeof(age), "-");
    else if (s.oldest_age_ms == -2)
        snprintf(age, sizeof(age), "unreadable entry");
    else
        snprintf(age, sizeof(age), "%.3fs", (double)s.oldest_age_ms / 1000);
    printf("queue       %s\nlength      %lld\ndead        %lld\nprocessing  %lld\n"
           "consumers   %lld (%lld alive)\nretrying    %lld\noldest age  %s\n",
           o->queue, s.length, s.dead, s.processing, s.consumers, s.live_consumers, s.tries_pending,
           age);
    return 0;
}

int main(int argc, char **argv)
{
    static struct lbq_opts o = {.threads = 4,
                                .max_tries = 5,
                                .hb_ttl = 10,
                                .timeout_ms = 10000,
                                .redis_timeout_ms = 5000,
                                .backoff_ms = 200,
                                .backoff_max_ms = 10000};
    struct args a = {0};
    struct lb_err err = {{0}};
    int rc = parse_args(&o, &a, argc, argv);
    if (rc >= 0)
        return rc;
    if ((rc = redis_from_args(&o, &a)) >= 0)
        return rc;
    o.password = getenv("LBQ_REDIS_PASSWORD");
    if (!strcmp(a.cmd, "stats"))
        return cmd_stats(&o);
    if (lbq_url_parse(&o.url, a.to, &err) < 0)
        return usage_error("--to: %s", err.msg);
    if (o.backoff_max_ms < o.backoff_ms)
        o.backoff_max_ms = o.backoff_ms;
    return lbq_consume(&o);
}
