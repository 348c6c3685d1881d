"""Running ``swarmchat`` the way a shell script would: as the installed command in a
subprocess, or in this process with the same stdin, stdout, stderr, environment and
working directory (fast: no interpreter start-up, openai imported once per test run).

Keep subprocess tests for what an in-process run cannot show: closed pipes (SIGPIPE),
terminals, signals and the exit status the shell sees. Everything else runs in-process.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SWARMCHAT = shutil.which("swarmchat", path=str(Path(sys.executable).parent)) or "swarmchat"


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``swarmchat`` command as a subprocess."""
    return subprocess.run(
        [SWARMCHAT, *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class _Pipe(io.StringIO):
    """A text stream that, like a pipe, is not a terminal."""

    def isatty(self) -> bool:
        return False


def invoke(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = "") -> Result:
    """Run the CLI in this process, with pipes for stdin, stdout and stderr, exactly
    ``env`` as the environment and ``cwd`` as the working directory (all restored after)."""
    from swarmchat.cli import run

    saved_env, saved_cwd, saved_streams = dict(os.environ), os.getcwd(), (sys.stdin, sys.stdout, sys.stderr)
    out, err = _Pipe(), _Pipe()
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        sys.stdin, sys.stdout, sys.stderr = _Pipe(stdin or ""), out, err
        code = run(list(args))
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return Result(code, out.getvalue(), err.getvalue())
