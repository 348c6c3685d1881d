"""Running agent-written code on the user's machine, confined.

``tiers`` chooses how (bubblewrap, Landlock + seccomp, unconfined by opt-in, or refusal),
``confine`` builds each tier's command line, ``jail`` is the standard-library trampoline
that applies rlimits, Landlock and seccomp, ``cgroups`` caps and reaps a run's processes,
and ``supervise`` starts and bounds them. The words for tiers are declared here, once.
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
