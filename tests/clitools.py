"""Running the installed ``swarmchat`` command the way a shell script would."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SWARMCHAT = shutil.which("swarmchat", path=str(Path(sys.executable).parent)) or "swarmchat"


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``swarmchat`` command the way a shell script would."""
    return subprocess.run(
        [SWARMCHAT, *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )
