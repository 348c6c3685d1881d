"""The Python that runs agent code: what it needs bound into a sandbox, found safely.

Discovery runs the interpreter outside any sandbox, so it must not run anything the
workspace (or an agent's earlier run) could have planted: ``-I`` ignores ``PYTHON*``
variables, the current directory and the user's site-packages, ``-S`` skips ``site``
(``.pth`` files are code: a venv's are executed even in isolated mode), and it starts in
``/``. Without ``site``, site-packages are read from ``sysconfig``, and the directories that
``.pth`` files name are read here as text, never executed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from swarmchat.errors import ToolError

ISOLATED = ("-I", "-S")
DISCOVER = (  # without site, a venv is not applied yet: find it the way site.venv() does
    "import json, os, sys, sysconfig\n"
    "r = os.path.realpath\n"
    "exe_dir = os.path.dirname(sys.executable)\n"
    "venv = os.path.dirname(exe_dir) if any(os.path.isfile(os.path.join(d, 'pyvenv.cfg'))\n"
    "    for d in (exe_dir, os.path.dirname(exe_dir))) else None\n"
    "if venv:\n"
    "    scheme = 'venv' if 'venv' in sysconfig.get_scheme_names() else 'posix_prefix'\n"
    "    paths = sysconfig.get_paths(scheme, vars={'base': venv, 'platbase': venv})\n"
    "else:\n"
    "    paths = sysconfig.get_paths()\n"
    "prefix = venv or sys.prefix\n"
    "user = None\n"
    "if not venv:\n"
    "    import site  # with -S, importing site runs nothing: no .pth file is read\n"
    "    user = site.getusersitepackages()\n"
    "print(json.dumps({'exe': sys.executable,\n"
    "    'prefixes': sorted({r(prefix), r(sys.base_prefix), prefix, sys.base_prefix}),\n"
    "    'site': sorted({paths['purelib'], paths['platlib']}), 'user': user}))\n"
)
# Run as the uid code would run as: which of these paths can it read? (exit 0, one per line)
REACH = (
    "import os, sys\n"
    "for p in sys.argv[1:]:\n"
    "    if not os.access(p, os.R_OK | (os.X_OK if os.path.isdir(p) else 0)):\n"
    "        print(p)\n"
)


@dataclass(frozen=True)
class Runtime:
    """The Python that runs agent code, as found outside any sandbox."""

    executable: str
    prefixes: tuple[str, ...]  # sys.prefix and sys.base_prefix, as given and resolved
    extra_paths: tuple[str, ...] = ()  # other directories imports need (bound read-only)
    pythonpath: tuple[str, ...] = ()  # of those, what the sandboxed interpreter will not find

    @classmethod
    def from_json(cls, text: str) -> Runtime:
        data = json.loads(text)
        prefixes = tuple(data["prefixes"])
        site = [p for p in data["site"] if os.path.isdir(p)]
        user = [data["user"]] if data.get("user") and os.path.isdir(data["user"]) else []
        extra: list[str] = []
        for path in [*site, *user, *_pth_dirs([*site, *user])]:
            if not _inside(path, prefixes) and _harmless(path) and path not in extra:
                extra.append(path)
        # Inside, HOME is the workspace: the host user's site-packages must be named.
        return cls(data["exe"], prefixes, tuple(extra), tuple(p for p in user if p in extra))

    @property
    def read_only(self) -> list[str]:
        return [*self.prefixes, *self.extra_paths]

    @property
    def required(self) -> list[str]:
        """What the interpreter cannot start without."""
        return [self.executable, *self.prefixes]

    def without(self, unreachable: set[str]) -> Runtime:
        """This runtime minus optional paths another uid cannot read."""
        keep = tuple(p for p in self.extra_paths if p not in unreachable)
        return replace(self, extra_paths=keep, pythonpath=tuple(p for p in self.pythonpath if p in keep))

    def away_from(self, private: tuple[Path, ...]) -> Runtime:
        """This runtime without any path that is, holds or lies inside a directory agent
        code must not see (the user's workspace: an editable install's ``.pth`` names the
        project root, ``.env`` included). An interpreter whose prefix holds one is refused."""
        dirs = [os.path.realpath(d) for d in private]

        def overlaps(path: str, holds_only: bool = False) -> bool:
            real = os.path.realpath(path)
            for d in dirs:
                if real == d or d.startswith(real.rstrip("/") + "/"):
                    return True
                if not holds_only and real.startswith(d.rstrip("/") + "/"):
                    return True
            return False

        for prefix in self.prefixes:
            if overlaps(prefix, holds_only=True):
                raise ToolError(
                    f"the Python for agent code lives in {prefix}, which holds the workspace: "
                    "agent code would see it. Set SWARMCHAT_PYTHON to an interpreter outside it."
                )
        return self.without({p for p in self.extra_paths if overlaps(p)})


def _pth_dirs(site_dirs: list[str]) -> list[str]:
    """Directories that ``.pth`` files add to ``sys.path``, read as text (``import`` lines,
    which are code, are skipped: the sandboxed interpreter runs them itself, inside)."""
    found = []
    for site in site_dirs:
        try:
            names = sorted(n for n in os.listdir(site) if n.endswith(".pth"))
        except OSError:
            continue
        for name in names:
            try:
                lines = Path(site, name).read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                line = line.rstrip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    path = os.path.normpath(os.path.join(site, line))
                    if os.path.isdir(path):
                        found.append(path)
    return found


def _inside(path: str, prefixes: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return any(real == p or real.startswith(p.rstrip("/") + "/") for p in prefixes)


def _harmless(path: str) -> bool:
    """Never bind ``/`` or a directory holding the home directory (keys, shell history)."""
    real = os.path.realpath(path)
    home = os.path.realpath(Path.home())
    return real != "/" and not (home == real or home.startswith(real.rstrip("/") + "/"))
