"""The interactive chat: turns, slash commands, Ctrl-C and the terminal around them.

Lines are read through ``prompts`` (the only module that imports prompt_toolkit) and
everything is printed through the terminal renderer. Ctrl-C cancels a running turn and
returns to the prompt, clears a non-empty prompt, and exits when pressed twice on an
empty one; Ctrl-D exits. What is typed while a turn runs is kept, unechoed, and becomes
the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import termios
import threading
import time
from collections.abc import Iterator
from typing import Any

from swarmchat import __version__, lifecycle
from swarmchat.environment import user_home
from swarmchat.errors import SwarmchatError, Terminated
from swarmchat.events import Event, RunFinished, Usage
from swarmchat.prompts import approval_asker, chat_prompt
from swarmchat.render.board import human_tokens
from swarmchat.render.tty import color_enabled, make_console, say
from swarmchat.session import Options, Session
from swarmchat.slash import NAMES, CommandState, run_command, unknown_agent

EXIT_WINDOW = 2.0  # seconds between two Ctrl-C on an empty prompt that exit
WARM_DELAY = 0.2  # seconds after the prompt shows before the client is imported


@contextlib.contextmanager
def typed_ahead() -> Iterator[None]:
    """While a turn runs, keystrokes are not echoed into the output and Enter is kept as
    Enter, so what the user types waits in the terminal and becomes the next prompt's
    input (and is sent if it ended with Enter). Ctrl-C still interrupts."""
    fd = sys.stdin.fileno()
    try:
        saved = termios.tcgetattr(fd)
    except (termios.error, OSError):
        yield
        return
    quiet = list(saved)
    quiet[0] &= ~termios.ICRNL
    quiet[3] &= ~(termios.ECHO | termios.ECHONL)
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


class Repl:
    def __init__(self, opts: Options) -> None:
        self.turn_task: asyncio.Task[Any] | None = None
        self.session = Session(opts, approval_asker(self._cancel_turn))
        self.console = make_console(sys.stdout, color=color_enabled(opts.color, sys.stdout))
        self.state = CommandState(brief=opts.brief)
        self.usage = Usage()
        self.last_interrupt = 0.0  # a second Ctrl-C on an empty prompt within EXIT_WINDOW exits
        self.read = chat_prompt(
            user_home(),
            NAMES,
            lambda: list(self.session.swarm.agents),
            self.session.workspace.root,
            self.toolbar,
        )

    def toolbar(self) -> str:
        s = self.session
        approval = {"auto": "auto-approve", "ask": "ask before running", "deny": "no code"}[s.approver.mode]
        return (
            f" {s.swarm.source} · {s.swarm.entry_agent.model} · {approval} · "
            f"{human_tokens(self.usage.total_tokens)} tokens · cost unknown "
        )

    def _cancel_turn(self) -> None:
        if self.turn_task is not None:
            self.turn_task.cancel()

    def say(self, text: str, style: str = "dim") -> None:
        say(self.console, text, style)

    async def main(self) -> None:
        s = self.session
        self.say(
            f"swarmchat {__version__} · {s.swarm.source} · talking to {s.swarm.entry} "
            f"({s.swarm.entry_agent.model}) · /help for commands"
        )
        # Warm the client only once the prompt is on screen: importing openai competes for
        # the interpreter and would delay the first paint.
        warm = threading.Thread(target=_warm_client, args=(s,), daemon=True)
        asyncio.get_running_loop().call_later(WARM_DELAY, warm.start)
        try:
            while self.state.running and (text := await self._read()) is not None:
                await self._handle(text)
        finally:
            await s.aclose()

    async def _read(self) -> str | None:
        """The next message; None to leave (Ctrl-D, or Ctrl-C twice on an empty prompt)."""
        while True:
            try:
                return (await self.read("you › ")).strip()
            except KeyboardInterrupt:
                now = time.monotonic()
                if now - self.last_interrupt < EXIT_WINDOW:
                    return None
                self.last_interrupt = now
                self.say("(press Ctrl-C again to exit, or Ctrl-D)")
            except EOFError:
                return None

    async def _handle(self, text: str) -> None:
        s = self.session
        if not text:
            return
        if text.startswith("/"):
            run_command(text, s, self.state, self.say)
        elif text.startswith("@"):
            name, _, message = text[1:].partition(" ")
            if name not in s.swarm.agents:
                self.say(unknown_agent(s.swarm, name), "yellow")
            elif not message.strip():
                self.say(f"usage: @{name} your message", "yellow")
            else:
                await self.turn(message.strip(), name)
        else:
            await self.turn(text)

    def _count(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            self.usage = self.usage + event.usage

    async def turn(self, text: str, agent: str | None = None) -> None:
        from swarmchat.render import Fanout
        from swarmchat.render.tty import RichRenderer

        s = self.session
        renderer = RichRenderer(
            self.console,
            s.swarm,
            show_approval_code=s.approver.mode == "ask",
            brief=self.state.brief,
            workspace=str(s.workspace.root),
        )
        loop = asyncio.get_running_loop()
        self.turn_task = asyncio.create_task(s.turn(text, Fanout(renderer, self._count), agent))
        loop.add_signal_handler(signal.SIGINT, self._cancel_turn)
        try:
            with typed_ahead():
                await self.turn_task
        except asyncio.CancelledError:
            renderer.close()
            self.say("interrupted: the turn was cancelled; what was received is kept", "yellow")
        except SwarmchatError as exc:
            self.say(f"error: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), "red")
        finally:
            renderer.close()
            loop.remove_signal_handler(signal.SIGINT)
            self.turn_task = None


def _warm_client(session: Session) -> None:
    """Import openai and build the client while the user types (it takes ~1 s)."""
    with contextlib.suppress(Exception):
        _ = session.client


def run_repl(opts: Options) -> None:
    repl = Repl(opts)
    try:
        lifecycle.run(repl.main())
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            raise
