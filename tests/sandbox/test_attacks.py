"""Attack suite: code an agent might write, and host-side proof that it was contained.

Each test runs under every tier that works here (bwrap, landlock); a tier that cannot run
on this machine is skipped with the reason. Every loop in the attack code is bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sbx_helpers import executor_for, pids_running, run, script_name, wait_until_gone

from swarmchat.tools.execute import format_exec_result
from swarmchat.workspace import Workspace

# --- secrets ----------------------------------------------------------------------------

HOLD_UNTIL_RELEASED = (  # stays alive for the host to inspect, until it creates 'release'
    "import os, time\nopen('started', 'w').close()\n"
    "for _ in range(500):\n    if os.path.exists('release'):\n        break\n    time.sleep(0.01)\n"
)


def test_environment_holds_no_secrets(tier: str, workspace: Path, secret_env: str) -> None:
    name = script_name()
    (workspace / name).write_text(HOLD_UNTIL_RELEASED)
    executor = executor_for(tier)

    async def scenario() -> bytes:
        task = asyncio.create_task(executor.run(name, workspace, 10))
        for _ in range(200):
            if (workspace / "started").exists():
                break
            await asyncio.sleep(0.02)
        # Host-side oracle: every process of the run (jail, bwrap, the interpreter itself).
        procs = [
            (Path(f"/proc/{pid}/cmdline").read_bytes(), Path(f"/proc/{pid}/environ").read_bytes())
            for pid in pids_running(name)
        ]
        (workspace / "release").touch()
        await task
        assert procs and all(secret_env.encode() not in environ for _, environ in procs)
        (python,) = [
            environ
            for cmdline, environ in procs
            if cmdline.startswith(sys.executable.encode()) and b"jail.py" not in cmdline
        ]
        return python

    environ = asyncio.run(scenario())
    assert secret_env.encode() not in environ
    names = {kv.split(b"=", 1)[0].decode() for kv in environ.split(b"\0") if kv}
    assert names <= {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "PYTHONUNBUFFERED",
        "PYTHONIOENCODING",
        "PYTHONDONTWRITEBYTECODE",
        "MPLBACKEND",
        "TERM",
        "USER",
        "LOGNAME",
        "PYTHONPATH",
        "PWD",
        "MPLCONFIGDIR",
        "XDG_CACHE_HOME",
    }
    assert f"HOME={workspace}".encode() in environ


def test_cannot_read_other_processes_environ(tier: str, workspace: Path, secret_env: str) -> None:
    code = (
        "import os\nout = []\n"
        f"for pid in [{os.getpid()}, {os.getppid()}] + [p for p in os.listdir('/proc') if p.isdigit()][:500]:\n"
        "    try:\n        out.append(open(f'/proc/{pid}/environ', 'rb').read().decode('latin-1'))\n"
        "    except OSError:\n        pass\n"
        "open('loot.txt', 'w').write('\\n'.join(out))\nprint('\\n'.join(out))\n"
    )
    r = run(tier, workspace, code)
    loot = (workspace / "loot.txt").read_text() if (workspace / "loot.txt").exists() else ""
    assert secret_env not in loot and secret_env not in r.stdout


# --- files ------------------------------------------------------------------------------


@pytest.fixture
def host_secrets(tmp_path: Path) -> dict[str, Path]:
    ssh = tmp_path / "fakehome" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_ed25519").write_text("PRIVATE-KEY-MATERIAL")
    other = tmp_path / "other_project"
    other.mkdir()
    (other / "secrets.env").write_text("OTHER-PROJECT-SECRET")
    return {"ssh": ssh / "id_ed25519", "other": other / "secrets.env"}


def test_cannot_read_home_or_other_projects(
    tier: str, workspace: Path, host_secrets: dict[str, Path]
) -> None:
    targets = [str(p) for p in host_secrets.values()] + ["/etc/shadow", str(Path.home() / ".bash_history")]
    code = (
        "import os\nloot = []\n"
        f"for path in {targets!r}:\n"
        "    try:\n        loot.append(open(path).read())\n    except OSError as e:\n"
        "        loot.append(f'denied {path}: {e.strerror}')\n"
        "try:\n    loot.append(repr(os.listdir(os.path.expanduser('~/..'))))\nexcept OSError:\n    pass\n"
        "open('loot.txt', 'w').write('\\n'.join(loot))\n"
    )
    r = run(tier, workspace, code)
    assert r.exit_code == 0
    loot = (workspace / "loot.txt").read_text()
    assert "PRIVATE-KEY-MATERIAL" not in loot and "OTHER-PROJECT-SECRET" not in loot
    assert "root:" not in loot  # /etc/shadow


def test_cannot_write_outside_the_workspace(tier: str, workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    host_tmp = Path("/tmp") / f"swarmchat-escape-{os.getpid()}-{tier}"
    code = (
        f"for path in [{str(outside)!r}, {str(host_tmp)!r}, '/usr/escape.txt', '/etc/escape']:\n"
        "    try:\n        open(path, 'w').write('escaped')\n    except OSError:\n        pass\n"
        "import tempfile\nwith tempfile.NamedTemporaryFile('w', delete=False) as f:\n"
        "    f.write('private tmp')\nprint(f.name)\n"
    )
    r = run(tier, workspace, code)
    assert r.exit_code == 0, r.stderr
    assert not outside.exists() and not host_tmp.exists()
    assert not Path("/usr/escape.txt").exists() and not Path("/etc/escape").exists()
    if tier == "bwrap":  # /tmp inside is a private tmpfs: the file is not on the host
        assert not Path(r.stdout.strip()).exists()


def test_symlinks_planted_by_code_do_not_redirect_host_writes(
    tier: str, workspace: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    outside_dir = tmp_path / "outside_dir"
    outside_dir.mkdir()
    code = (
        "import os\n"
        f"os.symlink({str(victim)!r}, 'task.py')\n"
        f"os.symlink({str(outside_dir)!r}, 'pkg')\n"
        "os.mkdir('real')\n"
        f"os.symlink({str(victim)!r}, 'real/data.txt')\n"
    )
    assert run(tier, workspace, code).exit_code == 0
    workspace = Workspace(workspace)
    workspace.write("task.py", b"print('replaced')\n")  # replaces the link, not the target
    with pytest.raises(Exception, match="symlink"):
        workspace.write("pkg/evil.py", b"x")
    workspace.write("real/data.txt", b"new")
    assert victim.read_text() == "original"
    assert not (outside_dir / "evil.py").exists()


def test_hardlinks_to_outside_files_cannot_be_made(tier: str, workspace: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    code = (
        f"import os\ntry:\n    os.link({str(victim)!r}, 'h.txt')\nexcept OSError as e:\n    print(e)\n"
        "try:\n    os.link('/etc/passwd', 'p.txt')\nexcept OSError as e:\n    print(e)\n"
    )
    run(tier, workspace, code)
    assert victim.stat().st_nlink == 1
    assert not (workspace / "h.txt").exists()


@pytest.mark.parametrize(
    "name",
    ["../x.py", "/etc/passwd", "~/x.py", "a\x00b.py", "a\nb.py", "d/" * 400 + "x.py", "/".join(["x" * 256])],
)
def test_hostile_file_names_are_refused(workspace: Path, name: str) -> None:
    from swarmchat.errors import ToolError

    with pytest.raises(ToolError):
        Workspace(workspace).read(name)
    with pytest.raises(ToolError):
        Workspace(workspace).write(name, b"x")


# --- network ----------------------------------------------------------------------------


class Listeners:
    """Loopback TCP, UDP, a Unix socket and an abstract socket, recording any contact."""

    def __init__(self, tmp: Path) -> None:
        self.hits: list[str] = []
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.unix_path = str(tmp / "host.sock")
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.unix_path)
        self.unix.listen()
        self.abstract_name = f"\0swarmchat-test-{os.getpid()}"
        self.abstract = socket.socket(socket.AF_UNIX)
        self.abstract.bind(self.abstract_name)
        self.abstract.listen()
        for sock in (self.tcp, self.udp, self.unix, self.abstract):
            sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for label, sock in (("tcp", self.tcp), ("unix", self.unix), ("abstract", self.abstract)):
                try:
                    conn, _ = sock.accept()
                    self.hits.append(label)
                    conn.close()
                except OSError:
                    pass
            try:
                self.udp.recvfrom(100)
                self.hits.append("udp")
            except OSError:
                pass

    def attack_code(self) -> str:
        tcp, udp = self.tcp.getsockname()[1], self.udp.getsockname()[1]
        return (
            "import socket\nresults = []\n"
            "def attempt(label, fn):\n"
            "    try:\n        fn()\n        results.append(label + ' ok')\n"
            "    except OSError as e:\n        results.append(f'{label} blocked: {e}')\n"
            f"attempt('tcp', lambda: socket.create_connection(('127.0.0.1', {tcp}), timeout=1))\n"
            f"attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {udp})))\n"
            f"attempt('unix', lambda: socket.socket(socket.AF_UNIX).connect({self.unix_path!r}))\n"
            f"attempt('abstract', lambda: socket.socket(socket.AF_UNIX).connect({self.abstract_name!r}))\n"
            "attempt('dns', lambda: socket.getaddrinfo('example.com', 80))\n"
            "print('\\n'.join(results))\n"
        )

    def close(self) -> None:
        time.sleep(0.5)  # let late packets arrive before judging
        self._stop.set()
        self.thread.join(2)
        for sock in (self.tcp, self.udp, self.unix, self.abstract):
            sock.close()


@pytest.fixture
def listeners(tmp_path: Path):
    lst = Listeners(tmp_path)
    yield lst
    lst.close()


def test_no_network_by_default(tier: str, workspace: Path, listeners: Listeners) -> None:
    r = run(tier, workspace, listeners.attack_code())
    listeners.close()
    assert listeners.hits == [], (listeners.hits, r.stdout)
    assert "tcp blocked" in r.stdout and "udp blocked" in r.stdout


def test_network_opt_in_reaches_loopback(tier: str, workspace: Path, listeners: Listeners) -> None:
    r = run(tier, workspace, listeners.attack_code(), network=True)
    listeners.close()
    assert "tcp" in listeners.hits, r.stdout


# --- processes --------------------------------------------------------------------------


def test_cannot_kill_or_trace_host_processes(tier: str, workspace: Path) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        code = (
            "import ctypes, os, signal\n"
            f"for sig in (signal.SIGKILL, signal.SIGTERM):\n"
            f"    try:\n        os.kill({victim.pid}, sig)\n    except OSError as e:\n        print('kill', e)\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            f"print('ptrace', libc.ptrace(16, {victim.pid}, 0, 0), ctypes.get_errno())\n"
        )
        run(tier, workspace, code)
        time.sleep(0.2)
        assert victim.poll() is None, "the host process was killed from the sandbox"
        status = Path(f"/proc/{victim.pid}/status").read_text()
        assert "TracerPid:\t0" in status
    finally:
        victim.kill()
        victim.wait()


def test_timeout_kills_code_that_ignores_sigterm(tier: str, workspace: Path) -> None:
    name = script_name()
    code = (
        "import signal, subprocess, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)', {name!r}])\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    r = run(tier, workspace, code, timeout=1.5, name=name)
    assert r.timed_out and time.monotonic() - started < 8
    assert wait_until_gone(name) == []


def daemon_code(name: str, daemon_body: str) -> str:
    """Agent code that double-forks, leaves the session and execs ``daemon_body`` (the
    script ``name`` on its command line so the host can find it), then returns."""
    return (
        "import os, sys, time\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', '{daemon_body}', {name!r}])\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)\n"
    )


def test_detached_daemons_do_not_outlive_the_run(tier: str, workspace: Path) -> None:
    name = script_name()
    beat = 'import time\\nfor _ in range(600):\\n    open("beat", "a").write("x")\\n    time.sleep(0.1)'
    code = daemon_code(name, beat) + "print('parent exits')\n"
    r = run(tier, workspace, code, name=name)
    assert r.exit_code == 0
    assert wait_until_gone(name) == []
    size = (workspace / "beat").stat().st_size if (workspace / "beat").exists() else 0
    time.sleep(0.5)
    assert ((workspace / "beat").stat().st_size if (workspace / "beat").exists() else 0) == size


def test_everything_dies_when_swarmchat_is_killed(tier: str, workspace: Path, tmp_path: Path) -> None:
    name = script_name()
    (workspace / name).write_text(
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {name!r}])\n"
        "open('started', 'w').close()\ntime.sleep(60)\n"
    )
    host = tmp_path / "host.py"
    host.write_text(
        "import asyncio, sys\nfrom pathlib import Path\nfrom swarmchat.sandbox.tiers import Sandbox\n"
        f"box = Sandbox({tier!r}, python=sys.executable)\n"
        "async def main():\n    ex = await box.executor()\n"
        f"    await ex.run({name!r}, Path({str(workspace)!r}), 60)\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen([sys.executable, str(host)])
    try:
        deadline = time.monotonic() + 15
        while not (workspace / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(pids_running(name)) >= 2
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_until_gone(name, 5) == []
    finally:
        for pid in pids_running(name):
            os.kill(pid, signal.SIGKILL)


def test_fork_bomb_is_bounded(tier: str, workspace: Path) -> None:
    name = script_name()
    code = (
        "import os, time\nmade = 0\nfor _ in range(5000):\n    try:\n        if os.fork() == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n        made += 1\n"
        "    except OSError:\n        break\nprint('forked', made)\n"
    )
    r = run(tier, workspace, code, timeout=5, name=name)
    forked = int(r.stdout.split()[-1]) if r.stdout.strip() else 0
    assert forked <= 300, forked  # RLIMIT_NPROC: 256 more than the user already runs
    assert wait_until_gone(name) == []


# --- resources --------------------------------------------------------------------------


def test_memory_flood_is_refused(tier: str, workspace: Path) -> None:
    r = run(
        tier,
        workspace,
        "try:\n    x = bytearray(16 << 30)\n    print('allocated')\nexcept MemoryError:\n    print('refused')\n",
    )
    assert r.stdout.strip() == "refused"


def test_disk_flood_is_bounded(tier: str, workspace: Path) -> None:
    code = (
        "import os\nchunk = b'x' * (1 << 20)\nwith open('big.bin', 'wb') as f:\n"
        "    for _ in range(2048):\n        f.write(chunk)\n"
    )
    r = run(tier, workspace, code, timeout=30)
    assert r.exit_code != 0
    assert (workspace / "big.bin").stat().st_size <= 512 << 20


def test_private_tmp_is_size_capped(workspace: Path) -> None:
    code = (  # files under RLIMIT_FSIZE (64 MiB) each, so the tmpfs size is what stops it
        "import os\nchunk = b'x' * (1 << 20)\ntry:\n    for i in range(32):\n"
        "        with open(f'/tmp/fill{i}', 'wb') as f:\n            for _ in range(32):\n                f.write(chunk)\n"
        "except OSError as e:\n    print('stopped', e.errno)\n"
    )
    r = run("bwrap", workspace, code, timeout=30)
    assert "stopped 28" in r.stdout  # ENOSPC at the tmpfs size, not the host's disk


def test_output_flood_is_cut_and_stopped(tier: str, workspace: Path) -> None:
    started = time.monotonic()
    r = run(
        tier,
        workspace,
        "import sys\nfor _ in range(100_000):\n    sys.stdout.write('y' * 1000 + '\\n')\n",
        timeout=30,
    )
    assert r.flooded and time.monotonic() - started < 20
    assert len(r.stdout) < 40_000


def test_no_inherited_file_descriptors(tier: str, workspace: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("FD-SECRET")
    fd = os.open(secret, os.O_RDONLY)
    os.set_inheritable(fd, True)
    try:
        code = (
            "import os\nleaked = []\nfor fd in range(3, 256):\n    try:\n"
            "        leaked.append(os.read(fd, 100))\n    except OSError:\n        pass\n"
            "open('loot.txt', 'w').write(repr(leaked))\n"
        )
        run(tier, workspace, code)
        assert "FD-SECRET" not in (workspace / "loot.txt").read_text()
    finally:
        os.close(fd)


def test_terminal_escapes_are_made_visible(tier: str, workspace: Path) -> None:
    r = run(
        tier,
        workspace,
        "import sys\nsys.stdout.write('\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m hi')\nsys.stderr.write('\\x1bc')\n",
    )
    shown = format_exec_result(r, 10)
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "\\x1b]0;pwned\\x07" in shown


def test_cpu_burner_is_stopped(tier: str, workspace: Path) -> None:
    started = time.monotonic()
    r = run(tier, workspace, "x = 0\nwhile True:\n    x += 1\n", timeout=1.5)
    assert r.timed_out and time.monotonic() - started < 8


def test_open_files_are_limited(tier: str, workspace: Path) -> None:
    code = (
        "import os\nfds = []\ntry:\n    for _ in range(5000):\n"
        "        fds.append(os.open('.', os.O_RDONLY))\nexcept OSError as e:\n    print('stopped', e.errno)\n"
        "print(len(fds))\n"
    )
    r = run(tier, workspace, code)
    assert "stopped 24" in r.stdout  # EMFILE
    assert int(r.stdout.split()[-1]) < 1024


def test_cannot_read_the_swarmchat_database(tier: str, workspace: Path, tmp_path: Path) -> None:
    from swarmchat.store import Store

    db = tmp_path / "home" / "swarmchat.db"
    db.parent.mkdir()
    Store(db).close()
    code = f"try:\n    print(open({str(db)!r}, 'rb').read()[:16])\nexcept OSError as e:\n    print('denied', e.errno)\n"
    r = run(tier, workspace, code)
    assert "SQLite format" not in r.stdout and "denied" in r.stdout


def test_dangerous_syscalls_are_refused(tier: str, workspace: Path) -> None:
    """io_uring, bpf, keyctl and ptrace are refused by the seccomp filter (EPERM)."""
    import platform

    numbers = {
        "x86_64": {"io_uring_setup": 425, "bpf": 321, "keyctl": 250, "ptrace": 101},
        "aarch64": {"io_uring_setup": 425, "bpf": 280, "keyctl": 219, "ptrace": 117},
    }
    table = numbers.get(platform.machine())
    if table is None:
        pytest.skip(f"no syscall table for {platform.machine()}")
    code = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"for name, nr in {table!r}.items():\n"
        "    rc = libc.syscall(nr, 0, 0, 0, 0)\n"
        "    print(name, rc, ctypes.get_errno())\n"
    )
    r = run(tier, workspace, code)
    results = {
        line.split()[0]: (int(line.split()[1]), int(line.split()[2])) for line in r.stdout.splitlines()
    }
    assert set(results) == set(table), r.stderr
    assert all(rc == -1 and err == 1 for rc, err in results.values()), results  # EPERM


def test_daemons_die_without_a_cgroup_too(
    tier: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Non-root users get no pids cgroup: the pid namespace (bwrap) or the jail acting as
    subreaper (Landlock) must still take detached daemons down."""
    from swarmchat.sandbox.cgroups import RunCgroup

    monkeypatch.setattr(RunCgroup, "create", classmethod(lambda cls, *limits: None))
    name = script_name()
    code = daemon_code(name, "import time; time.sleep(60)")
    r = run(tier, workspace, code, name=name)
    assert r.exit_code == 0
    assert wait_until_gone(name) == []
