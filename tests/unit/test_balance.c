/*
 * Balancing algorithms (lb/cluster/): shares follow weights, unusable and weight-0 servers
 * take nothing, round robin's order is one sequence across workers, hash balancers move only
 * the keys they must, bounded load holds its cap, and lb_hash64 never changes. Measured
 * numbers are printed so a run documents itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lb/cluster/balance.h"
#include "lb/cluster/cluster.h"

/* Every test binary links all of lb/, and lb/proxy.o calls conf_free(); in a tree where the
 * conf module has not landed this weak stand-in lets the test link. The real one wins. */
__attribute__((weak)) void conf_free(struct conf *c)
{
    (void)c;
}

#define T_MAX 16
#define T_PICKS 100000u
#define T_KEYS 100000u
#define T_HOLD_MAX 1024u

static const enum conf_balance t_all_algos[] = {
    CONF_BAL_ROUND_ROBIN, CONF_BAL_LEAST_CONN, CONF_BAL_RANDOM_TWO,
    CONF_BAL_MAGLEV,      CONF_BAL_RING_HASH,
};
#define T_NALGOS (sizeof(t_all_algos) / sizeof(t_all_algos[0]))

static const char *t_algo_name(enum conf_balance a)
{
    switch (a) {
    case CONF_BAL_ROUND_ROBIN:
        return "round_robin";
    case CONF_BAL_LEAST_CONN:
        return "least_conn";
    case CONF_BAL_RANDOM_TWO:
        return "random_two";
    case CONF_BAL_MAGLEV:
        return "maglev";
    case CONF_BAL_RING_HASH:
        return "ring_hash";
    }
    return "?";
}

/* The server table a worker would see: health, load and effective weight per index. */
struct t_view {
    bool down[T_MAX];
    uint32_t active[T_MAX];
    uint32_t weight[T_MAX];
};

static bool t_usable(const void *arg, uint32_t i)
{
    const struct t_view *t = arg;
    return !t->down[i];
}

static uint32_t t_active(const void *arg, uint32_t i)
{
    const struct t_view *t = arg;
    return t->active[i];
}

static uint32_t t_weight(const void *arg, uint32_t i)
{
    const struct t_view *t = arg;
    return t->weight[i];
}

static struct cl_bal_view t_bind(const struct t_view *t)
{
    return (struct cl_bal_view){
        .usable = t_usable, .active = t_active, .weight = t_weight, .arg = t};
}

/* A view over @arg's weights (uint32_t[]), everything usable and idle. */
static bool t_big_usable(const void *arg, uint32_t i)
{
    return true;
}

static uint32_t t_big_active(const void *arg, uint32_t i)
{
    return 0;
}

static uint32_t t_big_weight(const void *arg, uint32_t i)
{
    const uint32_t *w = arg;
    return w[i];
}

static char t_names[T_MAX + 1][16];

/* Servers "srv-0".."srv-(n-1)" with weights @w (NULL: all 1), skipping index @skip (or
 * n to skip none): the latter is "the same config with one server removed". */
static uint32_t t_servers(struct cl_bal_server *out, uint32_t n, const uint32_t *w, uint32_t skip)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i == skip)
            continue;
        snprintf(t_names[i], sizeof(t_names[i]), "srv-%u", i);
        out[k].name = t_names[i];
        out[k].weight = w ? w[i] : 1;
        k++;
    }
    return k;
}

static struct cl_balancer *t_new(enum conf_balance algo, uint32_t n, const uint32_t *w,
                                 double bounded_load, struct t_view *tv)
{
    struct cl_bal_server s[T_MAX];
    struct lb_err err = {{0}};
    uint32_t k = t_servers(s, n, w, n);
    struct cl_balancer *b = cl_balancer_new(algo, s, k, bounded_load, 0, &err);
    if (!b)
        fprintf(stderr, "lb_balancer_new(%s): %s\n", t_algo_name(algo), err.msg);
    assert_non_null(b);
    if (tv) {
        memset(tv, 0, sizeof(*tv));
        for (uint32_t i = 0; i < n; i++)
            tv->weight[i] = w ? w[i] : 1;
    }
    return b;
}

static uint64_t t_key(uint32_t i)
{
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "user-%u", i);
    return lb_hash64(buf, (size_t)len, 0);
}

/*
 * Drives @picks picks. Each pick holds a connection that is released @hold picks later, so
 * load-aware algorithms see a realistic steady state (hold connections in flight). @hold 0
 * holds nothing. Hash balancers get key t_key(p).
 */
static void t_run(const struct cl_balancer *b, struct t_view *tv, uint64_t seed, uint32_t picks,
                  uint32_t hold, uint32_t *count)
{
    static int q[T_HOLD_MAX];
    struct cl_bal_state st = {0};
    struct cl_bal_view v = t_bind(tv);

    assert_true(hold <= T_HOLD_MAX);
    assert_int_equal(cl_bal_state_init(&st, b, seed), 0);
    for (uint32_t p = 0; p < picks; p++) {
        if (hold && p >= hold)
            tv->active[q[p % hold]]--;
        int s = cl_balancer_pick(b, &st, t_key(p), &v);
        assert_true(s >= 0 && (uint32_t)s < cl_balancer_size(b));
        count[s]++;
        if (hold) {
            tv->active[s]++;
            q[p % hold] = s;
        }
    }
    cl_bal_state_free(&st);
    assert_null(st.current);
}

/* Largest relative error of the observed shares against the weights; prints them. */
static double t_share_error(const char *what, const uint32_t *count, const uint32_t *w, uint32_t n)
{
    uint64_t total = 0, wsum = 0;
    double worst = 0;

    for (uint32_t i = 0; i < n; i++) {
        total += count[i];
        wsum += w[i];
    }
    printf("  %-12s shares:", what);
    for (uint32_t i = 0; i < n; i++) {
        double want = (double)w[i] / (double)wsum;
        double got = (double)count[i] / (double)total;
        double e = fabs(got / want - 1.0);
        worst = e > worst ? e : worst;
        printf(" %.4f(%.4f)", got, want);
    }
    printf("  worst %.2f%%\n", worst * 100);
    return worst;
}

