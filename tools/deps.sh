#!/bin/sh
# Installs the Debian packages lb needs to build, test and benchmark, and only those
# that are missing: a machine that has everything sees no apt-get at all.
# Usage: tools/deps.sh [build|all|deb]   (default: all; deb: what `make deb` needs, on top
# of build)
set -eu

build="gcc make pkg-config liburing-dev libssl-dev libyaml-dev libhiredis-dev libcmocka-dev libsystemd-dev"
peers="curl wrk slowhttptest redis-server redis-tools nutcracker nginx-light libnginx-mod-stream haproxy varnish linux-perf gnuplot-nox clang libclang-rt-14-dev python3 procps iproute2 chromium"

deb="debhelper dpkg-dev fakeroot lintian"

case "${1:-all}" in
    build) want="$build" ;;
    deb) want="$build $deb" ;;
    all) want="$build $peers" ;;
    *) echo "usage: tools/deps.sh [build|all|deb]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A stale package index is the usual reason an install fails on a fresh machine.
$sudo apt-get update -qq >/dev/null
# nginx and redis must not start system-wide services that hold ports tests want.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
