"""Paths from the workspace back to the host: secrets, files the host runs later, what
code leaves behind, approved-versus-run, hangs and clean-up.

Every run goes the way ``ExecutePyFile`` runs code: on a private copy of the workspace,
with only checked regular files coming back. Oracles look at the host's workspace (hashes,
modes, file types) and at everything that left the sandbox (output and files), never at
what the code says about itself.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sbx_helpers import executor_for, host_tree

from swarmchat.copies import PREFIX, scratch_bases, staged
from swarmchat.errors import ToolError
from swarmchat.pathpolicy import PathPolicy
from swarmchat.sandbox.supervise import ExecResult
from swarmchat.sandbox.tiers import Sandbox
from swarmchat.staging import CopyLimits, SyncReport
from swarmchat.workspace import Workspace

SECRET = "sk-live-" + "7" * 40


def run_staged(
    tier: str,
    root: Path,
    code: str,
    *,
    name: str = "agent.py",
    policy: PathPolicy | None = None,
    limits: CopyLimits | None = None,
    timeout: float = 10,
) -> tuple[ExecResult, SyncReport]:
    """Run ``code`` as ExecutePyFile does: approved bytes, private copy, checked sync-back."""
    ws = Workspace(root, policy)
    executor = executor_for(tier)

    async def go() -> tuple[ExecResult, SyncReport]:
        with staged(ws, name, code.encode(), executor.run_as, limits) as run:
            result = await executor.run(name, run.root, timeout)
            return result, run.sync_back()

    return asyncio.run(go())


def leftovers() -> list[str]:
    return [
        f"{base}/{n}"
        for base in {*scratch_bases(), tempfile.gettempdir(), "/dev/shm"}
        for n in os.listdir(base)
        if n.startswith(f"{PREFIX}{os.getpid()}-")
    ]


# --- 1. secrets in the workspace --------------------------------------------------------------

CREDENTIALS = {
    ".env": f"OPENAI_API_KEY={SECRET}\n",
    ".env.local": f"TOKEN={SECRET}\n",
    ".env~": f"TOKEN={SECRET}\n",
    "#.env#": f"TOKEN={SECRET}\n",
    ".envs/.production/.django": f"TOKEN={SECRET}\n",
    ".streamlit/secrets.toml": f"TOKEN={SECRET}\n",
    "infra/terraform.tfstate": SECRET,
    ".vault-token": SECRET,
    ".netrc": f"machine x login y password {SECRET}\n",
    "deploy.pem": SECRET,
    "keys/id_ed25519": SECRET,
    ".npmrc": f"//registry/:_authToken={SECRET}\n",
    ".pypirc": f"password = {SECRET}\n",
    "cfg/.aws/credentials": f"aws_secret_access_key = {SECRET}\n",
}

READ_EVERYTHING = """
import os
for dirpath, dirnames, filenames in os.walk('.'):
    for name in filenames:
        try:
            print(dirpath, name, open(os.path.join(dirpath, name), errors='replace').read())
        except OSError as exc:
            print('no', name, exc)
for guess in ('.env', '../.env', '/proc/self/cwd/.env', os.environ.get('PWD', '.') + '/.env'):
    try:
        print(open(guess).read())
    except OSError as exc:
        print('no', guess, exc)
