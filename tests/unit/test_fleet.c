/* Unit tests for lb/fleet/wire.c: the text lb writes into Redis for fleet state and cache
 * invalidations, and the strict reading back of whatever is there (a value written by hand is
 * refused whole). */
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

/* The invalidate event: round trip, bounds, and what is refused. */
static void test_inval(void **st)
{
    (void)st;
    static struct fleet_inval v, d;
    const char *why = NULL;
    strcpy(v.instance, "lb-a");
    strcpy(v.host, "WWW.example:8080");
    strcpy(v.target, "/a/b?x=1&y=*");
    v.host_len = (uint32_t)strlen(v.host);
    v.target_len = (uint32_t)strlen(v.target);
    static char e[4096];
    assert_int_equal(fleet_inval_format(&v, e, sizeof(e)),
                     strlen("invalidate lb-a WWW.example:8080 /a/b?x=1&y=*"));
    assert_string_equal(e, "invalidate lb-a WWW.example:8080 /a/b?x=1&y=*");
    assert_true(fleet_is_inval(e, strlen(e)));
    assert_false(fleet_is_inval("weight app s1 1 lb-a 3", 22));
    assert_int_equal(fleet_inval_parse(e, strlen(e), &d, &why), 0);
    assert_memory_equal(&v, &d, sizeof(v));
    assert_int_equal(fleet_inval_format(&v, e, 20), -1); /* does not fit */
    assert_true(fleet_inval_ok("[::1]:80", 8, "/", 1));
    assert_false(fleet_inval_ok("", 0, "/", 1));
    assert_false(fleet_inval_ok("h", 1, "", 0));
    /* The longest host and target fit; one byte more does not. */
    static char big[FLEET_INVAL_TARGET_MAX + 64];
    memset(big, 'a', sizeof(big));
    big[0] = '/';
    assert_true(fleet_inval_ok(big + 1, FLEET_INVAL_HOST_MAX - 1, big, FLEET_INVAL_TARGET_MAX - 1));
    assert_false(fleet_inval_ok(big + 1, FLEET_INVAL_HOST_MAX, big, 1));
    assert_false(fleet_inval_ok("h", 1, big, FLEET_INVAL_TARGET_MAX));
    int n = snprintf(e, sizeof(e), "invalidate lb-a h %.*s", FLEET_INVAL_TARGET_MAX - 1, big);
    assert_int_equal(fleet_inval_parse(e, (size_t)n, &d, &why), 0);
    assert_int_equal(d.target_len, FLEET_INVAL_TARGET_MAX - 1);
    n = snprintf(e, sizeof(e), "invalidate lb-a h %.*s", FLEET_INVAL_TARGET_MAX, big);
    assert_int_equal(fleet_inval_parse(e, (size_t)n, &d, &why), -1);
    static const char *const bad[] = {
        "invalidate",
        "invalidate lb-a h",
        "invalidate lb-a h /x extra",
        "invalidate  lb-a h /x",
        "invalidate lb-a h /x ",
        "Invalidate lb-a h /x",
        "invalidatex lb-a h /x",
        "invalidate -lb h /x",
        "invalidate lb-a h x",
        "invalidate lb-a h //\x7f",
        "invalidate lb-a h/ /x",
        "invalidate lb-a h@x /x",
        "invalidate lb-a h /x\ty",
        "invalidate lb-a h /\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (fleet_inval_parse(bad[i], strlen(bad[i]), &d, &why) != -1 || !why)
            fail_msg("accepted invalidate event '%s'", bad[i]);
    }
    /* A NUL inside is refused, not cut there. */
    assert_int_equal(fleet_inval_parse("invalidate lb-a h /x\0y", 22, &d, &why), -1);
    assert_int_equal(fleet_inval_parse("invalidate lb-a h\0 /x", 21, &d, &why), -1);
    /* Not a drain or a weight either. */
    struct fleet_change c;
    assert_int_equal(fleet_event_parse("invalidate lb-a h /x", 20, &c, &why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_refused),
        cmocka_unit_test(test_newer),      cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_inval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
