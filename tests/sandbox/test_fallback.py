"""Choosing a tier: the fallback ladder, refusal without a sandbox, explicit opt-outs."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from clitools import invoke, run_cli
from fakeserver import FakeOpenAI, Reply, call, last_tool_output

from swarmchat.errors import ToolError
from swarmchat.sandbox import jail
from swarmchat.sandbox.tiers import Sandbox


@pytest.fixture
def broken_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("SWARMCHAT_BWRAP", str(fake))
    return str(fake)


def choose(mode: str = "auto", allow_unconfined: bool = False) -> tuple[Sandbox, object]:
    box = Sandbox(mode, allow_unconfined, python=sys.executable)  # type: ignore[arg-type]
    return box, asyncio.run(box.executor())


def test_falls_back_to_landlock_when_bwrap_fails(broken_bwrap: str) -> None:
    if jail.landlock_abi() < 1:
        pytest.skip("this kernel has no Landlock")
    box, chosen = choose()
    assert chosen.name == "landlock"
    assert box.statuses[0].name == "bwrap" and not box.statuses[0].ok
    assert "setting up uid map: Permission denied" in box.statuses[0].detail


def test_refuses_when_no_tier_works(
    broken_bwrap: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(jail, "landlock_abi", lambda: 0)
    _box, chosen = choose()
    assert chosen.name == "refused"
    (tmp_path / "t.py").write_text("open('ran', 'w')\n")
    with pytest.raises(ToolError, match=r"no sandbox is available.*--unsafe-local-exec"):
        asyncio.run(chosen.run("t.py", tmp_path, 5))  # type: ignore[attr-defined]
    assert not (tmp_path / "ran").exists()
    _, unconfined = choose(allow_unconfined=True)
    assert unconfined.name == "none"


def test_sandbox_none_is_unconfined_without_probing(broken_bwrap: str) -> None:
    box, chosen = choose("none")
    assert chosen.name == "none" and box.statuses == []


def coder_swarm(workspace: Path, extra: str = "") -> None:
    (workspace / "agents.yaml").write_text(
        f"{extra}agents:\n  coder:\n    description: c\n    tools: [File, ExecutePyFile]\n"
    )


def script_run(fake: FakeOpenAI, body: str = "open('ran.txt', 'w').write('yes')\n") -> None:
    fake.script(
        "coder",
        Reply(tool_calls=[call("File", chain_of_thought="", file_name="t.py", body=body)]),
        Reply(tool_calls=[call("ExecutePyFile", file_name="t.py")]),
        Reply(text=lambda b: "tool said: " + last_tool_output(b)),
    )


def test_cli_refuses_to_run_code_without_a_sandbox(fake, cli_env, workspace, broken_bwrap) -> None:
    coder_swarm(workspace)
    script_run(fake)
    env = {**cli_env, "SWARMCHAT_BWRAP": broken_bwrap}
    r = invoke(["ask", "go", "-y", "--sandbox", "bwrap"], env, workspace)
    assert r.returncode == 0
    assert not (workspace / "ran.txt").exists()
    assert "no sandbox is available" in r.stdout and "swarmchat doctor" in r.stdout


def test_cli_unconfined_opt_in_warns_on_every_run(fake, cli_env, workspace, broken_bwrap) -> None:
    coder_swarm(workspace, "sandbox: none\n")
    script_run(fake)
    r = invoke(["ask", "go", "-y"], cli_env, workspace)
    assert r.returncode == 0 and (workspace / "ran.txt").read_text() == "yes"
    assert r.stderr == "swarmchat: warning: t.py runs UNCONFINED (no sandbox)\n"
    fake.requests.clear()
    script_run(fake)
    env = {**cli_env, "SWARMCHAT_BWRAP": broken_bwrap}
    coder_swarm(workspace, "sandbox: bwrap\n")
    r = invoke(["ask", "go", "-y", "--unsafe-local-exec"], env, workspace)
    assert r.returncode == 0
    assert "UNCONFINED" in r.stderr


def test_cli_code_runs_sandboxed_by_default(fake, cli_env, workspace) -> None:
    coder_swarm(workspace)
    script_run(
        fake, body="import os\nprint(sorted(k for k in os.environ if 'KEY' in k))\nprint(os.listdir('/'))\n"
    )
    r = invoke(["ask", "go", "-y"], cli_env, workspace)
    assert r.returncode == 0 and r.stderr == ""
    assert "exit status 0" in r.stdout and "[]" in r.stdout
    assert "'var'" not in r.stdout and "'work'" not in r.stdout  # an empty root, not the host's


def test_doctor_reports_tiers(cli_env, workspace, broken_bwrap) -> None:
    r = run_cli(["doctor"], {**cli_env, "SWARMCHAT_BWRAP": broken_bwrap}, workspace)
    assert r.returncode == 0
    assert "no   bwrap     probe failed: bwrap: setting up uid map: Permission denied" in r.stdout
    assert "agent code runs in:" in r.stdout or "NOT RUN" in r.stdout


def test_doctor_lists_the_protections_in_force(cli_env, workspace, tmp_path) -> None:
    r = run_cli(["doctor"], cli_env, workspace)
    assert r.returncode == 0, r.stderr
    working = [t for t in ("bwrap", "landlock") if f"ok   {t}" in r.stdout]
    assert working, r.stdout
    for tier in working:
        assert f"{tier} protections:" in r.stdout
    for promise in (
        "no capabilities",
        "/proc/sys read-only",
        "setuid/setgid files refused",
        "credential files",
    ):
        assert promise in r.stdout
    assert f"yes  {workspace.resolve()} may be written by agents" in r.stdout
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    at_home = run_cli(["doctor"], {**cli_env, "HOME": str(home)}, home)
    assert "NO   agents may not write here" in at_home.stdout


def test_doctor_reports_on_the_workspace_given_and_what_stops_runs_there(
    cli_env, workspace, tmp_path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for i in range(30):
        (other / f"f{i}").touch()
    env = {**cli_env, "SWARMCHAT_COPY_MAX_FILES": "20"}
    for args in (["doctor", "-w", str(other)], ["-w", str(other), "doctor"]):
        r = invoke(args, env, workspace)
        assert f"yes  {other} may be written by agents" in r.stdout, r.stdout
        assert "NO   code runs are refused here: more than 20 files" in r.stdout
    home = tmp_path / "home"
    home.mkdir()
    r = invoke(["doctor", "-w", str(home)], {**cli_env, "HOME": str(home)}, workspace)
    assert "Tell the user" not in r.stdout and "pass -w DIR" in r.stdout
    if not os.access("/proc/sys", os.W_OK):  # a container's read-only mount
        r = invoke(["doctor", "-w", "/proc/sys"], cli_env, workspace)
        assert "NO   /proc/sys is read-only" in r.stdout