open('loot.txt', 'w').write(str(sorted(os.listdir('.'))))
"""


def test_credential_files_are_invisible_to_code(tier: str, workspace: Path) -> None:
    for rel, text in CREDENTIALS.items():
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_text(text)
    (workspace / ".env.example").write_text("OPENAI_API_KEY=your-key-here\n")
    result, report = run_staged(tier, workspace, READ_EVERYTHING)
    assert result.exit_code == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "your-key-here" in result.stdout  # documentation is not a credential
    for rel in report.written:  # nothing that came back carries the secret either
        assert SECRET not in (workspace / rel).read_text()
    assert report.written == ["loot.txt"]


def test_exposed_names_are_an_opt_in(tier: str, workspace: Path) -> None:
    (workspace / "test.pem").write_text("CERT-FOR-TESTS")
    (workspace / ".env").write_text(f"KEY={SECRET}")
    policy = PathPolicy(exposed=("*.pem", ".env"), hidden_paths=frozenset({workspace.resolve() / ".env"}))
    result, _ = run_staged(tier, workspace, READ_EVERYTHING, policy=policy)
    assert "CERT-FOR-TESTS" in result.stdout
    assert SECRET not in result.stdout  # swarmchat's own .env stays hidden whatever the patterns


def test_tools_cannot_read_or_run_credential_files(workspace: Path) -> None:
    (workspace / ".env").write_text(f"KEY={SECRET}")
    ws = Workspace(workspace)
    for name in (".env", "./.env", "sub/../.env"):
        with pytest.raises(ToolError):
            ws.read(name)
    with pytest.raises(ToolError, match="credentials"):
        ws.write(".env", b"OPENAI_BASE_URL=http://evil.example\n")
    assert (workspace / ".env").read_text() == f"KEY={SECRET}"


# --- 2. writes that run later on the host -------------------------------------------------------

RUN_LATER = [
    ".git/hooks/pre-commit",
    ".git/config",
    ".env",
    "agents.yaml",
    ".bashrc",
    ".profile",
    ".zshrc",
    ".envrc",
    "sitecustomize.py",
    "usercustomize.py",
    "evil.pth",
    ".venv/lib/python3.11/site-packages/evil.pth",
    "lib/site-packages/x.pth",
    ".vscode/tasks.json",
    ".pre-commit-config.yaml",
    ".github/workflows/ci.yml",
    ".GIT/hooks/post-checkout",
    "mypkg/__pycache__/mod.cpython-311.pyc",
    "mod.pyc",
    "node_modules/left-pad/index.js",
    "lefthook.yml",
    ".tox/py311/bin/activate",
    "env/bin/activate",
    "env/bin/python3",
    ".githooks/pre-commit",
    "conf/git.inc",
    "conf/more/deep.cfg",
    "tools/hooks/pre-push",
    "util.abi3.so",
    "fixtures/repo.git/config",
    "fixtures/repo.git/hooks/post-checkout",
    ".Rprofile",
    ".cargo/config.toml",
    "tools/agents.yaml",
    "docs/HEAD",
    ".pdbrc",
    "ide.code-workspace",
]


def _project(workspace: Path) -> dict[str, tuple[str, int, str]]:
    (workspace / ".git/hooks").mkdir(parents=True)
    (workspace / ".git/config").write_text("[core]\n\tbare = false\n")
    (workspace / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (workspace / ".venv/lib/python3.11/site-packages").mkdir(parents=True)
    (workspace / ".venv/pyvenv.cfg").write_text("home = /usr/bin\n")
    (workspace / "env/bin").mkdir(parents=True)
    (workspace / "env/pyvenv.cfg").write_text("home = /usr/bin\n")
    (workspace / "env/bin/activate").write_text("# activate\n")
    (workspace / ".githooks").mkdir()
    for part in ("objects", "refs"):  # an existing bare repository (a test fixture, say)
        (workspace / "fixtures/repo.git" / part).mkdir(parents=True)
    (workspace / "fixtures/repo.git/HEAD").write_text("ref: refs/heads/main\n")
    (workspace / ".git/config").write_text(
        '[core]\n\thooksPath = ".githooks" # team hooks\n[include]\n\tpath = ../conf/git.inc\n'
    )
    (workspace / "conf").mkdir()
    (workspace / "conf/git.inc").write_text('[includeIf "gitdir:~/"]\n\tpath = more/deep.cfg\n')
    (workspace / "agents.yaml").write_text("agents: []\n")
    (workspace / ".bashrc").write_text("# mine\n")
    (workspace / ".env").write_text(f"KEY={SECRET}\n")
    (workspace / "old.txt").write_text("delete me\n")
    return host_tree(workspace)


WRITE_RUN_LATER = f"""
import os
for rel in {RUN_LATER!r}:
    os.makedirs(os.path.dirname(rel) or '.', exist_ok=True)
    with open(rel, 'w') as f:
        f.write('#!/bin/sh\\ntouch /tmp/pwned\\n')
    os.chmod(rel, 0o755)
