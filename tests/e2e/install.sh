# make install / make uninstall into a temp DESTDIR:
#  - exactly the expected files, for PREFIX=/usr/local (the default) and PREFIX=/usr, with the
#    unit's ExecStartPre/ExecStart rewritten to where lb went;
#  - the installed lb accepts the installed example config (lb -t);
#  - every installed man page renders without warnings (man --warnings -l);
#  - the installed bash completion completes commands, and cluster and server names from a
#    running lb (the installed binary, on a config of this test);
#  - a second install keeps an edited config; uninstall keeps it too, and removes everything
#    else; with the example config untouched, nothing at all is left.
. "$(dirname "$0")/lib.sh"
need python3 bash make
need_uring
[ -x "$LB" ] || skip "lb not built"
B=$(dirname "$LB")
for f in lbctl lbq; do [ -x "$B/$f" ] || skip "$B/$f not built"; done
D="$T/root"
inst() { make --no-print-directory -C "$ROOT" B="$B" DESTDIR="$D" "$@"; }

inst install >"$T/install.log" 2>&1 || fail "make install: $(cat "$T/install.log")"
cat >"$T/want" <<EOW
/etc/lb/lb.yaml
/etc/logrotate.d/lb
/usr/local/bin/lbq
/usr/local/lib/systemd/system/lb.service
/usr/local/sbin/lb
/usr/local/sbin/lbctl
/usr/local/share/bash-completion/completions/lbctl
/usr/local/share/man/man1/lbq.1
/usr/local/share/man/man5/lb.yaml.5
/usr/local/share/man/man8/lb.8
/usr/local/share/man/man8/lbctl.8
EOW
(cd "$D" && find . ! -type d | sed 's#^\.##' | sort) >"$T/got"
diff "$T/want" "$T/got" >"$T/diff" || fail "installed files differ (-want +got): $(cat "$T/diff")"

U="$D/usr/local/lib/systemd/system/lb.service"
grep -qx 'ExecStartPre=/usr/local/sbin/lb -t -c /etc/lb/lb.yaml' "$U" || fail "ExecStartPre not rewritten"
grep -qx 'ExecStart=/usr/local/sbin/lb -c /etc/lb/lb.yaml' "$U" || fail "ExecStart not rewritten"
grep -qx 'Type=notify' "$U" || fail "the unit is not Type=notify"
[ -x "$D/usr/local/sbin/lb" ] && [ -x "$D/usr/local/sbin/lbctl" ] && [ -x "$D/usr/local/bin/lbq" ] ||
    fail "binaries not executable"

"$D/usr/local/sbin/lb" -t -c "$D/etc/lb/lb.yaml" >"$T/check.log" 2>&1 ||
    fail "installed lb rejects the installed config: $(cat "$T/check.log")"
"$D/usr/local/bin/lbq" -h >/dev/null 2>&1 || fail "installed lbq -h failed"

if command -v man >/dev/null 2>&1; then
    for m in "$D"/usr/local/share/man/man*/*; do
        MANWIDTH=80 man --warnings -l "$m" >/dev/null 2>"$T/man.err" || fail "man -l $m failed"
        [ -s "$T/man.err" ] && fail "man warns about $m: $(cat "$T/man.err")"
    done
else
    echo "man not installed: pages not rendered"
fi

# Completion, with lbctl from the install and a running lb to read names from.
A=$(free_port); L=$(free_port)
bg a "$ROOT/build/demo-backend" -l "127.0.0.1:$A" -n a
cat >"$T/lb.yaml" <<EOC
global: { workers: 1, admin: { socket: $T/lb.sock } }
listeners: [ { name: web, bind: 127.0.0.1:$L, routes: [ { cluster: shop } ] } ]
clusters:
  shop: { servers: [ { name: alpha, address: 127.0.0.1:$A }, { name: beta, address: 127.0.0.1:$((A + 1)) } ] }
  other: { servers: [ { name: gamma, address: 127.0.0.1:$A } ] }
EOC
bg lb "$D/usr/local/sbin/lb" -c "$T/lb.yaml"
wait_port "$L"
complete_words() { # words of the command line, the last one being completed
    PATH="$D/usr/local/sbin:$PATH" bash -c '
        . "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        _lbctl; printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' \
        x "$D/usr/local/share/bash-completion/completions/lbctl" "$@"
}
got=$(complete_words lbctl dr)
[ "$got" = "drain " ] || fail "lbctl dr<TAB> gave '$got'"
got=$(complete_words lbctl -s "$T/lb.sock" drain "")
[ "$got" = "other shop " ] || fail "lbctl drain <TAB> gave '$got'"
got=$(complete_words lbctl -s "$T/lb.sock" undrain shop "")
[ "$got" = "alpha beta " ] || fail "lbctl undrain shop <TAB> gave '$got'"
got=$(complete_words lbctl -s "$T/lb.sock" weight other g)
[ "$got" = "gamma " ] || fail "lbctl weight other g<TAB> gave '$got'"
got=$(complete_words lbctl cache "")
[ "$got" = "purge stats " ] || fail "lbctl cache <TAB> gave '$got'"

# An edited config survives a second install and the uninstall.
echo "# edited" >>"$D/etc/lb/lb.yaml"
inst install >"$T/install2.log" 2>&1 || fail "second make install: $(cat "$T/install2.log")"
tail -n 1 "$D/etc/lb/lb.yaml" | grep -qx '# edited' || fail "make install overwrote an edited config"
inst uninstall >"$T/uninstall.log" 2>&1 || fail "make uninstall: $(cat "$T/uninstall.log")"
left=$(cd "$D" && find . ! -type d | sed 's#^\.##')
[ "$left" = /etc/lb/lb.yaml ] || fail "after uninstall with an edited config, left: $left"
grep -q 'was edited: kept' "$T/uninstall.log" || fail "uninstall did not say it kept the config"

# Unedited: nothing is left at all.
rm -rf "$D"
inst install >"$T/install3.log" 2>&1 || fail "third make install: $(cat "$T/install3.log")"
inst uninstall >"$T/uninstall2.log" 2>&1 || fail "make uninstall: $(cat "$T/uninstall2.log")"
left=$(cd "$D" && find . ! -type d)
[ -z "$left" ] || fail "files left after uninstall: $left"

# PREFIX=/usr (the Debian package's): binaries under /usr, config still under /etc.
rm -rf "$D"
inst install PREFIX=/usr >"$T/install4.log" 2>&1 || fail "make install PREFIX=/usr: $(cat "$T/install4.log")"
grep -qx 'ExecStart=/usr/sbin/lb -c /etc/lb/lb.yaml' "$D/usr/lib/systemd/system/lb.service" ||
    fail "PREFIX=/usr: ExecStart is not /usr/sbin/lb"
[ -x "$D/usr/sbin/lb" ] && [ -f "$D/usr/share/man/man5/lb.yaml.5" ] && [ -f "$D/etc/lb/lb.yaml" ] ||
    fail "PREFIX=/usr: files missing: $(cd "$D" && find . ! -type d)"
inst uninstall PREFIX=/usr >"$T/uninstall3.log" 2>&1 || fail "make uninstall PREFIX=/usr"
left=$(cd "$D" && find . ! -type d)
[ -z "$left" ] || fail "PREFIX=/usr: files left after uninstall: $left"
echo "ok: install, check, man, completion, uninstall"
