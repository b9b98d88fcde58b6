# The Debian package (`make deb`, into this test's own build dir): it builds, depends on the
# runtime libraries and nothing else (besides libc6 and adduser, which its postinst uses),
# holds the expected files with /etc ones as conffiles, enables the unit the Debian way,
# creates the lb user, and lintian reports no error or warning. It is not installed here (that
# would change the machine every test shares); see README "Install" for dpkg -i.
# Skips when debhelper is not installed (`tools/deps.sh deb` installs it; make test does not).
. "$(dirname "$0")/lib.sh"
need make git
for c in dpkg-buildpackage dh lintian fakeroot; do
    command -v "$c" >/dev/null 2>&1 || skip "$c not installed (tools/deps.sh deb)"
done
[ -d "$ROOT/.git" ] || [ -f "$ROOT/.git" ] || skip "not a git checkout (make deb copies git ls-files)"

make --no-print-directory -C "$ROOT" deb B="$T/b" >"$T/deb.log" 2>&1 || fail "make deb failed"
deb=$(ls "$T"/b/lb_*_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "no lb_*.deb in the build dir: $(ls "$T/b")"

deps=$(dpkg-deb -f "$deb" Depends)
for lib in liburing2 libssl3 libyaml-0-2 libhiredis0.14 libsystemd0; do
    echo "$deps" | grep -q "\\b$lib\\b" || fail "Depends lacks $lib: $deps"
done
extra=$(echo "$deps" | tr ',' '\n' | sed 's/^ *//; s/ .*//' |
    grep -vxE 'liburing2|libssl3|libyaml-0-2|libhiredis0\.14|libsystemd0|libc6|adduser' || true)
[ -z "$extra" ] || fail "unexpected dependencies: $extra"

dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's#^\.##' >"$T/files"
for f in /usr/sbin/lb /usr/sbin/lbctl /usr/bin/lbq /etc/lb/lb.yaml /etc/logrotate.d/lb \
    /lib/systemd/system/lb.service /usr/share/bash-completion/completions/lbctl \
    /usr/share/man/man8/lb.8.gz /usr/share/man/man8/lbctl.8.gz /usr/share/man/man1/lbq.1.gz \
    /usr/share/man/man5/lb.yaml.5.gz /usr/share/doc/lb/copyright; do
    grep -qx "$f" "$T/files" || fail "$f not in the package"
done

mkdir "$T/ctl"
dpkg-deb -e "$deb" "$T/ctl"
grep -qx /etc/lb/lb.yaml "$T/ctl/conffiles" || fail "/etc/lb/lb.yaml is not a conffile"
grep -q 'adduser --system' "$T/ctl/postinst" || fail "postinst does not create the lb user"
grep -q 'deb-systemd-helper.*enable.*lb.service\|deb-systemd-helper enable' "$T/ctl/postinst" ||
    fail "postinst does not enable lb.service"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./lib/systemd/system/lb.service |
    grep -qx 'ExecStart=/usr/sbin/lb -c /etc/lb/lb.yaml' || fail "the unit's ExecStart is not /usr/sbin/lb"

lintian --allow-root "$deb" >"$T/lintian.log" 2>&1 || true
if grep -E '^[EW]: ' "$T/lintian.log"; then
    fail "lintian reports errors or warnings"
fi
echo "ok: $(basename "$deb"), Depends: $deps"
