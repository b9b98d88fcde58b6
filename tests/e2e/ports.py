#!/usr/bin/env python3
"""Port registry for the end-to-end tests: every port a test listens on (or keeps closed on
purpose) is claimed here first, so that two servers of one test, or two tests running at the
same time (two worktrees running tests/run.sh at once), never get the same port.

  claim OWNER_PID [N]   claims N ports (default 1) for OWNER_PID and prints them, one a line
  release OWNER_PID     drops every claim of OWNER_PID

Why not bind port 0 and close: the kernel then picks from the ephemeral range, the same range
it uses for the source ports of outgoing connections, and nothing stops it from handing the
same port to the next caller or to a connect() before the server binds it. So ports come from
BELOW the ephemeral range (net.ipv4.ip_local_port_range), where the kernel never picks one by
itself, and each one is claimed in a registry shared by every test on the machine:

  $LB_TEST_PORT_DIR (default /tmp/lb-test-ports)/PORT   a symlink to "PID:STARTTIME"

A symlink is created in one system call and carries its owner, so a claim is never half
written. The owner is the test's shell, named by its PID and its start time (field 22 of
/proc/PID/stat), so that a reused PID is not taken for the owner. A claim whose owner is gone
(a test killed before its cleanup ran) may be taken over. Claims, takeovers and releases are
made under flock(2) on $LB_TEST_PORT_DIR/.lock, so a takeover never removes a fresh claim.
A claimed port is handed out only if a bind() to 0.0.0.0:PORT without SO_REUSEADDR works, so
nothing outside the registry listens there or holds a connection on it (not even TIME_WAIT).

LB_TEST_PORTS=LO-HI overrides the range (default 20000 up to the ephemeral range's low end).
Importable: claim(owner_pid, n) and release(owner_pid) do the same from Python.
"""
import errno, fcntl, os, random, socket, sys

REG = os.environ.get("LB_TEST_PORT_DIR", "/tmp/lb-test-ports")


def owner_of(pid):
    """Returns "PID:STARTTIME" for a live process, None when there is none."""
    try:
        with open("/proc/%d/stat" % int(pid)) as f:
            stat = f.read()
    except (OSError, ValueError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return "%d:%s" % (int(pid), fields[19])  # field 22 of the whole line: starttime


def alive(claim):
    pid = claim.split(":", 1)[0]
    return pid.isdigit() and owner_of(pid) == claim


def port_range():
    spec = os.environ.get("LB_TEST_PORTS")
    if spec:
        lo, hi = (int(x) for x in spec.split("-"))
        return lo, hi
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        eph_lo = int(f.read().split()[0])
    hi = eph_lo - 1
    lo = 20000 if hi >= 21000 else 1024
    if hi - lo < 100:
        raise SystemExit("ports.py: only %d..%d lies below the ephemeral range; set "
                         "LB_TEST_PORTS=LO-HI" % (lo, hi))
    return lo, hi


def bindable(port):
    """True when nothing is bound to PORT on any IPv4 address (listener or connection)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Locked:
    """The registry directory, created if need be, with its lock held."""

    def __enter__(self):
        try:
            os.mkdir(REG, 0o1777)
            os.chmod(REG, 0o1777)  # other users' tests share it; mkdir's mode obeys umask
        except FileExistsError:
            pass
        self.fd = os.open(os.path.join(REG, ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            os.fchmod(self.fd, 0o666)  # as above; only its creator may, and only it must
        except PermissionError:
            pass
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # drops the lock


def claim(owner_pid, n=1):
    """Claims N ports for the live process OWNER_PID; returns them. Raises when it cannot."""
    me = owner_of(owner_pid)
    if me is None:
        raise SystemExit("ports.py: owner %s is not a running process" % owner_pid)
    lo, hi = port_range()
    span = hi - lo + 1
    start = random.randrange(span)  # concurrent runs start apart: fewer entries to skip
    got = []
    with Locked():
        for i in range(span):
            if len(got) == n:
                break
            port = lo + (start + i) % span
            path = os.path.join(REG, str(port))
            try:
                held = os.readlink(path)
            except FileNotFoundError:
                held = None
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: not a symlink, so not ours to touch
                    raise
                continue
            if held is not None:
                if alive(held):
                    continue
                os.unlink(path)  # its owner is gone without releasing it
            if not bindable(port):
                continue
            os.symlink(me, path)
            got.append(port)
    if len(got) < n:
        release_ports(me, got)
        raise SystemExit("ports.py: no free port left in %d..%d" % (lo, hi))
    return got


def release_ports(me, ports):
    for port in ports:
        path = os.path.join(REG, str(port))
        try:
            if os.readlink(path) == me:
                os.unlink(path)
        except OSError:
            pass


def release(owner_pid):
    """Drops every claim of OWNER_PID (which must still be running: PIDs get reused)."""
    me = owner_of(owner_pid)
    if me is None or not os.path.isdir(REG):
        return
    with Locked():
        release_ports(me, [p for p in os.listdir(REG) if p.isdigit()])


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("claim", "release"):
        print(__doc__)
        return 2
    if sys.argv[1] == "claim":
        n = int(sys.argv[3]) if len(sys.argv) > 3 else 1
        print("\n".join(str(p) for p in claim(sys.argv[2], n)))
    else:
        release(sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