/* ---- lb_hash64 ------------------------------------------------------------------------ */

static void test_hash64_stable(void **state)
{
    /* Computed once from this implementation. If one changes, every consistent-hash key in
     * every deployment moves: do not "fix" these numbers, fix the hash. */
    assert_int_equal(lb_hash64("", 0, 0), 0x1c9a5abf2317b398ull);
    assert_int_equal(lb_hash64("a", 1, 0), 0xe81e974f7d50417aull);
    assert_int_equal(lb_hash64("app1", 4, 42), 0x68520e346ce5034full);
    assert_int_equal(lb_hash64("10.1.2.3", 8, 0), 0x354dccf316908772ull);
    assert_int_equal(lb_hash64("X-User-Id: 1234567890abcdef", 27, 7), 0x22986ec4e596575full);

    /* Seed, length and every byte matter. */
    assert_true(lb_hash64("ab", 2, 0) != lb_hash64("ab", 2, 1));
    assert_true(lb_hash64("ab", 2, 0) != lb_hash64("ab\0", 3, 0));
    assert_true(lb_hash64("abcdefgh1", 9, 0) != lb_hash64("abcdefgh2", 9, 0));

    /* Avalanche: flipping one input bit flips about half of the output bits. */
    uint64_t flips = 0, trials = 0;
    for (uint32_t i = 0; i < 2000; i++) {
        uint64_t x = lb_hash64(&i, sizeof(i), 99), base = lb_hash64(&x, sizeof(x), 0);
        for (int bit = 0; bit < 64; bit++) {
            uint64_t y = x ^ (1ull << bit);
            flips += (uint64_t)__builtin_popcountll(base ^ lb_hash64(&y, sizeof(y), 0));
            trials++;
        }
    }
    double avg = (double)flips / (double)trials;
    printf("  lb_hash64 avalanche: %.3f of 64 output bits flip per input bit\n", avg);
    assert_true(avg > 31.5 && avg < 32.5);
}

/* ---- smooth weighted round robin ------------------------------------------------------- */

static void test_swrr_sequence(void **state)
{
    const uint32_t w[] = {5, 1, 1};
    struct t_view tv;
    struct cl_balancer *b = t_new(CONF_BAL_ROUND_ROBIN, 3, w, 0, &tv);
    struct cl_bal_view v = t_bind(&tv);
    struct cl_bal_state st = {0};
    char seq[15] = {0};

    assert_int_equal(cl_bal_state_init(&st, b, 0), 0);
    for (int i = 0; i < 14; i++)
        seq[i] = (char)('a' + cl_balancer_pick(b, &st, 0, &v));
    printf("  swrr 5,1,1: %s\n", seq);
    assert_string_equal(seq, "aabacaaaabacaa");
    cl_bal_state_free(&st);

    /* Another seed starts elsewhere in the cycle but keeps exact shares per cycle. */
    uint32_t count[3] = {0};
    assert_int_equal(cl_bal_state_init(&st, b, 3), 0);
    for (int i = 0; i < 70; i++)
        count[cl_balancer_pick(b, &st, 0, &v)]++;
    assert_int_equal(count[0], 50);
    assert_int_equal(count[1], 10);
    assert_int_equal(count[2], 10);
    cl_bal_state_free(&st);
    cl_balancer_free(b);
}

/* ---- round robin across workers --------------------------------------------------------- */

/* The textbook sequence for @w, computed here independently of lb: nginx's loop. */
static void t_swrr_reference(const uint32_t *w, uint32_t n, uint32_t picks, char *out)
{
    int64_t cur[T_MAX] = {0}, total = 0;

    for (uint32_t i = 0; i < n; i++)
        total += w[i];
    for (uint32_t p = 0; p < picks; p++) {
        uint32_t best = 0;
        for (uint32_t i = 0; i < n; i++) {
            cur[i] += w[i];
            if (cur[i] > cur[best])
                best = i;
        }
        cur[best] -= total;
        out[p] = (char)('a' + best);
    }
    out[picks] = 0;
}

/* @nst worker states taking turns, one pick each, @picks in all, as letters. */
static void t_alternate(const struct cl_balancer *b, struct cl_bal_state *st, uint32_t nst,
                        const struct cl_bal_view *v, uint32_t picks, char *out)
{
    for (uint32_t p = 0; p < picks; p++) {
        int s = cl_balancer_pick(b, &st[p % nst], 0, v);
        out[p] = s < 0 ? '-' : (char)('a' + s);
    }
    out[picks] = 0;
}

static void test_swrr_one_sequence_across_workers(void **state)
{
    /* Two workers taking requests in alternation see one rotation: a a b a, not each its
     * own (which, seeded apart, would give a a a b a a b a or worse). */
    const uint32_t w31[] = {3, 1};
    struct t_view tv;
    struct cl_balancer *b = t_new(CONF_BAL_ROUND_ROBIN, 2, w31, 0, &tv);
    struct cl_bal_view v = t_bind(&tv);
    struct cl_bal_state st[3] = {{0}};
    char got[64];

    assert_int_equal(cl_bal_state_init(&st[0], b, 1), 0);
    assert_int_equal(cl_bal_state_init(&st[1], b, 2), 0);
    t_alternate(b, st, 2, &v, 16, got);
    printf("  swrr 3,1 two workers alternating: %s\n", got);
    assert_string_equal(got, "aabaaabaaabaaaba");
    cl_bal_state_free(&st[1]);
    cl_bal_state_free(&st[0]);
    cl_balancer_free(b);

    /* Three workers, 5,1,1, against the reference loop. */
    const uint32_t w511[] = {5, 1, 1};
    char want[64];
    b = t_new(CONF_BAL_ROUND_ROBIN, 3, w511, 0, &tv);
    v = t_bind(&tv);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cl_bal_state_init(&st[i], b, (uint64_t)i * 7 + 3), 0);
    t_alternate(b, st, 3, &v, 21, got);
    t_swrr_reference(w511, 3, 21, want);
    printf("  swrr 5,1,1 three workers in turn: %s\n", got);
    assert_string_equal(got, want);

    /* A peeking state (lbctl explain) sees the next turn and leaves it to the next pick. */
    st[2].peek = true;
    int next = cl_balancer_pick(b, &st[2], 0, &v);
    assert_int_equal(cl_balancer_pick(b, &st[2], 0, &v), next);
    assert_int_equal(cl_balancer_pick(b, &st[0], 0, &v), next);
    for (int i = 0; i < 3; i++)
        cl_bal_state_free(&st[i]);
    cl_balancer_free(b);
}

