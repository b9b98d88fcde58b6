/*
 * libFuzzer target for tools/bench/rate_rsp.c, bench-rate's framing of HTTP/1.x responses
 * from a server under test. The input after its first byte is fed as bench-rate feeds it: in
 * pieces (the first byte sets their size) appended to a buffer of RATE_BUF bytes, the bytes
 * taken removed after each call. Checked: never more taken than given, a finished response
 * has a final status, and a buffer that stays full is always refused (no read of 0 bytes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench/rate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[RATE_BUF];
    struct rate_rsp r = {0};
    size_t piece, at = 1, len = 0;

    if (size < 1)
        return 0;
    piece = (size_t)data[0] % 64 + 1;
    while (at < size) {
        size_t n = size - at < piece ? size - at : piece, used = 0;
        if (n > RATE_BUF - len)
            n = RATE_BUF - len;
        CHECK(n > 0);
        /* A heap copy of exactly the buffered bytes, so a read past them is caught. */
        memcpy(buf + len, data + at, n);
        at += n;
        len += n;
        char *copy = malloc(len);
        if (!copy)
            return 0;
        memcpy(copy, buf, len);
        int rc = rate_rsp_feed(&r, copy, len, &used);
        free(copy);
        if (rc < 0)
            return 0;
        CHECK(used <= len);
        CHECK(rc == 0 || (r.status >= 200 && r.status <= 599));
        memmove(buf, buf + used, len - used);
        len -= used;
    }
    return 0;
}
