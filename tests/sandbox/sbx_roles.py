"""Running agent code the way each kind of user would: as root (the venv's interpreter, which
uid 65534 cannot reach: code stays uid 0 without capabilities), as root with a system
interpreter (code drops to uid 65534), and as the unprivileged uid 65534 itself.

Each scenario runs in a *driver* process (``DRIVER`` below) with that identity: it builds a
Sandbox, runs the scripts the test wrote into the workspace, and prints one JSON line. The
test, as root on the host, judges by host-side oracles (sysctls, other processes, file
modes, cgroups, leftovers), not by what the code says about itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"
ROLES = ("root", "root-as-nobody", "nobody")
CGROUP = Path("/sys/fs/cgroup")

DRIVER = r"""
import asyncio, dataclasses, json, os, sys
from pathlib import Path

req = json.loads(sys.stdin.readline())  # not on the command line: host oracles match those
for procs in req.get("join", []):  # a cgroup delegated to this uid (systemd: Delegate=yes)
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
from swarmchat.sandbox import cgroups
from swarmchat.sandbox.tiers import Sandbox

made = []
create = cgroups.RunCgroup.create.__func__


def recording(cls, *args, **kwargs):
    group = create(cls, *args, **kwargs)
    made.extend(str(d) for d in (group.dirs if group else []))
    return group


cgroups.RunCgroup.create = classmethod(recording)
ws = Path(req["workspace"])


async def one(ex, box, run):
    async with box.slot():
        if run.get("staged"):  # as ExecutePyFile runs code: a private copy, a checked sync-back
            return await staged_run(ex, run)
        r = await ex.run(run["file"], ws, run.get("timeout", 10), run.get("network", False))
    return dataclasses.asdict(r)


POOL = []


async def staged_run(ex, run):
    from swarmchat.pathpolicy import PathPolicy
    from swarmchat.copies import CopyPool, staged
    from swarmchat.workspace import Workspace

    workspace = Workspace(ws, PathPolicy.for_session(None, cwd=ws))
    _, code = workspace.read(run["file"])
    if run["staged"] == "pool":  # one session's runs: the copy is kept and refreshed
        POOL[:] = POOL or [CopyPool()]
        copying = POOL[0].staged(workspace, run["file"], code, ex.run_as)
    else:
        copying = staged(workspace, run["file"], code, ex.run_as)
    with copying as copy:
        r = dataclasses.asdict(await ex.run(run["file"], copy.root, run.get("timeout", 10)))
        r["sync"] = dataclasses.asdict(copy.sync_back())
    return r


async def cancelled(ex, run, twice):
    task = asyncio.create_task(ex.run(run["file"], ws, 30))
    for _ in range(500):
        if (ws / "started").exists():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    if twice:  # a second Ctrl-C while the first one's clean-up is under way
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
    await asyncio.wait([task])
    return "cancelled" if task.cancelled() else repr(task.exception())


