#!/bin/sh
# Runs every test: unit binaries, end-to-end scripts, then a short fuzz smoke run of each
# libFuzzer target over its committed corpus. A test exits 0 (pass), 77 (skip: says why on
# its last output line) or anything else (fail). Logs go to build/test-logs/.
# Usage: tests/run.sh [PATTERN]   run only tests whose name contains PATTERN
set -u
cd "$(dirname "$0")/.."
pattern="${1:-}"
logs=build/test-logs
mkdir -p "$logs"
pass=0 fail=0 skip=0 failed=""
FUZZ_SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-10}

# Under `make SAN=address,undefined test` every process a test starts (lb, lbctl, the demo
# backend, unit binaries) writes its sanitizer reports here, where no test can lose them in
# its own temp dir; any report fails the run. (libFuzzer targets report on their own.)
san="$(pwd)/$logs/sanitizer"
rm -rf "$san"
mkdir -p "$san"
export ASAN_OPTIONS="${ASAN_OPTIONS:-log_path=$san/asan:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-log_path=$san/ubsan:print_stacktrace=1:halt_on_error=1}"

run_one() { # name timeout cmd...
    name=$1; limit=$2; shift 2
    case "$name" in *"$pattern"*) ;; *) return ;; esac
    log="$logs/$name.log"
    mkdir -p "$(dirname "$log")"
    start=$(date +%s)
    timeout -k 5 "$limit" "$@" >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    case $rc in
        0) pass=$((pass + 1)); printf 'PASS %-40s %3ss\n' "$name" "$secs" ;;
        77) skip=$((skip + 1)); printf 'SKIP %-40s %s\n' "$name" "$(tail -n 1 "$log")" ;;
        *) fail=$((fail + 1)); failed="$failed $name"
           [ $rc -eq 124 ] && echo "(killed after ${limit}s)" >>"$log"
           printf 'FAIL %-40s %3ss (exit %s, log %s)\n' "$name" "$secs" "$rc" "$log"
           tail -n 30 "$log" | sed 's/^/    /' ;;
    esac
}

# STYLE.md's sizes: no source file over ~800 lines, no function over ~80.
run_one "style/sizes" 60 tools/sizes.sh

for t in build/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "unit/$(basename "$t")" 300 "$t"
done

for t in tests/e2e/*.sh; do
    [ -f "$t" ] || continue
    [ "$(basename "$t")" = lib.sh ] && continue # the helpers every test sources, not a test
    run_one "e2e/$(basename "$t" .sh)" 600 bash "$t"
done

for f in build/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    n=$(basename "$f")
    corpus=tests/fuzz/corpus/$n
    mkdir -p "$corpus"
    # Run in a scratch copy so a smoke run never rewrites the committed corpus.
    scratch=$(mktemp -d)
    dict=tests/fuzz/$n.dict
    [ -f "$dict" ] && dict="-dict=$dict" || dict="-runs=-1" # -runs=-1: the default, a no-op
    run_one "fuzz/$n" $((FUZZ_SMOKE_SECONDS + 120)) env -u ASAN_OPTIONS -u UBSAN_OPTIONS \
        "$f" -max_total_time="$FUZZ_SMOKE_SECONDS" -timeout=10 -rss_limit_mb=2048 "$dict" \
        -artifact_prefix="$logs/$n-" "$scratch" "$corpus"
    rm -rf "$scratch"
done

if ls "$san" | grep -q .; then
    fail=$((fail + 1)); failed="$failed sanitizer"
    echo "FAIL sanitizer reports ($san):"
    for f in "$san"/*; do echo "--- $f"; head -n 30 "$f"; done
fi
[ -n "$failed" ] && echo "failed:$failed"
[ "$skip" -gt 0 ] && echo "$skip skipped"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
