/*
 * libFuzzer target for the config loader: any bytes go through conf_load_buf(), which must
 * return a conf or diagnostics, never crash, hang, leak or read past @len. The input is not
 * NUL-terminated on purpose (libFuzzer's buffer is exactly @size bytes, so ASan catches a
 * read one past the end). `make fuzz FUZZ_SECONDS=N` runs it; seeds are in
 * tests/fuzz/corpus/fuzz_conf/.
 *
 * The file name has no directory, so relative paths in a config resolve against the current
 * directory; the loader only stat()s and access()es them.
 */
#include <stdint.h>
#include <stdlib.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct conf_diags d; /* 12 KiB: keep it off the fuzzer's stack */
    struct conf *c = conf_load_buf("fuzz.yaml", (const char *)data, size, &d);
    if (c) {
        /* A loaded config must be consistent: resolved references point inside the arrays. */
        for (size_t i = 0; i < c->nlisteners; i++) {
            const struct conf_listener *l = &c->listeners[i];
            if (l->protocol == CONF_PROTO_TCP &&
                (l->cluster_idx < 0 || (size_t)l->cluster_idx >= c->nclusters))
                abort();
            for (size_t j = 0; j < l->nroutes; j++) {
                const struct conf_route *r = &l->routes[j];
                size_t lim = r->action == CONF_ACT_CLUSTER ? c->nclusters : c->nstatics;
                if (r->action != CONF_ACT_ENQUEUE &&
                    (r->target_idx < 0 || (size_t)r->target_idx >= lim))
                    abort();
            }
        }
        if (d.n || d.dropped)
            abort(); /* a conf comes back only when there was nothing to report */
        conf_free(c);
    } else if (d.n == 0 && d.dropped == 0) {
        abort(); /* a refusal always says why */
    }
    for (size_t i = 0; i < d.n; i++)
        if (d.items[i].msg[0] == '\0')
            abort();
    return 0;
}
