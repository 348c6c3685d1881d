"""How swarmchat ends on SIGTERM and SIGHUP (``kill``, a closed terminal): as Ctrl-C does.

Running code is stopped, its workspace copy removed, the store closed, and the process
exits with 128 + the signal. While the event loop runs, the signal cancels the main task
from inside the loop (as asyncio does for SIGINT), so that no ``finally`` is skipped and
the signal cannot land in a callback that would swallow an exception. Outside the loop
(start-up, parsing) it raises :class:`Terminated`.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

from swarmchat.errors import Terminated

T = TypeVar("T")
SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []  # the signal that ends this process, once one came


def received() -> int | None:
    return _received[0] if _received else None


def install() -> None:
    """Take over SIGTERM and SIGHUP for the whole process, unless they are ignored (as
    under ``nohup``). For the real command only: tests run the CLI in-process."""
    for sig in SIGNALS:
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _outside_loop)


def _outside_loop(signum: int, _frame: object) -> None:
    if not _received:
        _received.append(signum)
        raise Terminated(signum)


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``; a SIGTERM or SIGHUP meanwhile cancels it and raises
    :class:`Terminated` once everything it started has unwound."""
    try:
        return asyncio.run(_guarded(main))
    except asyncio.CancelledError:
        if _received:
            raise Terminated(_received[0]) from None
        raise


async def _guarded(main: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    ours = [sig for sig in SIGNALS if signal.getsignal(sig) is _outside_loop]

    def stop(signum: int) -> None:
        if not _received and task is not None:
            _received.append(signum)
            task.cancel()

    for sig in ours:
        loop.add_signal_handler(sig, stop, sig)
    try:
        return await main
    finally:
        for sig in ours:
            loop.remove_signal_handler(sig)
            signal.signal(sig, _outside_loop)