/* Whether @got is @period repeated, starting anywhere in it. */
static bool t_is_rotation(const char *got, const char *period)
{
    size_t n = strlen(period), len = strlen(got);
    for (size_t o = 0; o < n; o++) {
        size_t i = 0;
        while (i < len && got[i] == period[(o + i) % n])
            i++;
        if (i == len)
            return true;
    }
    return false;
}

static void test_swrr_fallbacks(void **state)
{
    const uint32_t w[] = {3, 1, 2};
    struct t_view tv;
    struct cl_balancer *b = t_new(CONF_BAL_ROUND_ROBIN, 3, w, 0, &tv);
    struct cl_bal_view v = t_bind(&tv);
    struct cl_bal_state st[2] = {{0}};
    char got[256], period[8];
    uint32_t count[3];

    t_swrr_reference(w, 3, 6, period);
    assert_int_equal(cl_bal_state_init(&st[0], b, 11), 0);
    assert_int_equal(cl_bal_state_init(&st[1], b, 12), 0);

    /* Slow start: server a ramps at effective weight 1. Shares follow the live weights
     * (each worker's own rotation: it starts from where its earlier picks left it, so
     * within a couple of picks of exact); the shared order waits. */
    tv.weight[0] = 1;
    t_alternate(b, st, 2, &v, 192, got);
    memset(count, 0, sizeof(count));
    for (int i = 0; i < 192; i++)
        count[got[i] - 'a']++;
    printf("  swrr 3,1,2 while a ramps at 1, 192 picks: a %u b %u c %u (want 48 48 96)\n",
           count[0], count[1], count[2]);
    assert_true(count[0] >= 44 && count[0] <= 52);
    assert_true(count[1] >= 44 && count[1] <= 52);
    assert_true(count[2] >= 92 && count[2] <= 100);
    assert_false(t_is_rotation(got, period));

    /* The ramp ends: the workers are back on the one sequence, wherever it stands. */
    tv.weight[0] = 3;
    t_alternate(b, st, 2, &v, 60, got);
    assert_true(t_is_rotation(got, period));

    /* b down: its turns go to the per-worker rotation among a and c, so a and c keep 3:2. */
    tv.down[1] = true;
    t_alternate(b, st, 2, &v, 240, got);
    memset(count, 0, sizeof(count));
    for (int i = 0; i < 240; i++)
        count[got[i] - 'a']++;
    printf("  swrr 3,1,2 with b down, 240 picks: a %u b %u c %u\n", count[0], count[1],
           count[2]);
    assert_int_equal(count[1], 0);
    assert_true(count[0] >= 142 && count[0] <= 146); /* 3:2 of 240, give or take a pick */
    assert_true(count[2] >= 94 && count[2] <= 98);
    tv.down[1] = false;
    t_alternate(b, st, 2, &v, 60, got);
    assert_true(t_is_rotation(got, period));

    cl_bal_state_free(&st[1]);
    cl_bal_state_free(&st[0]);
    cl_balancer_free(b);

    /* A tier too big to precompute (300 x 256 turns x 300 servers) keeps per-worker
     * rotations: still exact shares per worker. */
    static uint32_t big_w[300];
    static struct cl_bal_server big[300];
    static char names[300][8];
    for (int i = 0; i < 300; i++) {
        snprintf(names[i], sizeof(names[i]), "b%d", i);
        big[i] = (struct cl_bal_server){.name = names[i], .weight = 256};
        big_w[i] = 256;
    }
    b = cl_balancer_new(CONF_BAL_ROUND_ROBIN, big, 300, 0, 0, NULL);
    assert_non_null(b);
    static uint32_t bc[300];
    struct cl_bal_view bv = {.usable = t_big_usable, .active = t_big_active,
                             .weight = t_big_weight, .arg = big_w};
    assert_int_equal(cl_bal_state_init(&st[0], b, 1), 0);
    assert_int_equal(cl_bal_state_init(&st[1], b, 2), 0);
    for (uint32_t p = 0; p < 2 * 300 * 256; p++)
        bc[cl_balancer_pick(b, &st[p % 2], 0, &bv)]++;
    for (int i = 0; i < 300; i++)
        assert_int_equal(bc[i], 512);
    cl_bal_state_free(&st[1]);
    cl_bal_state_free(&st[0]);
    cl_balancer_free(b);
}

/* Two threads picking at once: every turn is taken exactly once, so the totals are exact. */
struct t_thread {
    const struct cl_balancer *b;
    struct t_view *tv;
    uint64_t seed;
    uint32_t picks;
    uint32_t count[4];
    double ns;
};

static void *t_picker(void *arg)
{
    struct t_thread *t = arg;
    struct cl_bal_view v = t_bind(t->tv);
    struct cl_bal_state st = {0};
    struct timespec t0, t1;

    if (cl_bal_state_init(&st, t->b, t->seed) < 0)
        return NULL;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint32_t p = 0; p < t->picks; p++)
        t->count[cl_balancer_pick(t->b, &st, 0, &v)]++;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    t->ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
            t->picks;
    cl_bal_state_free(&st);
    return t;
}

