/*
 * libFuzzer target for queue entries (lb/queue/entry.c): the input is cut into a URI, one
 * header and a body; the encoded entry must fit its bound and parse with lbctl's JSON reader
 * (tools/ctl_json.c), and a body that is valid UTF-8 without NUL must come back unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/queue/entry.h"
#include "tools/ctl_json.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t a = data[0] % (size - 2), b = data[1] % (size - 2 - a);
    const char *p = (const char *)data + 2;
    struct queue_hdr h = {{p, a / 2}, {p + a / 2, a - a / 2}};
    struct queue_entry e = {.id = {"id-1", 4},
                            .ts_ms = 1,
                            .method = {"POST", 4},
                            .uri = {p + a, b},
                            .hdrs = &h,
                            .nhdrs = 1,
                            .body = (const uint8_t *)p + a + b,
                            .body_len = size - 2 - a - b};
    size_t cap = queue_entry_bound(&e);
    char *buf = malloc(cap);
    if (!buf)
        return 0;
    ssize_t n = queue_entry_encode(&e, buf, cap);
    if (n <= 0)
        abort();
    struct ctl_json *j = ctl_json_parse(buf, (size_t)n, NULL, 0);
    if (!j)
        abort();
    const char *body = ctl_json_str(j, "body", NULL);
    if (body && !memchr(e.body, 0, e.body_len) &&
        (strlen(body) != e.body_len || memcmp(body, e.body, e.body_len)))
        abort();
    ctl_json_free(j);
    free(buf);
    return 0;
}
