"""``swarmchat doctor``: what protects the user on this machine, tier by tier.

Kept out of the CLI module so the report is plain lines a test can read, and so the
sandbox is imported only when someone asks.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from swarmchat.pathpolicy import is_skipped_dir
from swarmchat.sandbox import TIERS
from swarmchat.sandbox.diskguard import WriteLimits
from swarmchat.sandbox.tiers import Sandbox
from swarmchat.staging import CopyLimits
from swarmchat.workspace import Workspace


async def report(box: Sandbox, workspace: Path) -> list[str]:
    """Where agent code runs (the verdict first), the interpreter, each tier with every
    protection it gives here, and the workspace protections (every tier)."""
    runtime = await box.runtime()
    chosen = await box.executor()
    if chosen.refusal:
        verdict = "agent code: NOT RUN (no sandbox works; --unsafe-local-exec runs it unconfined)"
    elif chosen.confined:
        verdict = f"agent code runs in: {chosen.name}"
    else:
        verdict = "agent code runs: UNCONFINED (sandbox: none or --unsafe-local-exec)"
    lines = [verdict, f"python for agent code: {runtime.executable} (SWARMCHAT_PYTHON changes it)"]
    for status in await box.report():
        lines.append(f"  {'ok  ' if status.ok else 'no  '} {status.name:9} {status.detail}")
    for tier in TIERS:
        protections = await box.protections(tier)
        if not protections[0].in_force:
            continue
        lines.append(f"{tier} protections:")
        for p in protections[1:]:
            lines.append(f"  {'yes ' if p.in_force else 'NO  '} {p.name}: {p.detail}")
    return lines + _workspace_lines(workspace)


def _workspace_lines(root: Path) -> list[str]:
    writes = WriteLimits.from_env()
    lines = [
        "workspace protections (every tier):",
        "  yes  private copy per run: only regular files come back, no links or setuid bits",
        "  yes  credential files hidden (.env*, *.pem, id_*, .netrc, .aws/...; SWARMCHAT_EXPOSE opts in)",
        "  yes  read-only for agents: .git, .envrc, shell start-up files, .venv, *.pth, the swarm file",
        "  yes  the code that runs is the code you approved (byte for byte)",
        f"  yes  disk writes per run: at most {writes.bytes >> 20} MiB and {writes.files} files "
        "(SWARMCHAT_RUN_MAX_MB, SWARMCHAT_RUN_MAX_FILES), then the run is stopped",
    ]
    try:
        Workspace(root).check_writable()
    except Exception as exc:  # a ToolError, or a workspace that does not exist
        why = str(exc).split(": agents would", 1)[0]
        return [
            *lines,
            f"  NO   agents may not write here: {why}; start swarmchat in a project directory or pass -w DIR",
        ]
    try:
        read_only = not os.access(root, os.W_OK) or bool(os.statvfs(root).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = True
    if read_only:
        lines.append(
            f"  NO   {root} is read-only: files agents write and results of code runs cannot be saved"
        )
    else:
        lines.append(f"  yes  {root} may be written by agents")
    too_big = _too_big_to_copy(root, CopyLimits.from_env())
    if too_big:
        lines.append(f"  NO   code runs are refused here: {too_big}")
    return lines


def _too_big_to_copy(root: Path, limits: CopyLimits) -> str:
    """Why a run's copy of ``root`` would be refused (counted the way the copy counts,
    roughly: environments, .git and caches left out), or ``""``."""
    entries = size = 0
    stack = [str(root)]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as found:
            for entry in found:
                entries += 1
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        venv = os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))
                        if not is_skipped_dir(entry.name, venv):
                            stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        size += entry.stat(follow_symlinks=False).st_size
                if entries > limits.in_files:
                    return f"more than {limits.in_files} files and directories (SWARMCHAT_COPY_MAX_FILES)"
                if size > limits.in_bytes:
                    return f"more than {limits.in_bytes >> 20} MiB (SWARMCHAT_COPY_MAX_MB)"
    return ""
