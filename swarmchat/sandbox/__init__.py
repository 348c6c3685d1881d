"""Running agent-written code on the user's machine, confined.

``tiers`` chooses how (bubblewrap, Landlock + seccomp, unconfined by opt-in, or refusal) and
reports what holds (``protections``); ``executors`` run a file per tier, ``confine`` builds
their command lines and ``runtime`` finds the interpreter without running its start-up
code. ``jail`` is the standard-library trampoline every confined run starts through: it
joins the run's ``cgroups``, drops to an unprivileged uid and every capability
(``privileges``), applies ``landlock`` and ``seccomp``, then execs; ``supervise`` starts
and bounds the processes. The words for tiers are declared here, once.
"""

from __future__ import annotations

from typing import Literal, get_args

SandboxMode = Literal["auto", "bwrap", "landlock", "none"]
"""What the user asks for: ``sandbox:`` in agents.yaml or ``--sandbox``."""

TierName = Literal["bwrap", "landlock"]
"""The confining tiers, strongest first."""

ExecutorKind = Literal["bwrap", "landlock", "none", "refused"]
"""What runs agent code: a confining tier, unconfined (``none``), or nothing (``refused``)."""

SANDBOX_MODES: tuple[SandboxMode, ...] = get_args(SandboxMode)
TIERS: tuple[TierName, ...] = get_args(TierName)