static void test_swrr_threads(void **state)
{
    const uint32_t w[] = {1, 2, 3, 4};
    struct t_view tv;
    struct cl_balancer *b = t_new(CONF_BAL_ROUND_ROBIN, 4, w, 0, &tv);
    struct t_thread t[2] = {{.b = b, .tv = &tv, .seed = 1, .picks = 500000},
                            {.b = b, .tv = &tv, .seed = 2, .picks = 500000}};
    pthread_t th[2];

    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, t_picker, &t[i]), 0);
    for (int i = 0; i < 2; i++) {
        void *r;
        assert_int_equal(pthread_join(th[i], &r), 0);
        assert_non_null(r);
    }
    printf("  swrr two threads at once: %.1f / %.1f ns per pick (shared turn counter)\n",
           t[0].ns, t[1].ns);
    for (int i = 0; i < 4; i++)
        assert_int_equal(t[0].count[i] + t[1].count[i], 100000 * w[i]);
    cl_balancer_free(b);
}

/* Through the cluster: servers, tiers, drain, `lbctl weight` and its rebuild. */
static void test_cluster_rr_fleet_wide(void **state)
{
    struct conf_server srv[3] = {{.name = "app1", .weight = 1},
                                 {.name = "app2", .weight = 1},
                                 {.name = "app3", .weight = 1}};
    struct conf_cluster cf = {.name = "app", .balance = CONF_BAL_ROUND_ROBIN, .servers = srv,
                              .nservers = 3};
    struct cl_cluster c;
    struct cl_cluster_wstate ws[2], peek;
    struct lb_err err = {{0}};
    char got[64], want[64];

    assert_int_equal(cl_cluster_init(&c, &cf, &err), 0);
    assert_int_equal(cl_cluster_wstate_init(&ws[0], &c, 0), 0);
    assert_int_equal(cl_cluster_wstate_init(&ws[1], &c, 1), 0);
    for (int p = 0; p < 12; p++)
        got[p] = (char)('1' + cl_cluster_pick(&c, &ws[p % 2], 0, NULL));
    got[12] = 0;
    printf("  cluster app1..app3, two workers: %s\n", got);
    assert_string_equal(got, "123123123123"); /* what tools/demo.sh promises */

    /* explain peeks: it names the next server and the next request still gets it. */
    assert_int_equal(cl_cluster_wstate_init(&peek, &c, 1), 0);
    cl_cluster_wstate_peek(&peek);
    assert_int_equal(cl_cluster_pick(&c, &peek, 0, NULL), 0);
    assert_int_equal(cl_cluster_pick(&c, &peek, 0, NULL), 0);
    assert_int_equal(cl_cluster_pick(&c, &ws[1], 0, NULL), 0);
    cl_cluster_wstate_free(&peek);

    /* Drained: never picked; a request that excluded the turn's server gets another. */
    atomic_fetch_or(&c.servers[1].flags, CL_SRV_F_DRAINING);
    for (int p = 0; p < 30; p++)
        assert_true(cl_cluster_pick(&c, &ws[p % 2], 0, NULL) != 1);
    atomic_fetch_and(&c.servers[1].flags, ~(uint32_t)CL_SRV_F_DRAINING);
    struct cl_exclude ex = {.idx = {0, 2}, .n = 2};
    for (int p = 0; p < 6; p++)
        assert_int_equal(cl_cluster_pick(&c, &ws[p % 2], 0, &ex), 1);

    /* lbctl weight app app2 3, as lb/admin does it: the weight holds at once (per-worker
     * rotations), and after cl_cluster_reweigh the workers share the new order. */
    atomic_store(&c.servers[1].op_weight, 3);
    atomic_store(&c.servers[1].weight, 3);
    uint32_t count[3] = {0};
    for (int p = 0; p < 50; p++)
        count[cl_cluster_pick(&c, &ws[p % 2], 0, NULL)]++;
    assert_true(count[0] >= 8 && count[0] <= 12); /* 1:3:1 of 50, give or take a pick */
    assert_true(count[1] >= 28 && count[1] <= 32);
    assert_true(count[2] >= 8 && count[2] <= 12);
    assert_int_equal(cl_cluster_reweigh(&c, &err), 0);
    const uint32_t w[] = {1, 3, 1};
    t_swrr_reference(w, 3, 20, want);
    for (int p = 0; p < 20; p++)
        got[p] = (char)('a' + cl_cluster_pick(&c, &ws[p % 2], 0, NULL));
    got[20] = 0;
    printf("  cluster after lbctl weight app2 3: %s\n", got);
    assert_string_equal(got, want);

    cl_cluster_wstate_free(&ws[1]);
    cl_cluster_wstate_free(&ws[0]);
    cl_cluster_destroy(&c);
}

/* ---- shares ----------------------------------------------------------------------------- */

