/*
 * libFuzzer target for lb/redis/cmd.c: the parser of what Redis clients send, and the
 * command table and key hash it feeds.
 *
 * Input layout: byte 0 picks the limits (request size and argument count), byte 1 seeds the
 * split points, the rest is a client's stream. It is parsed request by request, as the
 * proxy does, once whole and once fed in pieces; the target traps when the results differ,
 * when a request's length is outside what was available, or when an argument points
 * outside its request. Every call gets a heap copy of exactly the bytes it may read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/redis/cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#define MAXARGS 64

/* Parses @n bytes in full: the lengths of the requests, -1 at an error, into @lens. */
static size_t parse_stream(const char *s, size_t n, const struct rds_limits *lim, int64_t *lens,
                           size_t cap, uint32_t step)
{
    static struct rds_arg v[MAXARGS];
    struct rds_argv a = {.v = v, .cap = MAXARGS};
    char err[120];
    size_t off = 0, k = 0;
    size_t avail = step ? 0 : n;
    while (k < cap && off < n) {
        if (step)
            avail = avail + step < n ? avail + step : n;
        size_t len = avail - off;
        char *copy = malloc(len ? len : 1);
        memcpy(copy, s + off, len);
        int64_t r = rds_parse(copy, len, lim, &a, err, sizeof(err));
        if (r > 0) {
            CHECK((size_t)r <= len);
            for (uint32_t i = 0; i < a.n; i++)
                CHECK((uint64_t)v[i].off + v[i].len <= (uint64_t)r);
            if (a.n) {
                const struct rds_cmd *c = rds_cmd_lookup(copy + v[0].off, v[0].len);
                if (c)
                    (void)rds_arity_ok(c, a.n);
                (void)rds_key_hash(copy + v[0].off, v[0].len);
            }
        } else {
            CHECK(r == RDS_AGAIN || (r == -1 && err[0]));
        }
        free(copy);
        if (r == RDS_AGAIN) {
            if (avail == n)
                break;
            continue;
        }
        lens[k++] = r;
        if (r < 0)
            break;
        off += (size_t)r;
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const uint64_t sizes[] = {16, 64, 1024, 1 << 20};
    struct rds_limits lim = {.max_request = sizes[data[0] & 3],
                             .max_args = 1 + ((data[0] >> 2) & 63)};
    uint32_t step = 1 + data[1] % 7;
    const char *s = (const char *)data + 2;
    size_t n = size - 2;
    int64_t whole[64], pieces[64];
    size_t a = parse_stream(s, n, &lim, whole, 64, 0);
    size_t b = parse_stream(s, n, &lim, pieces, 64, step);
    CHECK(a == b);
    for (size_t i = 0; i < a; i++)
        CHECK(whole[i] == pieces[i]);
    return 0;
}
