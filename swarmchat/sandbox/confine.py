"""How each isolation tier confines a run: the command lines, not the running of them.

Tier 1 wraps the interpreter in bubblewrap (fresh namespaces, an empty root with
read-only system directories, the workspace as the only writable host path). Tier 2
applies Landlock and seccomp from a trampoline (``jail.py``) when user namespaces are not
available. Both start through ``jail.py``, which sets rlimits and dies with swarmchat.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

JAIL = str(Path(__file__).with_name("jail.py"))
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
# Only what programs need from /etc: never shadow, ssh keys or the host's users.
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "alternatives",
    "nsswitch.conf",
    "mime.types",
    "fonts",
    "matplotlibrc",
    "protocols",
    "services",
)
NET_ETC_FILES = ("resolv.conf", "hosts", "gai.conf", "host.conf")


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits (rlimits apply to each process; NPROC to the whole user)."""

    memory_bytes: int = 4 << 30
    processes: int = 256
    open_files: int = 1024
    file_bytes: int = 512 << 20
    tmp_bytes: int = 256 << 20
    cpu_grace_seconds: int = 5

    def rlimits(self, timeout: float, user_processes: int) -> dict[str, int]:
        return {
            "RLIMIT_CPU": int(timeout) + self.cpu_grace_seconds,
            "RLIMIT_AS": self.memory_bytes,
            "RLIMIT_NPROC": user_processes + self.processes,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_FSIZE": self.file_bytes,
            "RLIMIT_CORE": 0,
        }


@dataclass(frozen=True)
class Runtime:
    """The Python that runs agent code, as found outside any sandbox."""

    executable: str
    prefixes: tuple[str, ...]  # sys.prefix and sys.base_prefix, resolved
    extra_paths: tuple[str, ...] = ()  # user site-packages and other sys.path entries

    DISCOVER = (
        "import json, os, sys; r = os.path.realpath; print(json.dumps({'exe': sys.executable, "
        "'prefixes': sorted({r(sys.prefix), r(sys.base_prefix), sys.prefix, sys.base_prefix}), "
        "'path': [p for p in sys.path if p and os.path.isdir(p)]}))"
    )

    @classmethod
    def from_json(cls, text: str) -> Runtime:
        data = json.loads(text)
        prefixes = tuple(data["prefixes"])
        extra = tuple(p for p in data["path"] if not any(os.path.realpath(p).startswith(q) for q in prefixes))
        return cls(data["exe"], prefixes, extra)

    @property
    def read_only(self) -> list[str]:
        return [*self.prefixes, *self.extra_paths]


def user_process_count() -> int:
    """Processes this user runs now: RLIMIT_NPROC counts them all, so limits add to it."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def sandbox_env(workspace: Path, runtime: Runtime, tmp: str = "/tmp") -> dict[str, str]:
    """The whole environment agent code sees: an allowlist, no secrets."""
    env = {
        "PATH": SYSTEM_PATH,
        "HOME": str(workspace),
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "TERM": "dumb",
        "USER": _user(),
        "LOGNAME": _user(),
        "MPLCONFIGDIR": f"{tmp}/matplotlib",
        "XDG_CACHE_HOME": f"{tmp}/cache",
    }
    if runtime.extra_paths:
        env["PYTHONPATH"] = os.pathsep.join(runtime.extra_paths)
    return env


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "sandbox"


@dataclass
class EtcDir:
    """Synthetic ``/etc/passwd`` and ``/etc/group`` naming only the sandbox user."""

    path: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="swarmchat-etc-"))

    def write(self, home: Path) -> None:
        uid, gid, user = os.getuid(), os.getgid(), _user()
        Path(self.path, "passwd").write_text(
            f"{user}:x:{uid}:{gid}:{user}:{home}:/bin/sh\nnobody:x:65534:65534::/:/usr/sbin/nologin\n"
        )
        Path(self.path, "group").write_text(f"{user}:x:{gid}:\nnogroup:x:65534:\n")


_BWRAP_ISOLATION = (  # every namespace, no nested ones, no capabilities, dies with swarmchat
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--assert-userns-disabled",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
)


def bwrap_argv(
    bwrap: str,
    runtime: Runtime,
    workspace: Path,
    *,
    network: bool,
    limits: Limits,
    etc: EtcDir,
    seccomp_fd: int | None,
) -> list[str]:
    """The bubblewrap command that runs ``runtime`` confined to ``workspace``."""
    ws = str(workspace)
    argv = [bwrap, *_BWRAP_ISOLATION, *(["--share-net"] if network else []), *_system_binds(network, etc)]
    argv += ["--dev", "/dev", "--size", str(8 << 20), "--tmpfs", "/dev/shm", "--proc", "/proc"]
    argv += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp", "--bind", ws, ws]
    # Read-only binds come after the workspace, so an interpreter or venv that lives inside
    # the workspace stays read-only.
    for path in runtime.read_only:
        argv += ["--ro-bind-try", path, path]
    argv += ["--remount-ro", "/", "--chdir", ws, "--clearenv"]
    for key, value in sandbox_env(workspace, runtime).items():
        argv += ["--setenv", key, value]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return argv


def _system_binds(network: bool, etc: EtcDir) -> list[str]:
    """Read-only /usr and its top-level links, and only the /etc files programs need."""
    argv = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/" + top)
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), "/" + top]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), "/" + top]
    argv += ["--dir", "/etc"]
    for name in ETC_FILES + (NET_ETC_FILES if network else ()):
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for name in ("passwd", "group"):
        argv += ["--ro-bind", f"{etc.path}/{name}", f"/etc/{name}"]
    return argv


def jail_argv(spec: dict[str, object], command: list[str]) -> list[str]:
    """Start ``command`` through the trampoline with the host's own interpreter."""
    return [sys.executable, "-I", "-S", JAIL, json.dumps(spec), "--", *command]


def landlock_paths(runtime: Runtime, workspace: Path, tmp: str, network: bool) -> dict[str, object]:
    """Read-only system paths (no /proc, no home), read-write workspace and private tmp."""
    ro = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", *runtime.read_only]
    ro += [f"/etc/{n}" for n in ETC_FILES + (NET_ETC_FILES if network else ())]
    ro += ["/dev/urandom", "/dev/random", "/dev/zero"]
    # /dev/shm is shared with the host: POSIX semaphores (multiprocessing locks) need it.
    return {"ro": ro, "rw": [str(workspace), tmp, "/dev/null", "/dev/shm"], "network": network}