open('result.txt', 'w').write('ok')
os.remove('old.txt')
"""


def test_code_cannot_write_files_the_host_runs_later(tier: str, workspace: Path) -> None:
    before = _project(workspace)
    policy = PathPolicy.for_session(None, cwd=workspace)
    result, report = run_staged(tier, workspace, WRITE_RUN_LATER, policy=policy)
    assert result.exit_code == 0, result.stderr
    after = host_tree(workspace)
    assert sorted(set(after) - set(before)) == ["result.txt"]
    assert sorted(set(before) - set(after)) == ["old.txt"]  # a deletion is a change it may make
    assert all(after[k] == before[k] for k in before if k in after)
    assert {name for name, _ in report.refused} >= {".env", "agents.yaml", ".bashrc", "evil.pth"}


@pytest.mark.parametrize("name", RUN_LATER)
def test_file_tool_cannot_write_files_the_host_runs_later(workspace: Path, name: str) -> None:
    before = _project(workspace)
    ws = Workspace(workspace, PathPolicy.for_session(None, cwd=workspace))
    with pytest.raises(ToolError):
        ws.write(name, b"#!/bin/sh\ntouch /tmp/pwned\n")
    assert host_tree(workspace) == before


def test_swarm_file_given_with_a_path_is_protected(workspace: Path) -> None:
    (workspace / "team.yml").write_text("agents: []\n")
    ws = Workspace(workspace, PathPolicy.for_session("team.yml", cwd=workspace))
    with pytest.raises(ToolError, match="protected"):
        ws.write("team.yml", b"sandbox: none\n")


@pytest.mark.parametrize("where", ["/", "home", "home-parent"])
def test_file_writes_are_refused_in_home_or_root(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home" / "user"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    root = {"/": Path("/"), "home": home, "home-parent": home.parent}[where]
    with pytest.raises(ToolError, match=r"home directory|root directory"):
        Workspace(root).write("notes.txt", b"x")
    assert not (home / "notes.txt").exists()


# --- 3. what code leaves behind ------------------------------------------------------------------

LEAVE_BEHIND = """
import os, shutil, sys
shutil.copy(sys.executable, 'suid-python')
for path, mode in (('suid-python', 0o4755), ('sgid.sh', 0o2755)):
    open(path, 'a').close()
    try:
        os.chmod(path, mode)
    except OSError as exc:
        print('chmod refused', path, exc)
