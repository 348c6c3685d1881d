"""Which workspace paths agents may not read or write, whatever tool or code they use.

Two lists, because the dangers differ:

* **hidden**: credentials. Agent code never sees them (they are left out of its private
  copy of the workspace), ``File`` cannot write them and no tool reads them. The ``.env``
  swarmchat loads its own key from is always hidden; other names can be exposed with
  ``SWARMCHAT_EXPOSE`` (comma-separated glob patterns, e.g. ``*.pem``).
* **protected**: files something on the host runs later, without asking: git hooks and
  config, direnv's ``.envrc``, shell start-up files, editor task files, a virtual
  environment and ``*.pth`` / ``sitecustomize.py``, pre-commit's config, and the swarm file
  (``sandbox: none`` there would disarm the next session). Agents may read them; nothing
  they write reaches them.

Names are compared case-folded, so ``.GIT/hooks`` on a case-insensitive disk is ``.git``.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

Verdict = Literal["ok", "hidden", "protected"]

# Credential files and directories (any component matching hides the path).
HIDDEN_NAMES = (
    ".env*",  # .env, .env.local, .env~, .envs/, .envrc (direnv exports secrets too)
    "*.env",
    "#.env*",
    "*.env~",
    "secrets.toml",
    "secrets.yaml",
    "secrets.yml",
    "secrets.json",
    "*.tfstate",
    "*.tfstate.backup",
    ".s3cfg",
    ".boto",
    ".vault-token",
    "client_secret*.json",
    "credentials",
    "credentials.toml",
    ".netrc",
    "_netrc",
    ".git-credentials",
    ".pgpass",
    ".my.cnf",
    ".npmrc",
    ".pypirc",
    ".yarnrc",
    ".yarnrc.yml",
    ".htpasswd",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".terraform.d",
    "gcloud",
    "credentials.json",
    "service-account*.json",
    "application_default_credentials.json",
)
EXAMPLE_SUFFIXES = (".example", ".sample", ".template", ".dist")  # .env.example is documentation

# Directories whose contents run later, or are never agent material (any component).
PROTECTED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        ".venv",
        ".direnv",
        ".vscode",
        ".idea",
        ".devcontainer",
        ".github",
        "site-packages",
        "dist-packages",
        ".husky",
        ".cargo",
        ".jj",
        "conda-meta",
        "node_modules",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)
# Files that something runs without asking (any directory).
GIT_HOOKS = (  # by name, wherever they are: core.hooksPath can point anywhere
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "p4-*",
    "post-index-change",
)
PROTECTED_FILES = (
    *GIT_HOOKS,
    ".envrc",
    ".rprofile",
    ".irbrc",
    ".exrc",
    ".nvimrc",
    ".vimrc",
    "mise.toml",
    ".mise.toml",
    "*.so",  # an extension module is imported before the .py of the same name
    "*.pyd",
    "agents.yaml",  # a swarm file anywhere: "sandbox: none" for a session started there
    "agents.yml",
    "swarmchat.yaml",
    "head",  # with config, objects/ and refs/ beside it, a directory is a bare git repository
    ".pdbrc",
    ".pdbrc.py",
    "lefthook.toml",
    ".lefthook.yaml",
    "lefthook-local.yaml",
    ".lintstagedrc*",
    ".devcontainer.json",
    "*.code-workspace",
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".zlogout",
    ".cshrc",
    ".tcshrc",
    ".login",
    ".inputrc",
    ".pythonrc",
    ".pythonrc.py",
    "sitecustomize.py",
    "usercustomize.py",
    "*.pth",
    "pyvenv.cfg",
    ".pre-commit-config.yaml",
    "lefthook.yml",
    "lefthook.yaml",
    ".lefthook.yml",
    "lefthook-local.yml",
    ".overcommit.yml",
    ".gitconfig",
    ".gitmodules",
    "*.pyc",  # bytecode is loaded instead of the source it claims to be compiled from
    "*.pyo",
)
# Left out of agent code's copy: nothing to gain, and too big to copy per run. Also
# protected: what agents cannot see they may not write, and these are usually ignored by
# version control, so a change there (a .pyc, a package in node_modules) would go unseen.
SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".svn", ".bzr", ".venv", "node_modules", "__pycache__", ".mypy_cache"}
    | {".pytest_cache", ".ruff_cache", ".tox", ".nox", ".direnv"}
)


def _matcher(patterns: Iterable[str]) -> re.Pattern[str]:
    """One compiled regex for a list of globs: checked for every file of every run."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns) or "(?!)")