static void test_weight_ratios(void **state)
{
    const uint32_t w[] = {1, 2, 3, 4};
    /*
     * Tolerances, by what each algorithm promises:
     *  round_robin  exact per cycle of 10 picks.
     *  least_conn   with 100 connections held, active/weight is kept level, and a connection
     *               held for a fixed time makes picks proportional to active: ~exact.
     *  random_two   the same equilibrium reached by random draws; measured 0.2-0.3% off at
     *               this load (the bias shrinks as 1/connections in flight), well under 2%.
     *  maglev       slot shares are exact to one slot in 65537; what remains is sampling noise
     *               over 100k keys (1.4% at 1 sigma for the weight-1 server's 10% share), so
     *               the bound is 3 sigma of that: 4%.
     *  ring_hash    a server with k points gets a share off by ~1/sqrt(k): 3.1% for the
     *               1024 points of weight 1, plus the same sampling noise: 6%.
     */
    const double tol[] = {
        [CONF_BAL_ROUND_ROBIN] = 0.02, [CONF_BAL_LEAST_CONN] = 0.02, [CONF_BAL_RANDOM_TWO] = 0.02,
        [CONF_BAL_MAGLEV] = 0.04,      [CONF_BAL_RING_HASH] = 0.06,
    };

    for (size_t a = 0; a < T_NALGOS; a++) {
        enum conf_balance algo = t_all_algos[a];
        struct t_view tv;
        uint32_t count[4] = {0};
        struct cl_balancer *b = t_new(algo, 4, w, 0, &tv);
        uint32_t hold = algo == CONF_BAL_LEAST_CONN || algo == CONF_BAL_RANDOM_TWO ? 100 : 0;

        t_run(b, &tv, 1, T_PICKS, hold, count);
        assert_true(t_share_error(t_algo_name(algo), count, w, 4) <= tol[algo]);
        cl_balancer_free(b);
    }
}

/* Weighted hash tables over many more keys, where sampling noise no longer hides the table. */
static void test_hash_weighted_shares(void **state)
{
    const uint32_t w[] = {1, 2, 3, 4, 1, 5};
    const enum conf_balance algos[] = {CONF_BAL_MAGLEV, CONF_BAL_RING_HASH};
    const double tol[] = {0.02, 0.06};

    for (size_t a = 0; a < 2; a++) {
        struct t_view tv;
        uint32_t count[6] = {0};
        struct cl_balancer *b = t_new(algos[a], 6, w, 0, &tv);
        t_run(b, &tv, 1, 1000000, 0, count);
        assert_true(t_share_error(t_algo_name(algos[a]), count, w, 6) <= tol[a]);
        cl_balancer_free(b);
    }
}

static void test_least_conn_rotates_ties(void **state)
{
    struct t_view tv;
    struct cl_balancer *b = t_new(CONF_BAL_LEAST_CONN, 4, NULL, 0, &tv);
    uint32_t count[4] = {0};

    /* Idle cluster, nothing held: every ratio is 0 and the ties must be shared. */
    t_run(b, &tv, 5, 400, 0, count);
    for (int i = 0; i < 4; i++)
        assert_int_equal(count[i], 100);

    /* Equal ratios go to the heavier server. */
    cl_balancer_free(b);
    const uint32_t w[] = {1, 2};
    b = t_new(CONF_BAL_LEAST_CONN, 2, w, 0, &tv);
    struct cl_bal_view v = t_bind(&tv);
    struct cl_bal_state st = {0};
    assert_int_equal(cl_bal_state_init(&st, b, 0), 0);
    tv.active[0] = 3;
    tv.active[1] = 6;
    for (int i = 0; i < 4; i++)
        assert_int_equal(cl_balancer_pick(b, &st, 0, &v), 1);
    tv.active[1] = 7;
    assert_int_equal(cl_balancer_pick(b, &st, 0, &v), 0);
    cl_bal_state_free(&st);
    cl_balancer_free(b);
}

static void test_random_two_prefers_less_loaded(void **state)
{
    struct t_view tv;
    struct cl_balancer *b = t_new(CONF_BAL_RANDOM_TWO, 2, NULL, 0, &tv);
    struct cl_bal_view v = t_bind(&tv);
    struct cl_bal_state st = {0};

    /* With two servers both are always the candidates, so the lighter one always wins. */
    assert_int_equal(cl_bal_state_init(&st, b, 9), 0);
    tv.active[0] = 10;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(cl_balancer_pick(b, &st, 0, &v), 1);
    cl_bal_state_free(&st);
    cl_balancer_free(b);

    /* Idle (nothing held, every load 0): ties keep the first, weighted, draw. */
    const uint32_t w[] = {1, 2, 3, 4};
    uint32_t count[4] = {0};
    b = t_new(CONF_BAL_RANDOM_TWO, 4, w, 0, &tv);
    t_run(b, &tv, 3, T_PICKS, 0, count);
    assert_true(t_share_error("random_two idle", count, w, 4) <= 0.03);
    cl_balancer_free(b);
}

/* ---- health and effective weight ------------------------------------------------------- */

static void test_unusable_never_picked(void **state)
{
    const uint32_t w[] = {1, 3, 2, 1, 5};

    for (size_t a = 0; a < T_NALGOS; a++) {
        struct t_view tv;
        uint32_t count[5] = {0};
        struct cl_balancer *b = t_new(t_all_algos[a], 5, w, 0, &tv);
        tv.down[1] = true;
        tv.down[4] = true;
        t_run(b, &tv, 2, 20000, 50, count);
        assert_int_equal(count[1], 0);
        assert_int_equal(count[4], 0);
        assert_true(count[0] > 0 && count[2] > 0 && count[3] > 0);
        cl_balancer_free(b);

        /* The same with bounded load, for the hash balancers. */
        if (t_all_algos[a] != CONF_BAL_MAGLEV && t_all_algos[a] != CONF_BAL_RING_HASH)
            continue;
        memset(count, 0, sizeof(count));
        b = t_new(t_all_algos[a], 5, w, 1.25, &tv);
        tv.down[1] = true;
        tv.down[4] = true;
        t_run(b, &tv, 2, 20000, 50, count);
        assert_int_equal(count[1] + count[4], 0);
        cl_balancer_free(b);
    }
}

