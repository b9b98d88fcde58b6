/*
 * The admin socket and the fleet (lb/fleet): `fleet` lists the instances sharing
 * global.redis, `fleet ack T` counts who applied change T; a drain, undrain or weight made
 * here goes to the fleet (unless --local), and its answer says whether Redis took it.
 */
#include <string.h>

#include "lb/admin/admin.h"
#include "lb/fleet/fleet.h"

void admin_status(struct lb_runtime *rt, const double *const *rates, struct lb_jbuf *out)
{
    lb_jbuf_printf(out, "{\"ok\":true,");
    admin_status_clusters(rt, rates, out);
    struct fleet *f = fleet_current();
    if (f)
        lb_jbuf_printf(out, ",\"fleet\":{\"up\":%s}", fleet_up(f) ? "true" : "false");
    lb_jbuf_printf(out, "}");
}

int admin_fleet(const struct admin_cmd *cmd, struct lb_jbuf *out)
{
    struct fleet *f = fleet_current();
    if (!f) {
        admin_error(out, "this configuration has no global.redis: there is no fleet");
        return ADMIN_R_ERROR;
    }
    if (cmd->ack) {
        unsigned acks = 0, live = 0;
        if (!fleet_acks(f, cmd->ack, &acks, &live)) {
            admin_error(out, "no such recent change made on this instance");
            return ADMIN_R_ERROR;
        }
        lb_jbuf_printf(out, "{\"ok\":true,\"t\":%llu,\"acks\":%u,\"live\":%u,\"up\":%s}",
                       (unsigned long long)cmd->ack, acks, live, fleet_up(f) ? "true" : "false");
        return 0;
    }
    lb_jbuf_printf(out, "{\"ok\":true,\"fleet\":");
    fleet_describe(f, out);
    lb_jbuf_printf(out, "}");
    return 0;
}

void admin_fleet_share(const struct admin_cmd *cmd, struct lb_jbuf *out)
{
    struct fleet *f = fleet_current();
    if (!f || cmd->local || out->len == 0 || out->p[out->len - 1] != '}' ||
        (cmd->verb != ADMIN_DRAIN && cmd->verb != ADMIN_UNDRAIN && cmd->verb != ADMIN_WEIGHT))
        return;
    struct fleet_change c = {
        .kind = cmd->verb == ADMIN_WEIGHT ? FLEET_WEIGHT : FLEET_DRAIN,
        .value = cmd->verb == ADMIN_WEIGHT ? cmd->weight : cmd->verb == ADMIN_DRAIN,
    };
    memcpy(c.cluster, cmd->cluster, sizeof(c.cluster));
    memcpy(c.server, cmd->server, sizeof(c.server));
    bool up = false;
    unsigned live = 0;
    fleet_local(f, &c, &up, &live);
    out->len--; /* the answer's closing brace: the fleet part goes inside */
    lb_jbuf_printf(out, ",\"fleet\":{\"t\":%llu,\"reachable\":%s,\"live\":%u}}",
                   (unsigned long long)c.t, up ? "true" : "false", live);
}