os.symlink('/etc/shadow', 'shadow-link')
os.symlink('/', 'rootdir')
os.mkfifo('pipe')
os.link('suid-python', 'hardlink')
os.makedirs('deep/er', exist_ok=True)
os.symlink('/root', 'deep/er/home')
"""


def test_only_plain_regular_files_come_back(tier: str, workspace: Path) -> None:
    result, report = run_staged(tier, workspace, LEAVE_BEHIND)
    assert result.exit_code == 0, result.stderr
    for rel, (mode, _, _, _) in host_tree(workspace).items():
        assert stat.S_ISREG(mode) or stat.S_ISDIR(mode), rel
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), rel
        assert mode & 0o022 == 0 or stat.S_ISDIR(mode), rel  # not group/world writable
    assert {n for n, _ in report.refused} >= {"shadow-link", "rootdir", "pipe", "deep/er/home"}
    assert not (workspace / "shadow-link").exists() and not (workspace / "pipe").exists()


# --- 6. what runs is what was approved ------------------------------------------------------------


def test_the_approved_bytes_run_even_if_the_file_changes(tier: str, workspace: Path) -> None:
    (workspace / "agent.py").write_text("print('EVIL')\n")  # rewritten after approval
    result, report = run_staged(tier, workspace, "print('APPROVED')\n")
    assert result.stdout.strip() == "APPROVED"
    assert (workspace / "agent.py").read_text() == "print('EVIL')\n"  # and not overwritten either
    assert report.written == []


def test_parallel_runs_cannot_touch_each_others_files(tier: str, workspace: Path) -> None:
    victim = "import time\ntime.sleep(1.0)\nprint(open('victim.py').read().count('VICTIM'))\n# VICTIM\n"
    attacker = (
        "import glob, os, time\nhits = 0\nfor _ in range(60):\n"
        "    for path in glob.glob('/tmp/**/victim.py', recursive=True) + glob.glob('../**/victim.py', recursive=True):\n"
        "        try:\n            open(path, 'w').write('print(\"OWNED\")')\n            hits += 1\n"
        "        except OSError:\n            pass\n    time.sleep(0.01)\nprint('hits', hits)\n"
    )
    (workspace / "victim.py").write_text(victim)
    (workspace / "attacker.py").write_text(attacker)
    executor = executor_for(tier)
    ws = Workspace(workspace)

    async def one(name: str, code: str) -> ExecResult:
        with staged(ws, name, code.encode(), executor.run_as) as run:
            result = await executor.run(name, run.root, 10)
            run.sync_back()
            return result

    async def both() -> list[ExecResult]:
        return await asyncio.gather(one("victim.py", victim), one("attacker.py", attacker))

    victim_result, _ = asyncio.run(both())
    # The attacker may change victim.py in the workspace (its own copy comes back), but
    # the victim's run executes exactly the bytes approved for it.
    assert victim_result.stdout.strip() == "2", victim_result


# --- 7. hangs and exhaustion ------------------------------------------------------------------


def test_a_fifo_in_the_workspace_hangs_nothing(workspace: Path) -> None:
    os.mkfifo(workspace / "trap.py")
    os.mkfifo(workspace / "data.csv")
    ws = Workspace(workspace)
    done = threading.Event()

    def reads() -> None:
        with pytest.raises(ToolError, match="not a regular file"):
            ws.read("trap.py")
        with staged(ws, "agent.py", b"print(1)\n") as run:
            assert not (run.root / "data.csv").exists()
        done.set()

    thread = threading.Thread(target=reads, daemon=True)
    thread.start()
    thread.join(5)
    assert done.is_set(), "reading the workspace blocked on a FIFO"


def test_file_floods_are_capped_and_cleaned_up(tier: str, workspace: Path) -> None:
    code = "import os\nos.makedirs('d', exist_ok=True)\nfor i in range(3000):\n    open(f'd/{i}', 'w').write('x' * 10)\n"
    limits = CopyLimits(out_files=100, out_bytes=1 << 20)
    result, report = run_staged(tier, workspace, code, limits=limits)
    assert result.exit_code == 0, result.stderr
    assert len(list((workspace / "d").iterdir())) == 100
    assert len(report.written) == 100 and len(report.refused) == 2900
    assert leftovers() == []


def test_a_big_workspace_is_refused_with_a_reason(workspace: Path) -> None:
    for i in range(20):
        (workspace / f"f{i}.txt").write_text("x")
    too_many = CopyLimits(in_files=10)
    with (
        pytest.raises(ToolError, match="SWARMCHAT_COPY_MAX_FILES"),
        staged(Workspace(workspace), "a.py", b"", limits=too_many),
    ):
        pass
    assert leftovers() == []


# --- 8. clean-up on every way out -------------------------------------------------------------


def test_private_copies_are_removed_after_timeout_and_cancel(tier: str, workspace: Path) -> None:
    run_staged(tier, workspace, "import time\ntime.sleep(30)\n", timeout=0.5)
    executor = executor_for(tier)
    ws = Workspace(workspace)

    async def cancelled() -> None:
        async def go() -> None:
            with staged(
                ws, "a.py", b"import os, time\nos.chmod('.', 0o500)\ntime.sleep(30)\n", executor.run_as
            ) as r:
                await executor.run("a.py", r.root, 30)

        task = asyncio.create_task(go())
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(cancelled())
    assert time.monotonic() - started < 10
    assert leftovers() == []


def test_the_data_directory_inside_the_workspace_is_hidden(tier: str, workspace: Path) -> None:
    data = workspace / "state"
    data.mkdir()
    (data / "swarmchat.db").write_text(f"every conversation {SECRET}")
    policy = PathPolicy.for_session(None, cwd=workspace, data=data)
    result, _ = run_staged(tier, workspace, READ_EVERYTHING, policy=policy)
    assert result.exit_code == 0 and SECRET not in result.stdout
    with pytest.raises(ToolError):
        Workspace(workspace, policy).write("state/swarmchat.db", b"forged")


def test_edits_made_on_the_host_during_a_run_are_kept(tier: str, workspace: Path) -> None:
    (workspace / "notes.txt").write_text("v1")
    code = (
        "import os, time\nfor _ in range(500):\n    if os.path.exists('/proc/self'):\n        break\n"
        "time.sleep(1.0)\nopen('notes.txt', 'w').write('from the run')\n"
    )

    def user_edits() -> None:
        time.sleep(0.5)
        (workspace / "notes.txt").write_text("the user's edit")

    editor = threading.Thread(target=user_edits)
    editor.start()
    _, report = run_staged(tier, workspace, code)
    editor.join()
    assert (workspace / "notes.txt").read_text() == "the user's edit"
    assert [n for n, _ in report.refused] == ["notes.txt"]


def test_names_that_are_not_utf8_do_not_come_back(tier: str, workspace: Path) -> None:
    code = "open(b'caf\\xe9.txt', 'w').write('x')\nopen('ok.txt', 'w').write('y')\n"
    result, report = run_staged(tier, workspace, code)
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(workspace)) == ["ok.txt"]
    assert report.refused and "UTF-8" in report.refused[0][1]


def test_odd_names_in_the_workspace_do_not_stop_runs(tier: str, workspace: Path) -> None:
    (workspace / "line\nbreak.txt").write_text("odd")
    code = "import os\nprint(sorted(os.listdir('.')))\nopen('new\\nline.txt', 'w').write('x')\n"
    result, report = run_staged(tier, workspace, code)
    assert result.exit_code == 0, result.stderr
    assert "agent.py" in result.stdout and "break" not in result.stdout
    assert ("new\nline.txt", "not a valid file name") in report.refused


def test_nothing_in_the_workspace_runs_before_the_approved_file(tier: str, workspace: Path) -> None:
    # HOME is the workspace: with an interpreter outside a venv (user site enabled), a user
    # site-packages there would run usercustomize.py and .pth files before the approved file.
    python = os.path.join(sys.base_prefix, "bin", "python3")
    site = workspace / f".local/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
    site.mkdir(parents=True)
    (site / "usercustomize.py").write_text("print('IMPLICIT usercustomize')\n")
    (site / "evil.pth").write_text("import sys; print('IMPLICIT pth')\n")
    (workspace / "sitecustomize.py").write_text("print('IMPLICIT sitecustomize')\n")
    box = Sandbox(tier, python=python)  # type: ignore[arg-type]
    executor = asyncio.run(box.executor())
    assert executor.confined, box.statuses

    async def go() -> ExecResult:
        code = b"import site\nprint('approved', site.ENABLE_USER_SITE)\n"
        with staged(Workspace(workspace), "agent.py", code, executor.run_as) as run:
            return await executor.run("agent.py", run.root, 10)

    result = asyncio.run(go())
    assert result.stdout.strip() == "approved False", result


def test_the_real_workspace_is_never_bound_for_imports(workspace: Path, tmp_path: Path) -> None:
    # An editable install's .pth names the project root (which holds .env): the sandbox
    # binds .pth directories read-only for imports, but never one near the workspace.
    from swarmchat.sandbox.runtime import Runtime

    other = tmp_path / "lib"
    other.mkdir()
    found = Runtime(
        "/usr/bin/python3",
        ("/usr",),
        (str(workspace), str(workspace / "src"), str(tmp_path), str(other)),
        (str(workspace),),
    )
    kept = found.away_from((workspace,))
    assert kept.extra_paths == (str(other),) and kept.pythonpath == ()
    with pytest.raises(ToolError, match="SWARMCHAT_PYTHON"):
        Runtime(str(tmp_path / "venv/bin/python"), (str(tmp_path),)).away_from((workspace,))


@pytest.mark.parametrize("name", ["-mhelper", "-c print('from-the-name')"])
def test_a_script_name_is_never_read_as_an_option(tier: str, workspace: Path, name: str) -> None:
    (workspace / "helper.py").write_text("print('UNAPPROVED helper')\n")
    result, _ = run_staged(tier, workspace, "print('approved')\n", name=name)
    assert result.stdout.strip() == "approved", result


def test_source_with_an_appended_zip_is_refused(workspace: Path) -> None:
    import io
    import zipfile

    from swarmchat.tools.execute import python_as_read

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("__main__.py", "print('HIDDEN')\n")
    code = b"print('benign')\n" + b"\n" * 300 + archive.getvalue()
    with pytest.raises(ToolError, match="NUL"):
        python_as_read("t.py", code)


@pytest.mark.parametrize("variable", ["TMPDIR", "SWARMCHAT_RUN_DIR", "XDG_RUNTIME_DIR"])
def test_copies_never_live_where_landlock_code_can_reach(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "/dev/shm")
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    for owner in (None, (65534, 65534)):
        assert not any(b.startswith("/dev/shm") for b in scratch_bases(owner))


def test_a_run_cut_short_by_the_entry_limit_deletes_nothing(tier: str, workspace: Path) -> None:
    (workspace / "zzz_keep.txt").write_text("mine")
    code = "import os\nos.makedirs('aaa', exist_ok=True)\nfor i in range(300):\n    open(f'aaa/{i}', 'w').close()\n"
    _, report = run_staged(tier, workspace, code, limits=CopyLimits(out_entries=100))
    assert (workspace / "zzz_keep.txt").read_text() == "mine"  # not looked at is not deleted
    assert report.deleted == [] and any("too many entries" in why for _, why in report.refused)


def test_deletions_that_do_not_happen_are_reported(tier: str, workspace: Path) -> None:
    (workspace / "notes.txt").write_text("v1")
    (workspace / "agents.yaml").write_text("agents: []\n")
    code = "import os, time\nos.remove('agents.yaml')\ntime.sleep(1.0)\nos.remove('notes.txt')\n"

    def user_edits() -> None:
        time.sleep(0.5)
        (workspace / "notes.txt").write_text("the user's edit")

    editor = threading.Thread(target=user_edits)
    editor.start()
    result, report = run_staged(tier, workspace, code)
    editor.join()
    assert result.exit_code == 0, result.stderr
    assert (workspace / "notes.txt").read_text() == "the user's edit" and (workspace / "agents.yaml").exists()
    why = dict(report.refused)
    assert "changed in the workspace since" in why["notes.txt"] and "protected" in why["agents.yaml"], why
    assert report.deleted == []
