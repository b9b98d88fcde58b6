/*
 * Publishing snapshot sets (static/): loading a set's directory again and swapping the new
 * set in, for SIGHUP and `lbctl snapshots reload [SET]`. Runs on the control thread. A set
 * that fails to load (unreadable file, over max_file_bytes) leaves the published one in
 * place; workers see the new set at their next request to it, and answers already in
 * flight keep the set they started with (lb/http/proxy.c holds a reference per answer).
 */
#include <errno.h>
#include <string.h>

#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/core/snapshots.h"

int lb_snapshots_reload(struct lb_runtime *rt, const char *name, struct lb_err *err)
{
    const struct conf *c = rt->conf;
    int found = 0, failed = 0;
    for (size_t i = 0; i < rt->nsnap_slots; i++) {
        const struct conf_static *cf = &c->statics[i];
        if (name && strcmp(name, cf->name))
            continue;
        found++;
        struct snap_set *set = NULL;
        struct lb_err e = {{0}};
        if (snap_set_load(cf, &set, &e) < 0) {
            failed++;
            lb_warn("snapshot reload failed: the published set stays", "set=%s err=\"%s\"",
                    cf->name, e.msg);
            lb_err_set(err, "%s", e.msg);
            continue;
        }
        struct snap_stats st;
        snap_set_stats(set, &st);
        snap_slot_publish(&rt->snap_slots[i], set); /* takes @set */
        lb_info("snapshots published", "set=%s files=%lu bytes=%lu memory=%lu", cf->name,
                (unsigned long)st.files, (unsigned long)st.body_bytes,
                (unsigned long)st.memory_bytes);
    }
    if (name && !found) {
        char names[200] = "";
        for (size_t i = 0; i < rt->nsnap_slots; i++) {
            if (strlen(names) + strlen(c->statics[i].name) + 2 >= sizeof(names))
                break;
            if (i)
                strcat(names, " ");
            strcat(names, c->statics[i].name);
        }
        lb_err_set(err, "no snapshot set named %s (sets: %s)", name, names[0] ? names : "none");
        return -ENOENT;
    }
    return failed ? -EIO : 0;
}
