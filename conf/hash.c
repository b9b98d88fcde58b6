/*
 * lb_hash64: see conf/hash.h for the contract and the pieces.
 *
 * It was lb/cluster's hash; static/ had a second one of the same shape (one xxh64 lane per
 * word, murmur3's finaliser) and lb/cache a third (one 128-bit multiply per word, no
 * finaliser). The first two measured the same speed (about 4 GB/s on one core, 7 ns for an
 * IPv4 address) and the same avalanche; this one was kept because it takes a seed, its
 * finaliser is the better mixer of the two, and its values already decide where every
 * consistent-hash key lives, so keeping it moved no key of any running fleet.
 */
#include "conf/hash.h"

uint64_t lb_hash64(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    uint64_t h = lb_hash_start(seed, n);

    for (; n >= 8; b += 8, n -= 8)
        h = lb_hash_round(h, lb_load_le64(b));
    if (n)
        h = lb_hash_round(h, lb_load_le_tail(b, n));
    return lb_hash_mix64(h);
}