_HIDDEN = _matcher(HIDDEN_NAMES)
_PROTECTED = _matcher(PROTECTED_FILES)


@dataclass(frozen=True)
class PathPolicy:
    """The verdict for a path inside a workspace, given as its components."""

    exposed: tuple[str, ...] = ()  # user opt-in: hidden names to show anyway
    hidden_paths: frozenset[Path] = field(default_factory=frozenset)  # always hidden, and below
    protected_paths: frozenset[Path] = field(default_factory=frozenset)

    @classmethod
    def for_session(
        cls, agents_file: str | None, cwd: Path | None = None, data: Path | None = None
    ) -> PathPolicy:
        """The policy of a session: swarmchat's own ``.env`` and data directory (its
        database of every conversation) hidden, its swarm file protected, the user's
        ``SWARMCHAT_EXPOSE`` patterns applied."""
        cwd = cwd or Path.cwd()
        exposed = tuple(p.strip() for p in os.environ.get("SWARMCHAT_EXPOSE", "").split(",") if p.strip())
        protected = {_real(cwd / n) for n in ("agents.yaml", "agents.yml", "swarmchat.yaml")}
        if agents_file and agents_file != "-":
            protected.add(_real(cwd / agents_file))
        hidden = {_real(cwd / ".env"), *([_real(data)] if data else [])}
        return cls(exposed, frozenset(hidden), frozenset(protected))

    def verdict(self, root: Path, parts: Sequence[str]) -> Verdict:
        """``hidden`` wins over ``protected``: a credential file is neither read nor written."""
        folded = [p.casefold() for p in parts]
        path = root.joinpath(*parts)
        if any(h == path or h in path.parents for h in self.hidden_paths) or any(map(self._hidden, folded)):
            return "hidden"
        if any(p == path or p in path.parents for p in self.protected_paths):
            return "protected"
        if any(p in PROTECTED_DIRS for p in folded[:-1]):
            return "protected"
        if folded[-1] in PROTECTED_DIRS or _PROTECTED.match(folded[-1]):
            return "protected"
        return "ok"

    def _hidden(self, name: str) -> bool:
        if name.endswith(EXAMPLE_SUFFIXES) or not _HIDDEN.match(name):
            return False
        return not (self.exposed and self._exposed.match(name))

    @functools.cached_property
    def _exposed(self) -> re.Pattern[str]:
        """Compiled once: checked for every path component of every file of every run."""
        return _matcher(p.casefold() for p in self.exposed)

    def with_git_hooks(self, root: Path) -> PathPolicy:
        """Also protect what ``.git/config`` points at: the hooks directory
        (``core.hooksPath``, e.g. ``.githooks``: git runs what is there on commit, checkout,
        merge...) and every config file it includes, followed to any depth (an included file
        could set hooks or fsmonitor)."""
        named: set[Path] = set()
        queue: list[Path] = [root / ".git" / "config"]
        seen: set[Path] = set()
        while queue and len(seen) < 64:
            config = queue.pop()
            if config in seen:
                continue
            seen.add(config)
            try:
                text = config.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for key, value in _git_paths(text):
                # hooksPath is relative to the working tree, an include to its own file
                base = root if key == "hookspath" else config.parent
                target = _real(base / os.path.expanduser(value))
                named.add(target)
                if key == "path":
                    queue.append(target)
        return replace(self, protected_paths=self.protected_paths | named) if named else self


def _git_paths(config: str) -> list[tuple[str, str]]:
    """``core.hooksPath`` and ``include``/``includeIf`` ``path`` values of a git config,
    as (``hookspath`` or ``path``, value)."""
    found: list[tuple[str, str]] = []
    section = ""
    for raw in config.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]").split(None, 1)[0].lower()
            continue
        key, _, value = line.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"')
        if value and key == "hookspath":
            found.append(("hookspath", value))
        elif value and key == "path" and section in ("include", "includeif"):
            found.append(("path", value))
    return found


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def is_skipped_dir(name: str, has_pyvenv: bool) -> bool:
    """Directories left out of the sandbox copy (version control, environments, caches)."""
    return has_pyvenv or name.casefold() in SKIPPED_DIRS