static void test_all_unusable_enoent(void **state)
{
    for (size_t a = 0; a < T_NALGOS; a++) {
        for (int bounded = 0; bounded < 2; bounded++) {
            struct t_view tv;
            struct cl_balancer *b = t_new(t_all_algos[a], 5, NULL, bounded ? 1.5 : 0, &tv);
            struct cl_bal_view v = t_bind(&tv);
            struct cl_bal_state st = {0};

            assert_int_equal(cl_bal_state_init(&st, b, 1), 0);
            for (int i = 0; i < 5; i++)
                tv.down[i] = true;
            for (uint32_t k = 0; k < 1000; k++)
                assert_int_equal(cl_balancer_pick(b, &st, t_key(k), &v), -ENOENT);
            /* Usable but all at effective weight 0 is the same. */
            for (int i = 0; i < 5; i++) {
                tv.down[i] = false;
                tv.weight[i] = 0;
            }
            for (uint32_t k = 0; k < 1000; k++)
                assert_int_equal(cl_balancer_pick(b, &st, t_key(k), &v), -ENOENT);
            /* One back: it takes everything. */
            tv.weight[3] = 1;
            for (uint32_t k = 0; k < 1000; k++)
                assert_int_equal(cl_balancer_pick(b, &st, t_key(k), &v), 3);
            cl_bal_state_free(&st);
            cl_balancer_free(b);
        }
    }
}

static void test_weight_zero_takes_nothing(void **state)
{
    for (size_t a = 0; a < T_NALGOS; a++) {
        struct t_view tv;
        uint32_t count[4] = {0};
        struct cl_balancer *b = t_new(t_all_algos[a], 4, NULL, 0, &tv);
        tv.weight[2] = 0; /* e.g. slow start at zero, or `lbctl weight app 2 0` */
        t_run(b, &tv, 4, 20000, 40, count);
        printf("  %-12s weight 1,1,0,1: %u %u %u %u\n", t_algo_name(t_all_algos[a]), count[0],
               count[1], count[2], count[3]);
        assert_int_equal(count[2], 0);
        cl_balancer_free(b);
    }

    /* Effective weights, not configured ones, set the non-hash shares. */
    struct t_view tv;
    uint32_t count[2] = {0};
    struct cl_balancer *b = t_new(CONF_BAL_ROUND_ROBIN, 2, NULL, 0, &tv);
    tv.weight[1] = 3;
    t_run(b, &tv, 0, 400, 0, count);
    assert_int_equal(count[0], 100);
    assert_int_equal(count[1], 300);
    cl_balancer_free(b);
}

/* ---- consistent hashing ---------------------------------------------------------------- */

static int t_map[T_KEYS];

static void t_map_keys(const struct cl_balancer *b, struct t_view *tv, int *out)
{
    struct cl_bal_view v = t_bind(tv);
    struct cl_bal_state st = {0};

    assert_int_equal(cl_bal_state_init(&st, b, 0), 0);
    for (uint32_t k = 0; k < T_KEYS; k++)
        out[k] = cl_balancer_pick(b, &st, t_key(k), &v);
    cl_bal_state_free(&st);
}

static void t_check_down_moves_only_its_keys(enum conf_balance algo, uint32_t n)
{
    static int after[T_KEYS];
    struct t_view tv;
    struct cl_balancer *b = t_new(algo, n, NULL, 0, &tv);
    uint32_t down = n / 2, gained[T_MAX] = {0}, moved = 0;

    t_map_keys(b, &tv, t_map);
    tv.down[down] = true;
    t_map_keys(b, &tv, after);
    for (uint32_t k = 0; k < T_KEYS; k++) {
        if (t_map[k] != (int)down) {
            assert_int_equal(after[k], t_map[k]); /* exactly: no other key moves */
            continue;
        }
        assert_true(after[k] >= 0 && after[k] != (int)down);
        gained[after[k]]++;
        moved++;
    }
    /* The moved keys spread over all the others, none taking more than twice its share. */
    double fair = (double)moved / (n - 1);
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i == down)
            continue;
        lo = gained[i] < lo ? gained[i] : lo;
        hi = gained[i] > hi ? gained[i] : hi;
    }
    printf("  %-10s N=%-2u server %u down: %u keys moved (%.2f%%), each other server got "
           "%u..%u (fair %.0f)\n",
           t_algo_name(algo), n, down, moved, 100.0 * moved / T_KEYS, lo, hi, fair);
    assert_true(lo >= fair * 0.5 && hi <= fair * 2.0);

    /* Back up: every key returns. */
    tv.down[down] = false;
    t_map_keys(b, &tv, after);
    assert_memory_equal(after, t_map, sizeof(t_map));
    cl_balancer_free(b);
}

static void test_hash_unusable_moves_only_its_keys(void **state)
{
    t_check_down_moves_only_its_keys(CONF_BAL_MAGLEV, 5);
    t_check_down_moves_only_its_keys(CONF_BAL_MAGLEV, 10);
    t_check_down_moves_only_its_keys(CONF_BAL_RING_HASH, 5);
    t_check_down_moves_only_its_keys(CONF_BAL_RING_HASH, 10);
}

static void t_check_removal(enum conf_balance algo, uint32_t n, uint32_t removed)
{
    static int after[T_KEYS];
    struct cl_bal_server s[T_MAX];
    struct t_view tv, tv2;
    struct cl_balancer *b = t_new(algo, n, NULL, 0, &tv);

    t_map_keys(b, &tv, t_map);
    uint32_t k2 = t_servers(s, n, NULL, removed);
    struct cl_balancer *b2 = cl_balancer_new(algo, s, k2, 0, 0, NULL);
    assert_non_null(b2);
    memset(&tv2, 0, sizeof(tv2));
    for (uint32_t i = 0; i < k2; i++)
        tv2.weight[i] = 1;
    t_map_keys(b2, &tv2, after);

    /* Compare by name: indexes above @removed shifted down by one. */
    uint32_t moved = 0, extra = 0;
    for (uint32_t k = 0; k < T_KEYS; k++) {
        uint32_t was = (uint32_t)t_map[k];
        uint32_t now = (uint32_t)after[k] + ((uint32_t)after[k] >= removed);
        if (was != now) {
            moved++;
            extra += was != removed;
        }
    }
    double frac = (double)moved / T_KEYS;
    printf("  %-10s N=%-2u remove srv-%u: %.2f%% of keys moved (bound %.2f%%), %u keys "
           "between survivors\n",
           t_algo_name(algo), n, removed, frac * 100, (1.0 / n + 0.02) * 100, extra);
    assert_true(frac <= 1.0 / n + 0.02);
    cl_balancer_free(b2);
    cl_balancer_free(b);
}

