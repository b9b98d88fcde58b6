/*
 * lb's entry point: command line, config check mode, and handing a loaded config to the
 * proxy (lb/core/proxy.c) which owns workers, the control thread and shutdown.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "lb/core/proxy.h"
#include "lb/tls/tls.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: lb -c FILE [-t]\n"
                 "\n"
                 "  -c FILE   configuration file (YAML)\n"
                 "  -t        check the configuration and exit: 0 valid, 1 errors (printed as\n"
                 "            FILE:LINE:COLUMN: message)\n"
                 "  -h        this help\n"
                 "\n"
                 "Signals: SIGTERM/SIGINT stop accepting and let connections finish; SIGHUP\n"
                 "reloads the file (checked first: on errors the running configuration stays).\n"
                 "lbctl (build/lbctl -h) drives a running lb through its admin socket.\n");
}

/* Builds the TLS contexts of @c and prints their errors and warnings. Returns 1 on errors. */
static int lb_tls_check(const struct conf *c, const char *file, FILE *out)
{
    struct conf_diags *errs = calloc(1, sizeof(*errs)), *warns = calloc(1, sizeof(*warns));
    if (!errs || !warns) {
        free(errs);
        free(warns);
        fprintf(out, "lb: out of memory\n");
        return 1;
    }
    struct tls_gen *g = tls_gen_build(c, errs, warns);
    conf_diags_print(warns, file, out);
    conf_diags_print(errs, file, out);
    tls_gen_free(g);
    free(errs);
    free(warns);
    return g ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    int check_only = 0, opt;

    while ((opt = getopt(argc, argv, "c:th")) != -1) {
        switch (opt) {
        case 'c':
            file = optarg;
            break;
        case 't':
            check_only = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!file || optind != argc) {
        fprintf(stderr, "lb: %s\n", file ? "unexpected argument" : "-c FILE is required");
        usage(stderr);
        return 2;
    }

    struct conf_diags *d = calloc(1, sizeof(*d));
    if (!d) {
        fprintf(stderr, "lb: out of memory\n");
        return 1;
    }
    struct conf *c = conf_load(file, d);
    if (!c) {
        conf_diags_print(d, file, stderr);
        free(d);
        return 1;
    }
    free(d);
    if (check_only) {
        /* Certificates, keys and CAs are read as a start would read them. */
        int bad = lb_tls_check(c, file, stderr);
        if (!bad)
            printf("%s: configuration ok\n", file);
        conf_free(c);
        return bad ? 1 : 0;
    }
    /* takes @c */
    return lb_proxy_run(c, file);
}
