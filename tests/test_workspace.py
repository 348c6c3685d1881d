"""Host-side file access: agent-chosen names never leave the workspace."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

import pytest

from swarmchat.errors import ConfigError, ToolError
from swarmchat.workspace import Workspace


@pytest.fixture
def ws(workspace: Path) -> Workspace:
    return Workspace(workspace)


@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "../outside.py",
        "a/../../outside.py",
        "~/x.py",
        "",
        "  ",
        "a\x00b",
        "a\nb.py",
        "x" * 300,
        "/".join(["d"] * 600),
        "C:\\x.py",
        ".",
    ],
)
def test_refused_names(ws: Workspace, name: str) -> None:
    with pytest.raises(ToolError):
        ws.write(name, b"x")


def test_writes_nested_and_reads_back(ws: Workspace) -> None:
    assert ws.write("pkg/mod.py", b"X = 1\n") == "pkg/mod.py"
    assert ws.read("./pkg/mod.py") == ("pkg/mod.py", b"X = 1\n")


def test_symlinked_directory_pointing_out_is_refused(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.root / "link").symlink_to(outside)
    with pytest.raises(ToolError, match="symlink"):
        ws.write("link/evil.py", b"x")
    assert not (outside / "evil.py").exists()
    with pytest.raises(ToolError):
        ws.read("link/evil.py")


def test_symlinked_file_is_replaced_not_followed(ws: Workspace, tmp_path: Path) -> None:
    target = tmp_path / "secret.txt"
    target.write_text("keep")
    (ws.root / "task.py").symlink_to(target)
    with pytest.raises(ToolError):
        ws.read("task.py")
    ws.write("task.py", b"print(1)\n")
    assert target.read_text() == "keep"
    assert not (ws.root / "task.py").is_symlink()


def test_hardlink_to_outside_file_is_not_written_through(ws: Workspace, tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("keep")
    os.link(target, ws.root / "h.txt")
    ws.write("h.txt", b"new")
    assert target.read_text() == "keep"
    assert (ws.root / "h.txt").read_bytes() == b"new"


def test_missing_workspace_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Workspace(tmp_path / "nope")


def test_directory_swapped_for_symlink_during_writes(ws: Workspace, tmp_path: Path) -> None:
    """Agent code racing the host: ``d`` flips between a directory and a symlink out."""
    import threading

    outside = tmp_path / "outside"
    outside.mkdir()
    d = ws.root / "d"
    stop = threading.Event()

    def flipper() -> None:
        while not stop.is_set():
            try:
                if d.is_symlink():
                    d.unlink()
                    d.mkdir()
                else:
                    for child in d.iterdir():
                        child.unlink()
                    d.rmdir()
                    d.symlink_to(outside)
            except OSError:
                pass

    thread = threading.Thread(target=flipper)
    thread.start()
    try:
        for i in range(2000):
            with contextlib.suppress(ToolError, OSError):
                ws.write(f"d/f{i % 5}.txt", b"data")
    finally:
        stop.set()
        thread.join()
    assert list(outside.iterdir()) == []


def test_a_replaced_file_keeps_its_owner_and_permissions(workspace: Path) -> None:
    script = workspace / "run.sh"
    script.write_text("echo old\n")
    script.chmod(0o750)
    if os.geteuid() == 0:
        os.chown(script, 12345, 23456)
    Workspace(workspace).write("run.sh", b"echo new\n")
    st = script.stat()
    assert script.read_text() == "echo new\n" and stat.S_IMODE(st.st_mode) == 0o750
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (12345, 23456)
    (workspace / "tool.py").write_text("x = 1\n")
    (workspace / "tool.py").chmod(0o640)
    Workspace(workspace).write("tool.py", b"x = 2\n", mode=0o755)  # the run made it executable
    assert stat.S_IMODE((workspace / "tool.py").stat().st_mode) == 0o750


def test_write_errors_are_reported_truthfully(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "rename", read_only)
    with pytest.raises(ToolError, match=r"cannot write 'notes\.txt': Read-only file system"):
        Workspace(workspace).write("notes.txt", b"x")
    assert os.listdir(workspace) == []  # no temporary file left behind