static void test_hash_remove_from_config(void **state)
{
    t_check_removal(CONF_BAL_MAGLEV, 5, 2);
    t_check_removal(CONF_BAL_MAGLEV, 10, 7);
    t_check_removal(CONF_BAL_RING_HASH, 5, 2);
    t_check_removal(CONF_BAL_RING_HASH, 10, 7);
}

static void test_maglev_table_size(void **state)
{
    struct cl_bal_server s[T_MAX];
    struct lb_err err = {{0}};
    uint32_t n = t_servers(s, 10, NULL, 10);
    struct cl_balancer *b;

    b = cl_balancer_new(CONF_BAL_MAGLEV, s, n, 0, 0, &err); /* default 65537 */
    assert_non_null(b);
    cl_balancer_free(b);
    b = cl_balancer_new(CONF_BAL_MAGLEV, s, n, 0, 1009, &err); /* prime, >= 100 x 10 */
    assert_non_null(b);
    cl_balancer_free(b);

    const uint32_t bad[] = {65536, 1001, 997, 1, 2, 4294967291u};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = 0;
        assert_null(cl_balancer_new(CONF_BAL_MAGLEV, s, n, 0, bad[i], &err));
        printf("  table_size %u: %s\n", bad[i], err.msg);
        assert_true(err.msg[0] != 0);
    }

    /* 700 servers need 70000 slots: the default table is too small. */
    static struct cl_bal_server many[700];
    static char names[700][8];
    for (int i = 0; i < 700; i++) {
        snprintf(names[i], sizeof(names[i]), "m%d", i);
        many[i] = (struct cl_bal_server){.name = names[i], .weight = 1};
    }
    assert_null(cl_balancer_new(CONF_BAL_MAGLEV, many, 700, 0, 0, &err));
    b = cl_balancer_new(CONF_BAL_MAGLEV, many, 700, 0, 70001, &err);
    assert_non_null(b);
    cl_balancer_free(b);
}

/* ---- bounded load ---------------------------------------------------------------------- */

/* What the cap must be: ceil(C * (total active of usable + 1) / usable), in exact integers
 * (C = 1.25 = 5/4). */
static uint32_t t_cap_125(const struct t_view *tv, uint32_t n)
{
    uint64_t total = 0, nu = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (tv->down[i] || tv->weight[i] == 0)
            continue;
        total += tv->active[i];
        nu++;
    }
    return (uint32_t)((5 * (total + 1) + 4 * nu - 1) / (4 * nu));
}

/* Hot-key mix: one key in @hot_pct percent of picks, the rest spread. */
static uint64_t t_mixed_key(uint32_t p, uint32_t hot_pct)
{
    return (lb_hash64(&p, sizeof(p), 5) % 100) < hot_pct ? t_key(0) : t_key(p);
}

static void t_check_bounded(enum conf_balance algo, uint32_t n, uint32_t hot_pct, double min_stick)
{
    static int q[T_HOLD_MAX];
    const uint32_t hold = 200, picks = 200000;
    struct t_view tv, home_tv;
    struct cl_balancer *b = t_new(algo, n, NULL, 1.25, &tv);
    struct cl_balancer *home = t_new(algo, n, NULL, 0, &home_tv); /* where keys belong */
    struct cl_bal_view v = t_bind(&tv), hv = t_bind(&home_tv);
    struct cl_bal_state st = {0}, hst = {0};
    uint32_t stuck = 0, peak = 0, peak_cap = 0;

    tv.down[n - 1] = true; /* a down server counts neither in the total nor the divisor */
    home_tv.down[n - 1] = true;
    assert_int_equal(cl_bal_state_init(&st, b, 0), 0);
    assert_int_equal(cl_bal_state_init(&hst, home, 0), 0);
    for (uint32_t p = 0; p < picks; p++) {
        if (p >= hold)
            tv.active[q[p % hold]]--;
        uint64_t key = t_mixed_key(p, hot_pct);
        uint32_t cap = t_cap_125(&tv, n);
        int s = cl_balancer_pick(b, &st, key, &v);
        assert_true(s >= 0 && s != (int)(n - 1));
        assert_true(tv.active[s] + 1 <= cap);
        stuck += s == cl_balancer_pick(home, &hst, key, &hv);
        tv.active[s]++;
        q[p % hold] = s;
        if (tv.active[s] > peak) {
            peak = tv.active[s];
            peak_cap = cap;
        }
    }
    double stick = (double)stuck / picks;
    printf("  %-10s N=%u C=1.25 hot key %2u%%: cap never exceeded (peak %u, cap then %u, "
           "avg %.1f), %.1f%% of picks on their home server\n",
           t_algo_name(algo), n, hot_pct, peak, peak_cap, (double)hold / (n - 1), stick * 100);
    assert_true(stick >= min_stick);
    cl_bal_state_free(&hst);
    cl_bal_state_free(&st);
    cl_balancer_free(home);
    cl_balancer_free(b);
}

