/*
 * The one 64-bit hash of the project: balancer keys and tables (lb/cluster), snapshot ETags
 * and paths (static/), the response cache's keys (lb/cache). conf/ is the library everything
 * links and depends on nothing of ours, so the hash lives here where every module can reach
 * it without pointing back into lb/ (as conf/err.h does for struct lb_err).
 *
 * The value is part of the contract: consistent-hash keys must land on the same server after
 * a restart, on another machine and on another lb instance, and ETags must not change while
 * the content does not. So the input is read as little-endian words whatever the CPU, and
 * the constants are fixed forever (tests/unit/test_balance.c pins a few outputs).
 *
 * The pieces are exposed for callers that hash a key made of several parts without copying
 * it into one buffer (lb/cache folds the host's letter case on the fly): lb_hash_start(),
 * one lb_hash_round() per 8-byte word, lb_load_le_tail() for a last partial word, and
 * lb_hash_mix64() at the end. lb_hash64() is exactly that over one buffer.
 */
#ifndef CONF_HASH_H
#define CONF_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LB_H_K0 0xcd7bfdc328a2c651ull
#define LB_H_K1 0xf8692aae3e21c7b7ull
#define LB_H_K2 0x1a86d21afba71a65ull
#define LB_H_K3 0x47bb00bf0c1dd3d3ull

static inline uint64_t lb_rotl64(uint64_t x, unsigned r)
{
    return x << r | x >> (64 - r);
}

static inline uint64_t lb_load_le64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static inline uint32_t lb_load_le32(const unsigned char *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof(w));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap32(w);
#endif
    return w;
}

/*
 * The @n (1..7) bytes at @p as a little-endian word, zero above them: the same value as a
 * byte-by-byte loop, from two overlapping loads (or three byte reads below 4) instead of up
 * to seven dependent ones. Reads nothing outside p[0..n-1].
 */
static inline uint64_t lb_load_le_tail(const unsigned char *p, size_t n)
{
    if (n >= 4)
        return (uint64_t)lb_load_le32(p) | (uint64_t)lb_load_le32(p + n - 4) << (8 * (n - 4));
    return (uint64_t)p[0] | (uint64_t)p[n / 2] << (8 * (n / 2)) |
           (uint64_t)p[n - 1] << (8 * (n - 1));
}

/* The state before the first word. The length seeds it, so inputs that differ only by
 * trailing zero bytes differ; a caller hashing several parts passes a value that encodes
 * every part's length. */
static inline uint64_t lb_hash_start(uint64_t seed, uint64_t len)
{
    return seed ^ LB_H_K2 ^ (len * LB_H_K0);
}

/*
 * Folds one word into the state. The word goes through a bijective scramble (multiply,
 * rotate, multiply) and is xored in; the state is then rotated and multiplied by an odd
 * constant. Every step is invertible, so the state never collapses and no word can erase
 * what came before. The scramble of a word does not depend on the state, so the CPU runs
 * it ahead: the chain from word to word is one rotate, one multiply, one add.
 */
static inline uint64_t lb_hash_round(uint64_t h, uint64_t w)
{
    w *= LB_H_K1;
    w = lb_rotl64(w, 31);
    w *= LB_H_K2;
    h ^= w;
    return lb_rotl64(h, 27) * LB_H_K3 + LB_H_K0;
}

/* A bijective 64-bit finaliser (splitmix64's, Stafford's "Mix13"): every input bit affects
 * every output bit, which matters most for the short keys we see (IPv4 addresses, user ids).
 * Also used alone to derive per-attempt keys and to seed random generators. */
static inline uint64_t lb_hash_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* The hash of the @n bytes at @p (@p may be NULL when @n is 0), stable across runs, builds
 * and machines. Not cryptographic: seed it with a secret where outsiders choose the keys of
 * a table (lb/cache does). */
uint64_t lb_hash64(const void *p, size_t n, uint64_t seed);

#endif
