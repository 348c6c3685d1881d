"""Finding the interpreter must not run anything the workspace could have planted in it.

The discovery runs outside any sandbox. A venv inside the workspace (or one agent code
wrote to earlier) can carry a ``.pth`` file, ``sitecustomize.py`` or ``usercustomize.py``:
each is Python that ``site`` executes at start-up, even in isolated mode. The host oracle is
a marker directory only the host side can write: anything executed outside the sandbox
could create a file there, nothing inside can. Packages of that venv must still import
inside the sandbox.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from sbx_roles import Box

from swarmchat.sandbox.tiers import Sandbox

PLANT = "open({marker!r} + '/{name}-' + str(__import__('os').getpid()), 'w').close()\n"


def hostile_venv(base: Path, markers: Path, private: bool) -> Path:
    """A venv of the system interpreter whose site-packages runs code at start-up;
    ``private``: in a directory uid 65534 cannot enter (code then stays uid 0)."""
    base.mkdir(mode=0o700 if private else 0o755)
    venv = base / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "evil.pth").write_text("import os; " + PLANT.format(marker=str(markers), name="pth"))
    (site / "sitecustomize.py").write_text(PLANT.format(marker=str(markers), name="sitecustomize"))
    (site / "usercustomize.py").write_text(PLANT.format(marker=str(markers), name="usercustomize"))
    (site / "venvpkg_probe").mkdir()
    (site / "venvpkg_probe" / "__init__.py").write_text("VALUE = 'from the venv'\n")
    return venv


def test_discovery_runs_nothing_from_site_packages(box: Box) -> None:
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs /usr/bin/python3 to build a venv every role can run")
    markers = box.base / "markers"
    markers.mkdir(mode=0o700)
    os.chown(markers, box.role.driver_uid, box.role.driver_uid)  # the host side may write here
    venv = hostile_venv(box.base / "env", markers, private=box.role.code_uid == 0)
    code = "import venvpkg_probe, sys\nprint(venvpkg_probe.VALUE, sys.prefix)\n"
    report = box.run([{"file": box.script(code)}], python=str(venv / "bin" / "python"))
    result = report["results"][0]  # type: ignore[index]
    assert result["stdout"].startswith("from the venv " + str(venv)), result
    assert sorted(os.listdir(markers)) == []  # nothing ran outside the sandbox


def test_a_planted_python_on_a_relative_path_is_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python3`` is looked up on PATH without its relative entries: an interpreter the
    workspace planted in the current directory is never the one discovered."""
    planted = tmp_path / "python3"
    marker = tmp_path / "planted-ran"
    planted.write_text(f'#!/bin/sh\ntouch {marker}\nexec /usr/bin/python3 "$@"\n')
    planted.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", os.pathsep.join([".", "", "/usr/bin", "/bin"]))
    found = asyncio.run(Sandbox("landlock", python="python3").runtime())
    assert not marker.exists()
    assert found.executable.startswith("/usr/bin/python3")
