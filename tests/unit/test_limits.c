/*
 * lb/core/limits.c: per-address connection counts and the one-second rate window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lb/core/limits.h"

static void test_connections(void **state)
{
    assert_null(lb_limits_new(0, 0));
    struct lb_limits *l = lb_limits_new(2, 0);
    assert_non_null(l);
    assert_true(lb_limit_conn_take(l, 42));
    assert_true(lb_limit_conn_take(l, 42));
    assert_false(lb_limit_conn_take(l, 42)); /* the third is refused, and not counted */
    assert_false(lb_limit_conn_take(l, 42));
    assert_int_equal(atomic_load(&l->refused_conns), 2);
    assert_true(lb_limit_conn_take(l, 43)); /* another address has its own budget */
    lb_limit_conn_put(l, 42);
    assert_true(lb_limit_conn_take(l, 42)); /* one closed: one more fits */
    /* Addresses that hash to one counter share it: never more than the limit together. */
    uint64_t twin = 42 + LB_LIMIT_SLOTS;
    assert_false(lb_limit_conn_take(l, twin));
    lb_limits_free(l);
}

static void test_rate(void **state)
{
    struct lb_limits *l = lb_limits_new(0, 3);
    assert_non_null(l);
    for (int i = 0; i < 3; i++)
        assert_true(lb_limit_rate_take(l, 7, 5000 + (uint64_t)i * 100));
    assert_false(lb_limit_rate_take(l, 7, 5900));
    assert_true(lb_limit_rate_take(l, 8, 5900)); /* another address */
    /* The next second starts over. */
    assert_true(lb_limit_rate_take(l, 7, 6000));
    assert_true(lb_limit_rate_take(l, 7, 6999));
    assert_true(lb_limit_rate_take(l, 7, 6999));
    assert_false(lb_limit_rate_take(l, 7, 6999));
    assert_int_equal(atomic_load(&l->refused_rate), 2);
    lb_limits_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connections),
        cmocka_unit_test(test_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
