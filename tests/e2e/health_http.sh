# Health checking, failover and passive ejection on http listeners: tests/e2e/health.sh with
# PROTO=http. There, a request caught by a kill -9 is retried on another server, so the
# whole run must show no failed request, not just the time after detection.
PROTO=http
. "$(dirname "$0")/health.sh"
