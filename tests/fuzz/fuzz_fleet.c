/*
 * libFuzzer target for lb/fleet/wire.c: the input is cut into a hash field and value, and
 * also read whole as an event, an invalidate event and a heartbeat. Whatever is accepted must
 * format back to exactly what was read (so a value lb accepts is one lb could have written).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/fleet/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1, cut = data[0] % (n + 1);
    struct fleet_change c;
    const char *why;
    char buf[1024];
    if (fleet_state_parse(p, cut, p + cut, n - cut, &c, &why) == 0) {
        int fl = fleet_field_format(&c, buf, sizeof(buf));
        if (fl != (int)cut || memcmp(buf, p, cut))
            abort();
        int vl = fleet_value_format(&c, buf, sizeof(buf));
        if (vl != (int)(n - cut) || memcmp(buf, p + cut, n - cut))
            abort();
    }
    if (fleet_event_parse(p, n, &c, &why) == 0) {
        int el = fleet_event_format(&c, buf, sizeof(buf));
        if (el != (int)n || memcmp(buf, p, n))
            abort();
    }
    static struct fleet_inval iv;
    static char ib[FLEET_INVAL_HOST_MAX + FLEET_INVAL_TARGET_MAX + CONF_NAME_MAX + 16];
    if (fleet_inval_parse(p, n, &iv, &why) == 0) {
        if (!fleet_is_inval(p, n) ||
            !fleet_inval_ok(iv.host, iv.host_len, iv.target, iv.target_len))
            abort();
        int il = fleet_inval_format(&iv, ib, sizeof(ib));
        if (il != (int)n || memcmp(ib, p, n))
            abort();
    }
    struct fleet_member m;
    struct fleet_view v[8];
    size_t nv;
    if (fleet_heartbeat_parse(p, n, &m, v, 8, &nv, &why) == 0 && nv > 8)
        abort();
    return 0;
}
