#!/bin/sh
# Checks the sizes STYLE.md asks for: C files (git ls-files '*.c' '*.h', tests/ excluded) of
# at most 800 lines and functions of at most 80. Prints each one over as FILE:LINE name length
# and exits 1 if there is any, 0 otherwise. `--all` also lists every function over 60 lines,
# for information: the exit status still depends on the 800/80 limits only.
#
# A function is what clang-format makes of one here: a header at column 0 (its name is the
# identifier before the first `(`), then `{` alone at column 0, up to the next `}` at column 0
# (bodies are indented, so that is the matching one). Its length counts both brace lines; LINE
# is the line of the header that holds the name.
# Usage: tools/sizes.sh [--all]     from anywhere in the checkout
set -eu
cd "$(dirname "$0")/.."

FILE_MAX=800
FUNC_MAX=80
list_min=$FUNC_MAX
case "${1:-}" in
    --all) list_min=60 ;;
    "") ;;
    *) echo "usage: tools/sizes.sh [--all]" >&2; exit 2 ;;
esac

files=$(git ls-files '*.c' '*.h' | grep -v '^tests/' || true)
[ -n "$files" ] || { echo "sizes.sh: no C files (not a git checkout?)" >&2; exit 2; }

# shellcheck disable=SC2086 # one file name per word: the tree has no spaces in them
awk -v file_max="$FILE_MAX" -v func_max="$FUNC_MAX" -v list_min="$list_min" '
function report_file(f, n) {
    if (n > file_max) { printf "%s: %d lines (file over %d)\n", f, n, file_max; over++ }
}
FNR == 1 {
    if (NR > 1) report_file(prev, lines)
    prev = FILENAME; head = ""; start = 0
}
{ lines = FNR }
# A header: column 0, starts like a declaration, has a parenthesis.
/^[A-Za-z_]/ && /\(/ && !start {
    s = $0
    gsub(/__attribute__\(\(([^()]|\([^()]*\))*\)\)/, "", s)
    if (match(s, /[A-Za-z_][A-Za-z0-9_]*\(/)) {
        head = substr(s, RSTART, RLENGTH - 1); head_line = FNR
    }
    next
}
/^\{/ && head != "" && !start { start = FNR; next }
/^\}/ && start {
    len = FNR - start + 1
    if (len > list_min) printf "%s:%d %s %d\n", FILENAME, head_line, head, len
    if (len > func_max) over++
    start = 0; head = ""
    next
}
END {
    if (NR > 0) report_file(prev, lines)
    exit over > 0
}
' $files
