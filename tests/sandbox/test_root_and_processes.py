"""Root, other processes, memory and housekeeping: what code may do to the host beyond files.

Every test runs under both tiers and three identities (``role``): swarmchat as root with an
interpreter uid 65534 cannot reach (code stays uid 0 with no capabilities), as root with a
system interpreter (code drops to uid 65534), and swarmchat itself as uid 65534 (with a
delegated cgroup, as a systemd user session has). Oracles read the host: sysctls, the
hostname, other processes' limits and scheduling, file modes, memory use, leftovers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from sbx_helpers import pids_running, wait_until_gone
from sbx_roles import NOBODY, Box, cgroups_named, spawn_as

HOLD = (  # the code stays alive for the host to look at, until the host creates 'release'
    "open('started', 'w').close()\nimport time\n"
    "for _ in range(1500):\n    if __import__('os').path.exists('release'):\n        break\n    time.sleep(0.01)\n"
)
ATTEMPT = (
    "import ctypes, errno, json, os\nresults = {}\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "def attempt(label, fn):\n    try:\n        fn()\n        results[label] = 'done'\n"
    "    except OSError as e:\n        results[label] = errno.errorcode.get(e.errno, str(e.errno))\n"
    "def sys_call(*args):\n    if libc.syscall(*args) == -1:\n        raise OSError(ctypes.get_errno(), 'syscall')\n"
    "def write(path, text):\n    with open(path, 'w') as f:\n        f.write(text)\n"
)


def results(report: dict[str, object], index: int = 0) -> dict[str, object]:
    return report["results"][index]  # type: ignore[index,no-any-return]


# --- 3. root: sysctls, capabilities, setuid files ---------------------------------------------


def read(path: str) -> str:
    return Path(path).read_text()


def test_host_sysctls_and_hostname_stay_untouched(box: Box) -> None:
    knobs = {
        "/proc/sys/kernel/core_pattern": "|/tmp/swarmchat-pwned %p",
        "/proc/sys/kernel/hostname": "pwned-by-agent",
        "/proc/sys/net/ipv4/ip_forward": "1" if read("/proc/sys/net/ipv4/ip_forward").strip() == "0" else "0",
        "/proc/sys/vm/swappiness": "7",
    }
    before = {path: read(path) for path in knobs}
    hostname = socket.gethostname()
    probe_cgroup = f"sbxtest-escape-{os.getpid()}"
    code = ATTEMPT + (
        f"for path, value in {knobs!r}.items():\n    attempt(path, lambda: write(path, value))\n"
        "import socket\nattempt('sethostname', lambda: socket.sethostname('pwned-by-agent'))\n"
        f"attempt('cgroup', lambda: os.mkdir('/sys/fs/cgroup/pids/{probe_cgroup}'))\n"
        "attempt('sysrq', lambda: write('/proc/sysrq-trigger', 'h'))\n"
        "print(json.dumps(results))\n"
    )
    try:
        report = box.run([{"file": box.script(code), "network": True}])  # host network namespace
        after = {path: read(path) for path in knobs}
        assert after == before, results(report)["stdout"]
        assert socket.gethostname() == hostname
        assert not Path(f"/sys/fs/cgroup/pids/{probe_cgroup}").exists()
    finally:  # a failed test must not leave the host changed
        for path, value in before.items():
            if read(path) != value:
                Path(path).write_text(value)
        with contextlib.suppress(OSError):
            Path(f"/sys/fs/cgroup/pids/{probe_cgroup}").rmdir()


def packet_socket_inodes() -> set[str]:
    """Inodes of raw and packet sockets open anywhere on the host network namespace."""
    found = set()
    for table, column in (("packet", 8), ("raw", 9), ("raw6", 9)):
        with contextlib.suppress(OSError):
            for line in read(f"/proc/net/{table}").splitlines()[1:]:
                fields = line.split()
                if len(fields) > column:
                    found.add(fields[column])
    return found


def socket_inodes(pid: int) -> set[str]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    found.add(target[8:-1])
    return found


def test_code_holds_no_capabilities(box: Box) -> None:
    """Raw sockets (network on), real-time scheduling, a lower nice value, chown and
    reading another uid's 0600 file all need a capability; the host sees none of them."""
    secret = box.ws / "others-secret.txt"
    secret.write_text("OTHER-UID-SECRET")
    os.chown(secret, 4242, 4242)
    secret.chmod(0o600)
    name = box.script("")
    code = ATTEMPT + (
        "import socket\nheld = []\n"
        "for args in ((socket.AF_PACKET, socket.SOCK_RAW, 0), (socket.AF_INET, socket.SOCK_RAW, 1)):\n"
        "    attempt(f'raw {args}', lambda: held.append(socket.socket(*args)))\n"
        "attempt('fifo', lambda: os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1)))\n"
        "attempt('rr', lambda: os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1)))\n"
        "attempt('nice', lambda: os.setpriority(os.PRIO_PROCESS, 0, -10))\n"
        "attempt('chown', lambda: os.chown('others-secret.txt', os.getuid(), os.getgid()))\n"
        "attempt('read', lambda: open('loot.txt', 'w').write(open('others-secret.txt').read()))\n"
        "attempt('hostname', lambda: socket.sethostname('pwned-by-agent'))\n"
        "print(json.dumps(results))\n" + HOLD
    )
    (box.ws / name).write_text(code)
    driver = box.start([{"file": name, "network": True, "timeout": 30}])
    try:
        box.wait_for("started")
        pids = pids_running(name)
        assert pids
        sockets = set().union(*(socket_inodes(pid) for pid in pids))
        assert not sockets & packet_socket_inodes()  # no raw/packet socket held by the run
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                assert os.sched_getscheduler(pid) == os.SCHED_OTHER, pid
                assert os.getpriority(os.PRIO_PROCESS, pid) >= 0, pid
    finally:
        (box.ws / "release").touch()
        report = box.finish(driver)
    st = secret.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (4242, 0o600)
    assert not (box.ws / "loot.txt").exists() or "OTHER-UID-SECRET" not in (box.ws / "loot.txt").read_text()
    assert "OTHER-UID-SECRET" not in str(results(report)["stdout"])


