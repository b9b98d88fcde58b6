/* Unit tests for lb/fleet/wire.c: the text lb writes into Redis for fleet state, and the
 * strict reading back of whatever is there (a value written by hand is refused whole). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lb/fleet/wire.h"

static int state(const char *field, const char *value, struct fleet_change *c)
{
    const char *why = NULL;
    int rc = fleet_state_parse(field, strlen(field), value, strlen(value), c, &why);
    assert_true(rc == 0 || why != NULL);
    return rc;
}

static void test_round_trip(void **st)
{
    struct fleet_change c = {.kind = FLEET_WEIGHT, .t = 1796367213513ull, .value = 7}, d;
    strcpy(c.cluster, "app");
    strcpy(c.server, "s-2.b_c");
    strcpy(c.instance, "lb-b");
    char f[256], v[256], e[512];
    assert_int_equal(fleet_field_format(&c, f, sizeof(f)), strlen("weight app s-2.b_c"));
    assert_string_equal(f, "weight app s-2.b_c");
    assert_true(fleet_value_format(&c, v, sizeof(v)) > 0);
    assert_string_equal(v, "1796367213513 lb-b 7");
    assert_int_equal(state(f, v, &d), 0);
    assert_memory_equal(&c, &d, sizeof(c));
    assert_true(fleet_event_format(&c, e, sizeof(e)) > 0);
    assert_string_equal(e, "weight app s-2.b_c 1796367213513 lb-b 7");
    const char *why;
    assert_int_equal(fleet_event_parse(e, strlen(e), &d, &why), 0);
    assert_memory_equal(&c, &d, sizeof(c));
    /* A buffer too small is said, not cut. */
    assert_int_equal(fleet_field_format(&c, f, 5), -1);
}

static void test_refused(void **st)
{
    struct fleet_change c;
    static const char *const bad[][2] = {
        {"drain app s1", "not a value"},
        {"drain app s1", "123 lb-a 2"},  /* a drain is 0 or 1 */
        {"weight app s1", "123 lb-a 0"}, /* weights are 1..256 */
        {"weight app s1", "123 lb-a 257"},
        {"frob app s1", "123 lb-a 1"},    /* unknown kind */
        {"drain app s1 x", "123 lb-a 1"}, /* four words */
        {"drain app  s1", "123 lb-a 1"},  /* two spaces */
        {"drain app s1", " 123 lb-a 1"},  /* leading space */
        {"drain app s1", "123 lb-a 1 "},  /* trailing space */
        {"drain app s1", "0123 lb-a 1"},  /* leading zero */
        {"drain app s1", "0 lb-a 1"},     /* no time */
        {"drain app s1", "-5 lb-a 1"},
        {"drain app s1", "99999999999999999999 lb-a 1"}, /* overflows */
        {"drain app s1", "123 lb:a 1"},                  /* not a name */
        {"drain -app s1", "123 lb-a 1"},                 /* a name starts with a letter or digit */
        {"drain app s\001", "123 lb-a 1"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (state(bad[i][0], bad[i][1], &c) != -1)
            fail_msg("accepted field '%s' value '%s'", bad[i][0], bad[i][1]);
    }
    /* A name of CONF_NAME_MAX bytes does not fit. */
    char f[200], v[64];
    memset(f, 'a', sizeof(f));
    memcpy(f, "drain app ", 10);
    f[10 + CONF_NAME_MAX] = '\0';
    snprintf(v, sizeof(v), "1 lb 1");
    assert_int_equal(state(f, v, &c), -1);
    f[10 + CONF_NAME_MAX - 1] = '\0';
    assert_int_equal(state(f, v, &c), 0);
    const char *why;
    assert_int_equal(fleet_event_parse("drain app s1 1 2 3 4 5", 22, &c, &why), -1);
}

static void test_newer(void **st)
{
    struct fleet_change a = {.t = 10}, b = {.t = 9};
    strcpy(a.instance, "lb-a");
    strcpy(b.instance, "lb-z");
    assert_true(fleet_newer(&a, &b));
    assert_false(fleet_newer(&b, &a));
    b.t = 10; /* same time: the greater instance name wins, so every instance agrees */
    assert_true(fleet_newer(&b, &a));
    assert_false(fleet_newer(&a, &b));
    assert_false(fleet_newer(&a, &a));
}

static void test_heartbeat(void **st)
{
    struct fleet_member m;
    struct fleet_view v[4];
    size_t nv;
    const char *why;
    const char *hb = "lb1 lb-a 1796367000000 4242 1796367001000\napp s1 up 3\napp s2 draining 0\n";
    assert_int_equal(fleet_heartbeat_parse(hb, strlen(hb), &m, v, 4, &nv, &why), 0);
    assert_string_equal(m.name, "lb-a");
    assert_int_equal(m.pid, 4242);
    assert_int_equal(m.sent_ms, 1796367001000ull);
    assert_int_equal(nv, 2);
    assert_string_equal(v[1].state, "draining");
    assert_int_equal(v[0].active, 3);
    /* More servers than room: the first ones kept, the heartbeat still valid. */
    assert_int_equal(fleet_heartbeat_parse(hb, strlen(hb), &m, v, 1, &nv, &why), 0);
    assert_int_equal(nv, 1);
    static const char *const bad[] = {
        "",
        "lb1 lb-a 1 2 3",                      /* no newline */
        "lb2 lb-a 1 2 3\n",                    /* another format */
        "lb1 lb-a 1 2\n",                      /* a word short */
        "lb1 lb-a 1 2 3\napp s1 sideways 3\n", /* unknown state */
        "lb1 lb-a 1 2 3\napp s1 up\n",
        "lb1 lb-a 1 2 3\napp s1 up 3", /* last line cut */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (fleet_heartbeat_parse(bad[i], strlen(bad[i]), &m, v, 4, &nv, &why) != -1)
            fail_msg("accepted heartbeat '%s'", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_newer),
        cmocka_unit_test(test_heartbeat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
