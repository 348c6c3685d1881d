"""The directory agents may touch, and host-side file access that cannot escape it.

Names from the model are untrusted: absolute paths, ``..``, NUL bytes and symlinks that
point out are refused. Writes walk the path one component at a time with ``O_NOFOLLOW``
opens relative to directory descriptors and finish with an atomic rename, so neither a
planted symlink nor a hard link to an outside file can redirect them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path, PurePosixPath

from swarmchat.errors import ConfigError, ToolError
from swarmchat.pathpolicy import PathPolicy, Verdict

MAX_NAME = 255
MAX_PATH = 1024
MAX_DEPTH = 32
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Workspace:
    """A root directory plus safe read/write helpers for names chosen by agents."""

    def __init__(self, root: Path, policy: PathPolicy | None = None) -> None:
        self.policy = policy or PathPolicy()
        try:
            self.root = root.expanduser().resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigError(
                f"workspace does not exist: {root}", "pass -w with an existing directory"
            ) from None
        if not self.root.is_dir():
            raise ConfigError(f"workspace is not a directory: {root}")
        self.policy = self.policy.with_git_hooks(self.root)

    def check_writable(self) -> None:
        """Refuse to write files or run code when the workspace is ``/`` or the home
        directory (or one of its parents): that would hand agents the user's keys and
        dotfiles."""
        home = Path.home().resolve()
        if self.root == Path("/") or self.root == home or self.root in home.parents:
            where = "the root directory" if self.root == Path("/") else "your home directory"
            raise ToolError(
                f"refusing to write files or run code with the workspace at {self.root} "
                f"({where}): agents would reach your keys and dotfiles. Tell the user to start "
                "swarmchat in a project directory or pass --workspace DIR."
            )

    def verdict(self, name: str) -> Verdict:
        """``ok``, ``hidden`` (credentials) or ``protected`` (run later by the host)."""
        parts = self.parts(name)
        verdict = self.policy.verdict(self.root, parts)
        return "protected" if verdict == "ok" and self._in_environment(parts) else verdict

    def _in_environment(self, parts: list[str]) -> bool:
        """Inside a Python environment of any name (``venv/``, ``env/``, a conda env: its
        ``bin/python`` and ``activate`` run on the host later, whoever starts them) or a bare
        git repository (``HEAD``, ``objects/``, ``refs/``: git obeys its config and hooks)."""
        path = self.root
        for part in parts[:-1]:
            path = path / part
            if os.path.lexists(path / "pyvenv.cfg") or os.path.lexists(path / "conda-meta"):
                return True
            if all(os.path.lexists(path / n) for n in ("HEAD", "objects", "refs")):
                return True
        return False

    def _check(self, name: str, parts: list[str], writing: bool) -> None:
        verdict = self.policy.verdict(self.root, parts)
        if verdict == "ok" and writing and self._in_environment(parts):
            verdict = "protected"
        if verdict == "hidden":
            raise ToolError(
                f"'{name}' holds credentials: agents may not read or write it "
                "(the user can expose names with SWARMCHAT_EXPOSE)"
            )
        if verdict == "protected" and writing:
            raise ToolError(
                f"'{name}' is protected: something on the host runs it later (git, the shell, "
                "an editor, Python or swarmchat itself), so agents may not change it"
            )

    def parts(self, name: str) -> list[str]:
        """Validate an agent-supplied relative path and split it into components."""
        if not name or not name.strip():
            raise ToolError("file name is empty")
        if "\x00" in name or "\n" in name or "\r" in name:
            raise ToolError("file name contains a NUL or newline character")
        if len(name) > MAX_PATH:
            raise ToolError(f"file name is longer than {MAX_PATH} characters")
        if name.startswith(("/", "\\", "~")) or (len(name) > 1 and name[1] == ":"):
            raise ToolError(f"'{name}' is outside the workspace: use a path relative to it")
        parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
        if any(p == ".." for p in parts):
            raise ToolError(f"'{name}' leaves the workspace ('..' is not allowed)")
        if not parts:
            raise ToolError(f"'{name}' is not a file name")
        if len(parts) > MAX_DEPTH:
            raise ToolError(f"'{name[:80]}…' is nested deeper than {MAX_DEPTH} directories")
        if any(len(p) > MAX_NAME for p in parts):
            raise ToolError(f"a component of '{name}' is longer than {MAX_NAME} characters")
        return parts

    def _open_dir(self, parts: list[str], create: bool) -> int:
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in parts:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    raise ToolError(f"directory '{part}' does not exist in the workspace") from None
                except (NotADirectoryError, OSError) as exc:
                    raise ToolError(
                        f"'{part}' is a symlink or not a directory; refusing to follow it ({exc.strerror})"
                    ) from None
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def write(self, name: str, data: bytes, mode: int = 0o644) -> str:
        """Write ``data`` to ``name`` atomically; returns the normalised relative path.
        A file that is replaced keeps its owner and permissions (``mode`` may only add the
        execute bits); special bits are never set."""
        parts = self.parts(name)
        self.check_writable()
        self._check(name, parts, writing=True)
        try:
            dfd = self._open_dir(parts[:-1], create=True)
        except OSError as exc:
            raise ToolError(f"cannot write '{name}': {exc.strerror}") from None
        try:
            self._replace(dfd, name, parts[-1], data, mode)
        except OSError as exc:  # read-only or full disk, no permission: say so, truthfully
            raise ToolError(f"cannot write '{name}': {exc.strerror}") from None
        finally:
            os.close(dfd)
        return "/".join(parts)

    @staticmethod
    def _replace(dfd: int, name: str, last: str, data: bytes, mode: int) -> None:
        try:
            existing: os.stat_result | None = os.stat(last, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise ToolError(f"'{name}' is a directory")
        keep = existing is not None and stat.S_ISREG(existing.st_mode)
        tmp = f".{last[:200]}.{secrets.token_hex(4)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, mode & 0o777, dir_fd=dfd)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if keep and existing is not None:
                    if os.geteuid() == 0 and (existing.st_uid, existing.st_gid) != (0, 0):
                        os.fchown(fd, existing.st_uid, existing.st_gid)
                    perms = existing.st_mode & 0o777
                    os.fchmod(fd, perms | ((perms & 0o444) >> 2 if mode & 0o100 else 0))
            finally:
                os.close(fd)
            # rename replaces the directory entry itself: a symlink or hard link that sat
            # there is unlinked, never written through.
            os.rename(tmp, last, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise

    def read(self, name: str, limit: int = 1 << 20) -> tuple[str, bytes]:
        """Read a regular file inside the workspace without following symlinks."""
        parts = self.parts(name)
        self._check(name, parts, writing=False)
        dfd = self._open_dir(parts[:-1], create=False)
        try:
            try:  # O_NONBLOCK: a FIFO planted in the workspace must not hang swarmchat
                fd = os.open(
                    parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd
                )
            except FileNotFoundError:
                raise ToolError(f"'{name}' does not exist in the workspace") from None
            except OSError as exc:
                raise ToolError(f"cannot open '{name}': {exc.strerror} (symlinks are refused)") from None
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise ToolError(f"'{name}' is not a regular file")
                data = read_upto(fd, limit + 1)
            finally:
                os.close(fd)
        finally:
            os.close(dfd)
        if len(data) > limit:
            raise ToolError(f"'{name}' is larger than {limit} bytes")
        return "/".join(parts), data

    def unchanged(self, name: str, identity: tuple[int, int, int, int]) -> bool:
        """True when ``name`` is still the file seen as (st_dev, st_ino, size, mtime_ns)."""
        try:
            st = os.stat(self.root.joinpath(*self.parts(name)), follow_symlinks=False)
        except (OSError, ToolError):
            return False
        return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == identity

    def remove(self, name: str) -> None:
        """Delete a regular file the agents deleted in their copy (never a directory)."""
        parts = self.parts(name)
        self.check_writable()
        self._check(name, parts, writing=True)
        dfd = self._open_dir(parts[:-1], create=False)
        try:
            if stat.S_ISREG(os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False).st_mode):
                os.unlink(parts[-1], dir_fd=dfd)
        finally:
            os.close(dfd)


def read_upto(fd: int, limit: int) -> bytes:
    """``os.read`` returns at most what one call gives (2 GiB, or less on some files)."""
    chunks, size = [], 0
    while size < limit and (chunk := os.read(fd, min(1 << 20, limit - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