def setuid_binary() -> str:
    for path in ("/usr/bin/su", "/usr/bin/passwd", "/usr/bin/mount", "/bin/su"):
        if os.path.exists(path) and os.stat(path).st_mode & stat.S_ISUID:
            return path
    pytest.skip("no setuid binary on this host to copy or link")


def test_no_file_left_with_setuid_or_setgid_bits(box: Box) -> None:
    suid = setuid_binary()
    links_before = os.stat(suid).st_nlink
    code = ATTEMPT + (
        "import shutil, stat\nopen('plain', 'w').close()\n"
        "attempt('chmod u+s', lambda: os.chmod('plain', 0o4755))\n"
        "attempt('chmod g+s', lambda: os.chmod('plain', 0o2755))\n"
        "attempt('fchmod', lambda: os.fchmod(os.open('plain', os.O_RDONLY), 0o6755))\n"
        "attempt('fchmodat2', lambda: sys_call(452, -100, b'plain', 0o4755, 0))\n"
        "attempt('open', lambda: os.close(os.open('made-open', os.O_CREAT | os.O_WRONLY, 0o4755)))\n"
        "attempt('openat', lambda: os.close(os.open('made-at', os.O_CREAT | os.O_WRONLY, 0o2755, dir_fd=os.open('.', os.O_RDONLY))))\n"
        "attempt('creat', lambda: sys_call(85, b'made-creat', 0o4755) if os.uname().machine == 'x86_64' else None)\n"
        "attempt('tmpfile', lambda: os.close(os.open('.', os.O_TMPFILE | os.O_WRONLY, 0o4755)))\n"
        "attempt('mkdir', lambda: os.mkdir('made-dir', 0o2755))\n"
        "attempt('mknod reg', lambda: os.mknod('made-node', 0o4755 | stat.S_IFREG))\n"
        "attempt('mknod fifo', lambda: os.mknod('made-fifo', 0o4755 | stat.S_IFIFO))\n"
        f"attempt('copy', lambda: shutil.copy2({suid!r}, 'su-copy'))\n"
        f"attempt('link', lambda: os.link({suid!r}, 'su-link'))\n"
        "print(json.dumps(results))\n"
    )
    report = box.run([{"file": box.script(code)}])
    assert results(report)["exit_code"] == 0, results(report)["stderr"]
    for dirpath, dirnames, filenames in os.walk(box.ws):
        for entry in dirnames + filenames:
            mode = os.lstat(os.path.join(dirpath, entry)).st_mode
            assert not mode & (stat.S_ISUID | stat.S_ISGID), (entry, oct(mode), results(report)["stdout"])
    assert os.stat(suid).st_nlink == links_before  # no hard link to it was made


# --- 4. other processes ------------------------------------------------------------------------


def ioprio(pid: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.syscall(252, 1, pid))  # ioprio_get(IOPRIO_WHO_PROCESS, pid), x86_64