async def main():
    if req.get("nofile"):  # a small descriptor limit, as on many desktops
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (req["nofile"], resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    box = Sandbox(req["tier"], python=req["python"])
    ex = await box.executor()
    out = {"executor": ex.name, "run_as": ex.run_as, "uid": os.getuid(),
           "statuses": [s.detail for s in box.statuses], "results": []}
    if ex.confined:
        if req.get("parallel"):
            out["results"] = await asyncio.gather(*(one(ex, box, r) for r in req["runs"]))
        else:
            out["results"] = [await one(ex, box, r) for r in req["runs"]]
        if req.get("cancel"):
            out["cancelled"] = await cancelled(ex, req["cancel"], req.get("twice", False))
        if req.get("protections"):
            out["protections"] = [dataclasses.asdict(p) for p in await box.protections(req["tier"])]
    out["cgroups"] = made
    if POOL:
        POOL[0].close()
    print(json.dumps(out))


asyncio.run(main())
"""


@dataclass(frozen=True)
class Role:
    name: str
    driver_python: str  # swarmchat's own interpreter
    runtime_python: str  # the interpreter for agent code
    driver_uid: int
    code_uid: int  # the host uid agent code is expected to run as


def role_named(name: str) -> Role:
    if name == "root":
        return Role(name, sys.executable, sys.executable, 0, 0)
    if name == "root-as-nobody":
        return Role(name, sys.executable, SYSTEM_PYTHON, 0, NOBODY)
    return Role(name, SYSTEM_PYTHON, SYSTEM_PYTHON, NOBODY, NOBODY)


@dataclass
class Box:
    """One test's world-traversable directory: the workspace (owned by the uid code runs
    as), the driver's private TMPDIR, a copy of swarmchat uid 65534 can import, and (for
    the unprivileged role) a delegated pids and memory cgroup."""

    role: Role
    tier: str
    base: Path
    package: Path
    delegated: list[Path] = field(default_factory=list)

    @property
    def ws(self) -> Path:
        return self.base / "ws"

    @property
    def tmp(self) -> Path:
        return self.base / "tmp"

    def script(self, code: str, name: str | None = None) -> str:
        name = name or f"agent_{uuid.uuid4().hex[:12]}.py"
        (self.ws / name).write_text(code)
        return name

    def start(
        self, runs: list[dict[str, object]], env: dict[str, str] | None = None, **options: object
    ) -> subprocess.Popen[str]:
        """Start the driver on ``runs`` (each: file, timeout, network); ``options`` for
        the driver: parallel, cancel (a run) with twice, protections, join, python."""
        req = {"tier": self.tier, "python": self.role.runtime_python, "workspace": str(self.ws), "runs": runs}
        req.update(options)
        if self.delegated:
            req.setdefault("join", [str(d / "cgroup.procs") for d in self.delegated])
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            **(env or {}),
        }
        ids: dict[str, object] = {}
        if self.role.driver_uid != 0:
            env["PYTHONPATH"] = str(self.package)
            ids = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
        proc = subprocess.Popen(
            [self.role.driver_python, "-c", DRIVER],
            cwd="/",
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **ids,  # type: ignore[arg-type]
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(req) + "\n")
        proc.stdin.close()
        proc.stdin = None  # so that communicate() does not flush it again
        return proc

    def finish(self, proc: subprocess.Popen[str], timeout: float = 90) -> dict[str, object]:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0 and out.strip(), f"driver failed ({proc.returncode}): {err[-2000:]}"
        report: dict[str, object] = json.loads(out.strip().splitlines()[-1])
        if report["executor"] not in ("bwrap", "landlock"):
            pytest.fail(f"tier {self.tier} does not work as {self.role.name}: {report['statuses']}")
        expected = None if self.role.code_uid == self.role.driver_uid else [NOBODY, NOBODY]
        assert report["run_as"] == expected, report
        return report

    def run(
        self, runs: list[dict[str, object]], env: dict[str, str] | None = None, **options: object
    ) -> dict[str, object]:
        return self.finish(self.start(runs, env, **options))

    def wait_for(self, name: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not (self.ws / name).exists():
            assert time.monotonic() < deadline, f"the code never created {name}"
            time.sleep(0.02)


def delegate(uid: int) -> list[Path]:
    """A pids and a memory cgroup owned by ``uid``, as systemd delegates one to a user's
    session: there an unprivileged swarmchat can make its per-run cgroups."""
    made = []
    for controller in ("pids", "memory"):
        hierarchy = CGROUP / controller
        if not (hierarchy / "cgroup.procs").exists():
            continue
        path = hierarchy / f"sbxtest-delegated-{uuid.uuid4().hex[:8]}"
        path.mkdir()
        for entry in (path, path / "cgroup.procs", path / "tasks"):
            os.chown(entry, uid, uid)
        made.append(path)
    return made


def undelegate(paths: list[Path]) -> None:
    for path in paths:
        for _ in range(100):
            with contextlib.suppress(OSError):
                for child in [p for p in path.iterdir() if p.is_dir()]:
                    kill_cgroup(child)
            kill_cgroup(path)
            if not path.exists():
                break
            time.sleep(0.02)


def kill_cgroup(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    with contextlib.suppress(OSError):
        path.rmdir()


def cgroups_named(fragment: str) -> list[Path]:
    """Every cgroup directory (two levels deep) whose name holds ``fragment``."""
    found = []
    for controller in ("pids", "memory"):
        top = CGROUP / controller
        with contextlib.suppress(OSError):
            for entry in top.iterdir():
                if entry.is_dir() and fragment in entry.name:
                    found.append(entry)
                if entry.is_dir() and entry.name.startswith("sbxtest-delegated-"):
                    found += [e for e in entry.iterdir() if e.is_dir() and fragment in e.name]
    return found


def spawn_as(uid: int, argv: list[str]) -> subprocess.Popen[bytes]:
    """A host process of ``uid``: the neighbour that code running as that uid attacks."""
    if uid == 0:
        return subprocess.Popen(argv)
    return subprocess.Popen(argv, user=uid, group=uid, extra_groups=[])