static void test_bounded_load(void **state)
{
    /*
     * Uniform keys: the cap binds only on a random surplus, so nearly every key sticks.
     * A hot key in 30% of picks wants 30% of the load on one server while the cap allows
     * 1.25 / 4 = 31%, plus that server's own share of the other keys: its overflow has to
     * walk, so fewer picks stick, but the cap still holds.
     */
    t_check_bounded(CONF_BAL_MAGLEV, 5, 0, 0.90);
    t_check_bounded(CONF_BAL_RING_HASH, 5, 0, 0.90);
    t_check_bounded(CONF_BAL_MAGLEV, 5, 30, 0.75);
    t_check_bounded(CONF_BAL_RING_HASH, 5, 30, 0.75);

    /* An overloaded server sheds only its own keys. */
    const enum conf_balance algos[] = {CONF_BAL_MAGLEV, CONF_BAL_RING_HASH};
    static int after[T_KEYS];
    for (size_t a = 0; a < 2; a++) {
        struct t_view tv;
        struct cl_balancer *b = t_new(algos[a], 5, NULL, 1.25, &tv);
        t_map_keys(b, &tv, t_map);
        tv.active[1] = 40; /* cap = ceil(1.25 * 41 / 5) = 11 */
        t_map_keys(b, &tv, after);
        for (uint32_t k = 0; k < T_KEYS; k++) {
            if (t_map[k] == 1)
                assert_true(after[k] != 1);
            else
                assert_int_equal(after[k], t_map[k]);
        }
        cl_balancer_free(b);
    }
}

/* ---- construction ---------------------------------------------------------------------- */

static void test_new_errors(void **state)
{
    struct cl_bal_server s[T_MAX];
    struct lb_err err;
    uint32_t n = t_servers(s, 3, NULL, 3);

    assert_null(cl_balancer_new(CONF_BAL_ROUND_ROBIN, s, 0, 0, 0, &err));
    assert_null(cl_balancer_new((enum conf_balance)42, s, n, 0, 0, &err));
    assert_null(cl_balancer_new(CONF_BAL_MAGLEV, s, n, 0.5, 0, &err));
    assert_null(cl_balancer_new(CONF_BAL_RING_HASH, s, n, 1.0, 0, &err));
    assert_null(cl_balancer_new(CONF_BAL_RING_HASH, s, n, NAN, 0, &err));
    assert_null(cl_balancer_new(CONF_BAL_RING_HASH, s, n, 0.5, 0, NULL)); /* NULL err is fine */
    s[1].weight = 0;
    assert_null(cl_balancer_new(CONF_BAL_ROUND_ROBIN, s, n, 0, 0, &err));
    printf("  weight 0: %s\n", err.msg);
    s[1].weight = 257;
    assert_null(cl_balancer_new(CONF_BAL_LEAST_CONN, s, n, 0, 0, &err));
    s[1].weight = 256;
    s[2].name = NULL;
    assert_null(cl_balancer_new(CONF_BAL_MAGLEV, s, n, 0, 0, &err));
    printf("  no name: %s\n", err.msg);

    /* Names are copied; non-hash balancers need none and ignore bounded_load. */
    struct cl_balancer *b = cl_balancer_new(CONF_BAL_ROUND_ROBIN, s, n, 0.5, 0, &err);
    assert_non_null(b);
    assert_int_equal(cl_balancer_size(b), 3);
    assert_int_equal(cl_balancer_algo(b), CONF_BAL_ROUND_ROBIN);
    cl_balancer_free(b);
    cl_balancer_free(NULL);

    char name[8] = "temp";
    struct cl_bal_server one = {.name = name, .weight = 1};
    b = cl_balancer_new(CONF_BAL_RING_HASH, &one, 1, 0, 0, &err);
    assert_non_null(b);
    memset(name, 'x', sizeof(name) - 1); /* the caller's config may go away */
    struct t_view tv = {.weight = {1}};
    struct cl_bal_view v = t_bind(&tv);
    struct cl_bal_state st = {0};
    assert_int_equal(cl_bal_state_init(&st, b, 0), 0);
    assert_int_equal(cl_balancer_pick(b, &st, 123, &v), 0);
    cl_bal_state_free(&st);
    cl_balancer_free(b);
}

/* ---- cost (printed, never asserted: timing belongs to tools/bench) ---------------------- */

static void test_pick_cost(void **state)
{
    const uint32_t w[] = {1, 2, 3, 4, 1, 1, 2, 2, 3, 1};
    const uint32_t picks = 1000000;

    for (size_t a = 0; a < T_NALGOS; a++) {
        struct t_view tv;
        struct cl_balancer *b = t_new(t_all_algos[a], 10, w, 0, &tv);
        struct cl_bal_view v = t_bind(&tv);
        struct cl_bal_state st = {0};
        struct timespec t0, t1;
        uint64_t sink = 0;

        assert_int_equal(cl_bal_state_init(&st, b, 0), 0);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (uint32_t p = 0; p < picks; p++) {
            int s = cl_balancer_pick(b, &st, lb_hash64(&p, sizeof(p), 0), &v);
            tv.active[s] = (tv.active[s] + 1) & 63; /* some churn for the load-aware ones */
            sink += (uint64_t)s;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ns =
            ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / picks;
        printf("  %-12s N=10: %.1f ns per pick (incl. lb_hash64 of the key)%s\n",
               t_algo_name(t_all_algos[a]), ns, sink ? "" : " ");
        cl_bal_state_free(&st);
        cl_balancer_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash64_stable),
        cmocka_unit_test(test_swrr_sequence),
        cmocka_unit_test(test_swrr_one_sequence_across_workers),
        cmocka_unit_test(test_swrr_fallbacks),
        cmocka_unit_test(test_swrr_threads),
        cmocka_unit_test(test_cluster_rr_fleet_wide),
        cmocka_unit_test(test_weight_ratios),
        cmocka_unit_test(test_hash_weighted_shares),
        cmocka_unit_test(test_least_conn_rotates_ties),
        cmocka_unit_test(test_random_two_prefers_less_loaded),
        cmocka_unit_test(test_unusable_never_picked),
        cmocka_unit_test(test_all_unusable_enoent),
        cmocka_unit_test(test_weight_zero_takes_nothing),
        cmocka_unit_test(test_hash_unusable_moves_only_its_keys),
        cmocka_unit_test(test_hash_remove_from_config),
        cmocka_unit_test(test_maglev_table_size),
        cmocka_unit_test(test_bounded_load),
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_pick_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
