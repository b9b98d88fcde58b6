# Cache invalidation across the fleet (issue 17): two real build/lb instances (A and B, one
# worker each, so that a hit says the instance's L1 holds the answer) sharing one
# redis-server through global.redis, each with its own L1 cache in front of
# tests/e2e/cache_origin.py, which counts the GETs per path:
#  - both fetch /maxage/x until it is a hit, so that each holds it;
#  - a POST /maxage/x through A: a GET through B then reaches the origin (B's L1 copy went),
#    and lb_cache_fleet_invalidations_total counts it sent on A and received on B;
#  - a POST /maxage/y?loc=/maxage/z through A: B drops /maxage/z (the Location) too;
#  - an invalidate event published by hand with B's own instance name is ignored by B, and
#    malformed ones are logged and ignored, never a crash.
. "$(dirname "$0")/lib.sh"
need python3 curl redis-server redis-cli
need_uring
R=$(free_port); O=$(free_port)
LA=$(free_port); LB_=$(free_port); MA=$(free_port); MB=$(free_port)
bg redis redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --dir "$T"
bg origin python3 "$ROOT/tests/e2e/cache_origin.py" "$O"
for i in a b; do
    [ $i = a ] && { L=$LA; M=$MA; } || { L=$LB_; M=$MB; }
    cat >"$T/lb_$i.yaml" <<EOC
global:
  workers: 1
  admin: { socket: $T/lb_$i.sock }
  metrics: { listen: 127.0.0.1:$M }
  redis: { nodes: [127.0.0.1:$R], instance: lb-$i, prefix: "e2e:", timeout: 300ms }
listeners:
  - name: web
    bind: 127.0.0.1:$L
    routes:
      - cluster: origin
        cache: { ttl: 0s, max_ttl: 1h, debug_header: on }
clusters:
  origin:
    servers: [ { name: o1, address: 127.0.0.1:$O } ]
EOC
    "$LB" -t -c "$T/lb_$i.yaml" >"$T/check.out" 2>&1 || fail "lb -t: $(cat "$T/check.out")"
done
for p in $R $O; do wait_port "$p"; done
bg lb_a "$LB" -c "$T/lb_a.yaml"
LB_A_PID=$LAST_PID
bg lb_b "$LB" -c "$T/lb_b.yaml"
LB_B_PID=$LAST_PID
for p in $LA $LB_ $MA $MB; do wait_port "$p"; done
A="http://127.0.0.1:$LA"; B="http://127.0.0.1:$LB_"
H="Host: www.example"
count() { curl -s "http://127.0.0.1:$O/_count$1"; }
inv() { # PORT DIR: lb_cache_fleet_invalidations_total{dir=DIR}
    curl -s "http://127.0.0.1:$1/metrics" |
        awk -v d="dir=\"$2\"" '$1 ~ /^lb_cache_fleet_invalidations_total/ && index($1, d) { s += $2 } END { print s + 0 }'
}
live() { [ "$("$LBCTL" -s "$T/lb_$1.sock" --json fleet | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["fleet"]["members"]))')" = 2 ]; }
wait_for 15 "both instances in the fleet (A)" live a
wait_for 15 "both instances in the fleet (B)" live b
# Held in L1: a GET through the instance is a hit.
held() { # URL PATH
    curl -s -D "$T/held.h" -o /dev/null -H "$H" "$1$2" && grep -qi "^X-Cache: HIT" "$T/held.h"
}
at_least() { [ "$(count "$1")" -ge "$2" ]; }
reached() { # PATH N: a GET through B, the origin's count for PATH now above N
    curl -s -o /dev/null -H "$H" "$B$1" && [ "$(count "$1")" -gt "$2" ]
}

# 1. Both hold /maxage/x; the POST through A reaches B's L1.
wait_for 10 "A holds /maxage/x" held "$A" /maxage/x
wait_for 10 "B holds /maxage/x" held "$B" /maxage/x
N=$(count /maxage/x)
echo "held by A and B; origin asked $N time(s)"
curl -sf -o /dev/null -X POST -H "$H" -d v "$A/maxage/x" || fail "POST through A"
sent() { [ "$(inv "$MA" sent)" -ge "$1" ]; }
wait_for 10 "A sends the invalidation" sent 1
wait_for 15 "a GET through B reaches the origin after the POST through A" reached /maxage/x "$N"
[ "$(inv "$MB" received)" -ge 1 ] || fail "B did not count the invalidation received"
echo "POST through A: B asked the origin again (count $(count /maxage/x)); sent $(inv "$MA" sent), received $(inv "$MB" received)"

# 2. The Location of a POST goes too.
wait_for 10 "B holds /maxage/z" held "$B" /maxage/z
NZ=$(count /maxage/z)
curl -sf -o /dev/null -X POST -H "$H" -d v "$A/maxage/y?loc=/maxage/z" || fail "POST y"
wait_for 15 "a GET of the Location through B reaches the origin" reached /maxage/z "$NZ"
echo "the Location /maxage/z was dropped on B"

# 3. B's own name, and garbage: ignored.
wait_for 10 "B holds /maxage/own" held "$B" /maxage/own
R0=$(inv "$MB" received)
redis-cli -p "$R" PUBLISH e2e:fleet:events "invalidate lb-b www.example /maxage/own" >/dev/null
for bad in "invalidate lb-a www.example" "invalidate lb-a www.example maxage/own" \
    "invalidate lb-a www example /maxage/own" "invalidate lb-a www.example /maxage/own extra" \
    "invalidate -x www.example /maxage/own"; do
    redis-cli -p "$R" PUBLISH e2e:fleet:events "$bad" >/dev/null
done
logged() { [ "$(grep -c 'ignored a malformed or foreign value' "$T/lb_b.log")" -ge 5 ]; }
wait_for 10 "B logs the malformed events" logged
[ "$(inv "$MB" received)" = "$R0" ] || fail "B took its own or a malformed invalidation"
held "$B" /maxage/own || fail "B dropped /maxage/own on its own or a malformed event"
echo "own and malformed events ignored"

curl -sf -o /dev/null "http://127.0.0.1:$MA/metrics" || fail "A died"
curl -sf -o /dev/null "http://127.0.0.1:$MB/metrics" || fail "B died"
stop "$LB_A_PID"; [ "$STOP_RC" = 0 ] || fail "A exited $STOP_RC"
stop "$LB_B_PID"; [ "$STOP_RC" = 0 ] || fail "B exited $STOP_RC"
echo "PASS"
