"""A session keeps its workspace copy between runs: a reused copy must be exactly a fresh one.

The oracle is a second run's view of its whole copy (names, kinds, modes, contents, link
targets), compared with the same view from a fresh copy of the same workspace; and the
host-side state of the parked copy between runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from sbx_helpers import executor_for
from sbx_roles import Box

from swarmchat.copies import CopyPool, staged
from swarmchat.pathpolicy import PathPolicy
from swarmchat.sandbox.tiers import Executor, Sandbox
from swarmchat.staging import SyncReport
from swarmchat.workspace import Workspace

VIEW = """\
import fcntl, hashlib, json, os, stat
def flags(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        return int.from_bytes(fcntl.ioctl(fd, 0x80086601, bytes(8))[:4], 'little')
    except OSError:
        return None
    finally:
        os.close(fd)
seen = {}
for top, dirs, files in os.walk('.'):
    for name in dirs + files:
        path = os.path.join(top, name)
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(open(path, 'rb').read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            what = 'link ' + os.readlink(path)
        else:
            what = ''
        xattrs = sorted(os.listxattr(path, follow_symlinks=False)) if not stat.S_ISLNK(st.st_mode) else []
        seen[path] = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_nlink if not stat.S_ISDIR(st.st_mode) else 0, what, xattrs, flags(path)]
print(json.dumps(seen, sort_keys=True))
"""

# What a run can do to its copy that the sync-back does not carry home, in groups (a
# change to a directory makes the refresh rebuild it, which would hide the rest): the
# next run must see none of it.
PRELUDE = """\
import os
def attempt(f):
    try:
        f()
    except OSError as exc:
        print('blocked', exc)
def quiet_edit():  # same size, mtime set back: the sync-back does not see it
    st = os.stat('same.txt')
    with open('same.txt', 'r+') as f:
        f.write('EVIL')
    os.utime('same.txt', ns=(st.st_atime_ns, st.st_mtime_ns))
def set_flags(path):  # chattr +dA (nodump, noatime): an owner may
    import fcntl
    fd = os.open(path, os.O_RDONLY)
    now = int.from_bytes(fcntl.ioctl(fd, 0x80086601, bytes(8))[:4], 'little')
    fcntl.ioctl(fd, 0x40086602, (now | 0xC0).to_bytes(8, 'little'))
    os.close(fd)
"""
TAMPERING = {
    "files": [
        "quiet_edit()",
        "os.chmod('keep.txt', 0o777)",
        "os.makedirs('.git/hooks', exist_ok=True)",
        "open('.git/hooks/pre-commit', 'w').write('evil')",
        "open('.env', 'w').write('OPENAI_BASE_URL=http://evil')",
        "open('agents.yaml', 'w').write('sandbox: none')",
        "os.symlink('/etc', 'etc-link')",
        "os.mkfifo('fifo')",
        "os.link('keep2.txt', 'hard.txt')",
        "os.setxattr('sub/deep.txt', 'user.mark', b'1')",
    ],
    "dir-mode": ["os.chmod('sub', 0o777)"],
    "dir-xattr": ["os.setxattr('sub', 'user.mark', b'1')"],
    "dir-swap": ["os.rename('pkg', 'pkg-moved')", "os.symlink('/tmp', 'pkg')"],
    "dir-locked": ["os.chmod('locked', 0)"],
    "dir-flags": ["set_flags('sub')"],
    "root": ["os.chmod('.', 0o500)"],
}


def project(root: Path) -> Path:
    ws = root / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "sub").mkdir()
    (ws / "locked").mkdir()
    (ws / "locked" / "in.txt").write_text("in")
    (ws / "pkg" / "m.py").write_text("x = 1\n")
    (ws / "sub" / "deep.txt").write_text("deep")
    for name in ("same.txt", "keep.txt", "keep2.txt"):
        (ws / name).write_text(f"{name} from the user")
    (ws / "agents.yaml").write_text("agents: []\n")
    (ws / ".env").write_text("OPENAI_API_KEY=sk-host\n")
    return ws


def view(executor: Executor, pool: CopyPool, ws: Workspace) -> tuple[dict[str, object], SyncReport]:
    async def go() -> tuple[str, SyncReport]:
        with pool.staged(ws, "view.py", VIEW.encode(), executor.run_as) as run:
            result = await executor.run("view.py", run.root, 20)
            assert result.exit_code == 0, result.stderr
            return result.stdout, run.sync_back()

    out, report = asyncio.run(go())
    return json.loads(out), report


def tamper(executor: Executor, pool: CopyPool, ws: Workspace, actions: list[str]) -> str:
    code = PRELUDE + "".join(f"attempt(lambda: {action})\n" for action in actions) + "print('done')\n"

    async def go() -> str:
        with pool.staged(ws, "tamper.py", code.encode(), executor.run_as) as run:
            result = await executor.run("tamper.py", run.root, 20)
            assert "done" in result.stdout, result
            run.sync_back()
            return result.stdout

    return asyncio.run(go())


def executors(tier: str) -> list[Executor]:
    """The tier as the test runs it, and, as root, the path where code drops to nobody."""
    found = [executor_for(tier)]
    if os.getuid() == 0 and os.access("/usr/bin/python3", os.X_OK):
        chosen = asyncio.run(Sandbox(tier, python="/usr/bin/python3").executor())  # type: ignore[arg-type]
        if chosen.confined and chosen.run_as:
            found.append(chosen)
    return found


@pytest.mark.parametrize("group", list(TAMPERING))
def test_a_reused_copy_is_exactly_a_fresh_copy(tier: str, tmp_path: Path, group: str) -> None:
    for i, executor in enumerate(executors(tier)):
        root = project(tmp_path / str(i))
        if executor.run_as:
            os.chmod(root.parent, 0o755)
        ws = Workspace(root)
        pool = CopyPool()
        try:
            view(executor, pool, ws)  # the session's first run makes the copy
            output = tamper(executor, pool, ws, TAMPERING[group])
            refused_here = group == "files" or (group == "dir-flags" and tier == "landlock")  # seccomp
            assert "blocked" not in output or refused_here, output
            kept = pool._idle
            assert kept is not None, "a run that ended normally keeps its copy"
            parked = os.stat(kept.base)
            assert (parked.st_uid, stat.S_IMODE(parked.st_mode)) == (os.getuid(), 0o700)
            # The user edits a file between runs without changing its size or mtime.
            same = root / "keep2.txt"
            before = same.stat()
            same.write_text("keep2.txt FROM THE USER")  # same length
            os.utime(same, ns=(before.st_atime_ns, before.st_mtime_ns))
            (root / "new.txt").write_text("new")
            reused, report = view(executor, pool, ws)
            assert pool._idle is kept, "the copy was not reused"
            fresh, _ = view(executor, CopyPool(keep=False), ws)
            assert reused == fresh
            assert report.written == [] and report.deleted == []
        finally:
            pool.close()
        assert not kept.base.exists()


def test_the_approved_bytes_are_not_kept_for_later_runs(tier: str, tmp_path: Path) -> None:
    executor = executor_for(tier)
    root = tmp_path / "ws"
    root.mkdir()
    (root / "tool.py").write_text("print('on disk')\n")
    ws = Workspace(root)
    pool = CopyPool()

    async def go(name: str, code: bytes) -> str:
        with pool.staged(ws, name, code, executor.run_as) as run:
            result = await executor.run(name, run.root, 20)
            run.sync_back()
            return result.stdout.strip()

    try:
        assert asyncio.run(go("tool.py", b"print('approved')\n")) == "approved"
        assert asyncio.run(go("main.py", b"import tool\n")) == "on disk"
    finally:
        pool.close()


def test_a_run_that_did_not_end_normally_drops_its_copy(tier: str, tmp_path: Path) -> None:
    executor = executor_for(tier)
    root = tmp_path / "ws"
    root.mkdir()
    ws = Workspace(root)
    pool = CopyPool()

    async def interrupted() -> None:
        with pool.staged(ws, "a.py", b"import time\ntime.sleep(30)\n", executor.run_as) as run:
            await asyncio.wait_for(executor.run("a.py", run.root, 30), 0.5)

    with pytest.raises(TimeoutError):
        asyncio.run(interrupted())
    assert pool._idle is None

    async def no_sync() -> Path:
        with pool.staged(ws, "a.py", b"print(1)\n", executor.run_as) as run:
            await executor.run("a.py", run.root, 30)
            return run.base

    base = asyncio.run(no_sync())
    assert pool._idle is None and not base.exists()
    pool.close()


def test_copies_of_other_workspaces_and_owners_are_not_mixed(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for d in (first, second):
        d.mkdir()
        (d / "which.txt").write_text(d.name)
    pool = CopyPool()
    bases = []
    try:
        for d in (first, second, second, first):
            ws = Workspace(d)  # a new object for the same directory and rules: the same copy
            with pool.staged(ws, "x.py", b"") as run:
                assert (run.root / "which.txt").read_text() == d.name
                run.sync_back()
                bases.append(run.base)
        with pool.staged(Workspace(first, PathPolicy(exposed=(".env",))), "x.py", b"") as run:
            bases.append(run.base)
    finally:
        pool.close()
    assert bases[1] == bases[2] and len(set(bases)) == 4
    with staged(Workspace(first), "x.py", b"") as run:
        base = run.base
        run.sync_back()
    assert not base.exists(), "a one-off copy is never kept"


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_a_big_copy_is_not_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import swarmchat.copies

    monkeypatch.setattr(swarmchat.copies, "KEEP_BYTES", 10)
    (tmp_path / "big.bin").write_bytes(b"x" * 100)
    pool = CopyPool()
    with pool.staged(Workspace(tmp_path), "x.py", b"") as run:
        run.sync_back()
    assert pool._idle is None and not run.base.exists()


def test_a_kept_copy_cleaned_away_between_runs_is_made_again(tmp_path: Path) -> None:
    import shutil

    (tmp_path / "data.txt").write_text("data")
    ws = Workspace(tmp_path)
    pool = CopyPool()
    try:
        for wipe in ("ws", "base", None):
            with pool.staged(ws, "x.py", b"") as run:
                assert (run.root / "data.txt").read_text() == "data"
                run.sync_back()
            kept = pool._idle
            assert kept is not None
            if wipe:  # what systemd-tmpfiles does to an old directory in /tmp
                shutil.rmtree(kept.root if wipe == "ws" else kept.base)
    finally:
        pool.close()


LOCK_AWAY = """
import os
os.makedirs('json', exist_ok=True)
open('json/__init__.py', 'w').write("print('LEFT BY AN EARLIER RUN')\\n")
fd = os.open('.', os.O_RDONLY)
for _ in range(300):  # deeper than the descriptors swarmchat may hold
    os.mkdir('d', dir_fd=fd)
    sub = os.open('d', os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = sub
open('payload.py', 'w', opener=lambda p, f: os.open(p, f, dir_fd=fd)).write('x')
os.close(fd)
os.chmod('d', 0o300)
os.chmod('json', 0o300)
"""
LOOK = "import json, os\nprint('d exists' if os.path.lexists('d') else 'clean')\n"


def test_what_a_run_locks_away_is_gone_for_the_next_run(box: Box) -> None:
    # As an ordinary user (here uid 65534), swarmchat cannot open a directory the code
    # made unreadable; it must still clear it, or the next run imports what it holds. (As
    # root the sync-back reads it, and json/ comes home: then a fresh copy has it too.)
    first, second = box.script(LOCK_AWAY), box.script(LOOK)
    for name in (first, second):
        os.chown(box.ws / name, box.role.code_uid, box.role.code_uid)
    runs = [
        {"file": first, "staged": "pool"},
        {"file": second, "staged": "pool"},
        {"file": second, "staged": True},
    ]
    report = box.run(runs, nofile=200)
    locked, reused, fresh = report["results"]  # type: ignore[misc]
    assert locked["exit_code"] == 0, locked
    assert reused["stdout"] == fresh["stdout"] and "d exists" not in reused["stdout"], (reused, fresh)
    assert os.listdir(box.tmp) == [], "copies left behind"