def observe(pid: int) -> dict[str, object]:
    state = read(f"/proc/{pid}/stat").rsplit(") ", 1)[1][0]
    limits = [
        line
        for line in read(f"/proc/{pid}/limits").splitlines()
        if "open files" in line or "cpu time" in line
    ]
    return {
        "limits": limits,  # /proc, not prlimit(): root here lacks CAP_SYS_RESOURCE for other uids
        "nice": os.getpriority(os.PRIO_PROCESS, pid),
        "affinity": os.sched_getaffinity(pid),
        "policy": os.sched_getscheduler(pid),
        "ioprio": ioprio(pid),
        "stopped": state in "Tt",
    }


def test_other_processes_keep_their_limits_priority_and_affinity(box: Box) -> None:
    """A neighbour of the code's uid, the jail supervisor (the code's parent under
    Landlock) and swarmchat's own user: nothing the code does reaches them."""
    victim = spawn_as(box.role.code_uid, ["sleep", "60"])
    host_before = (os.getpriority(os.PRIO_PROCESS, 0), os.sched_getaffinity(0))
    try:
        before = observe(victim.pid)
        v = victim.pid
        code = ATTEMPT + (
            "import resource, signal\nme = os.getuid()\n"
            f"for pid in ({v}, os.getppid()):\n"
            "    attempt(f'nofile {pid}', lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, 3)))\n"
            "    attempt(f'cpu {pid}', lambda: resource.prlimit(pid, resource.RLIMIT_CPU, (1, 1)))\n"
            "    attempt(f'nice {pid}', lambda: os.setpriority(os.PRIO_PROCESS, pid, 19))\n"
            "    attempt(f'affinity {pid}', lambda: os.sched_setaffinity(pid, {0}))\n"
            "    attempt(f'idle {pid}', lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0)))\n"
            "    attempt(f'param {pid}', lambda: os.sched_setparam(pid, os.sched_param(0)))\n"
            "    attempt(f'ioprio {pid}', lambda: sys_call(251, 1, pid, (3 << 13) | 7))\n"
            "    attempt(f'stop {pid}', lambda: os.kill(pid, signal.SIGSTOP))\n"
            "attempt('nice user', lambda: os.setpriority(os.PRIO_USER, me, 1))  # mild, should it ever work\n"
            "attempt('nice group', lambda: os.setpriority(os.PRIO_PGRP, 0, 1))\n"
            "attempt('ioprio user', lambda: sys_call(251, 3, me, (3 << 13) | 7))\n"
            "print(json.dumps(results))\n"
        )
        name = box.script(code)
        report = box.run([{"file": name}])
        assert results(report)["exit_code"] == 0, results(report)  # the supervisor lived on
        assert observe(victim.pid) == before, results(report)["stdout"]
        assert (os.getpriority(os.PRIO_PROCESS, 0), os.sched_getaffinity(0)) == host_before
        assert wait_until_gone(name) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGCONT)
        victim.kill()
        victim.wait()


# --- 7. memory and parallel runs ---------------------------------------------------------------


def rss_sampler(marker: str, stop: threading.Event, peak: list[int]) -> None:
    """Host oracle: the largest total resident memory of the run's processes seen."""
    while not stop.is_set():
        total = 0
        for pid in pids_running(marker):
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in read(f"/proc/{pid}/status").splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        peak[0] = max(peak[0], total)
        time.sleep(0.005)


def test_memory_of_a_whole_run_is_capped(box: Box) -> None:
    """Four processes of 2 GiB each fit RLIMIT_AS (4 GiB per process); the run's memory
    cgroup (1 GiB for all of them) is what stops them."""
    name = box.script("")
    code = (
        "import subprocess, sys\n"
        'grab = \'import time; b = b"x" * (2 << 30); print("allocated", flush=True); time.sleep(2)\'\n'
        f"procs = [subprocess.Popen([sys.executable, '-c', grab, {name!r}]) for _ in range(4)]\n"
        "print([p.wait() for p in procs])\n"
    )
    (box.ws / name).write_text(code)
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=rss_sampler, args=(name, stop, peak))
    sampler.start()
    try:
        report = box.run([{"file": name, "timeout": 60}])
    finally:
        stop.set()
        sampler.join()
    out = str(results(report)["stdout"])
    assert "allocated" not in out, out
    assert peak[0] < (1 << 30) + (128 << 20), f"{peak[0] >> 20} MiB resident at once"
    assert wait_until_gone(name) == []


def test_parallel_runs_are_bounded(box: Box) -> None:
    marker = f"par_{os.getpid()}_{time.monotonic_ns()}"
    runs = [{"file": box.script("import time\ntime.sleep(0.6)\n", f"{marker}_{i}.py")} for i in range(5)]
    stop, most = threading.Event(), [0]

    def sample() -> None:
        while not stop.is_set():
            live = set()
            for pid in pids_running(marker):
                with contextlib.suppress(OSError):
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                    live.update(i for i in range(5) if f"{marker}_{i}.py" in cmdline)
            most[0] = max(most[0], len(live))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        report = box.run(runs, env={"SWARMCHAT_MAX_PARALLEL_RUNS": "2"}, parallel=True)
    finally:
        stop.set()
        sampler.join()
    assert [r["exit_code"] for r in report["results"]] == [0] * 5  # type: ignore[attr-defined]
    assert 1 <= most[0] <= 2, most[0]


# --- 8. housekeeping ----------------------------------------------------------------------------


def leftovers(box: Box) -> list[str]:
    return sorted(os.listdir(box.tmp))


def test_nothing_is_left_behind_on_any_way_out(box: Box) -> None:
    """Normal exit, error, timeout, cancellation and a second cancellation during the
    clean-up: afterwards no process, temporary directory or cgroup of the runs remains."""
    started = time.time()
    names = [
        box.script("print('fine')\n"),
        box.script("raise SystemExit('failed on purpose')\n"),
        box.script("import time\ntime.sleep(30)\n"),
    ]
    hold = box.script(
        "import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        + HOLD
    )
    for twice in (False, True):
        (box.ws / "started").unlink(missing_ok=True)
        report = box.run(
            [{"file": names[0]}, {"file": names[1]}, {"file": names[2], "timeout": 0.5}],
            cancel={"file": hold},
            twice=twice,
        )
        assert report["cancelled"] == "cancelled"
        assert [r["exit_code"] for r in report["results"]] == [0, 1, None]  # type: ignore[attr-defined]
        assert report["cgroups"] or box.role.driver_uid != 0, "root always gets cgroups"
        assert [c for c in report["cgroups"] if os.path.exists(c)] == []  # type: ignore[attr-defined]
        assert leftovers(box) == []
        for name in [*names, hold]:
            assert wait_until_gone(name) == [], name
    stale_etc = [p for p in Path("/tmp").glob("swarmchat-etc-*") if p.stat().st_mtime >= started]
    assert stale_etc == []  # /etc/passwd and /etc/group come from pipes now


def test_leftovers_of_a_killed_swarmchat_are_swept_by_the_next(box: Box) -> None:
    """SIGKILL leaves no chance to clean up; the next swarmchat removes what is left."""
    hold = box.script(HOLD)
    driver = box.start([{"file": hold, "timeout": 60}])
    box.wait_for("started")
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert wait_until_gone(hold) == []  # the run dies with swarmchat
    box.run([{"file": box.script("print(1)\n")}])
    assert leftovers(box) == []
    assert cgroups_named(f"swarmchat-{driver.pid}-") == []


# --- the doctor's view ----------------------------------------------------------------------------


def test_protections_say_what_holds_here(box: Box) -> None:
    report = box.run([], protections=True)
    listed = {p["name"]: p for p in report["protections"]}  # type: ignore[attr-defined]
    assert listed["tier works"]["in_force"]
    for name in (
        "no capabilities",
        "/proc/sys read-only",
        "setuid/setgid files refused",
        "network off by default",
    ):
        assert listed[name]["in_force"], listed[name]
    unprivileged = listed["unprivileged uid"]
    assert unprivileged["in_force"] == (box.role.code_uid != 0), unprivileged
    if box.role.name == "root":
        assert "cannot" in unprivileged["detail"]  # and says why
    assert listed["process isolation"]["in_force"] == (box.tier == "bwrap")
    assert listed["memory cgroup"]["in_force"] and listed["pids cgroup"]["in_force"]  # root or delegated


@pytest.mark.parametrize("role", ["nobody"], indirect=True)  # root can always make one here
def test_protections_without_a_delegated_cgroup(box: Box) -> None:
    report = box.run([], protections=True, join=[])
    listed = {p["name"]: p for p in report["protections"]}  # type: ignore[attr-defined]
    memory = listed["memory cgroup"]
    assert not memory["in_force"] and "RLIMIT_AS" in memory["detail"], memory
    assert not listed["pids cgroup"]["in_force"]


@pytest.mark.parametrize("role", ["root-as-nobody"], indirect=True)  # the one that changes uid
def test_a_nobody_workspace_is_required_when_code_drops_to_nobody(box: Box) -> None:
    os.chown(box.ws, 0, 0)
    proc = box.start([{"file": box.script("print(1)\n")}])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and f"not owned by uid {NOBODY}" in err
