"""The interactive chat: the only module that imports prompt_toolkit.

Enter submits; Alt/Esc+Enter, Ctrl-J or a trailing backslash insert a newline; Ctrl-R
searches the history (kept private in the user data directory). Ctrl-C cancels a running
turn and returns to the prompt, clears a non-empty prompt, and exits when pressed twice
on an empty one; Ctrl-D exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import create_output

from swarmchat import __version__
from swarmchat.app import Options, Session
from swarmchat.approval import Asker
from swarmchat.errors import SwarmchatError
from swarmchat.settings import ensure_private_dir, user_home

EXIT_WINDOW = 2.0
HELP = """\
/help            this list
/agents          the swarm: each agent, its model, tools and who it talks to
/model NAME      use NAME for every agent from now on
/new             start fresh threads (every agent forgets this conversation)
/exit            leave (also Ctrl-D, or Ctrl-C twice on an empty prompt)
Enter sends · Alt+Enter, Ctrl-J or a trailing \\ adds a line · Ctrl-R searches history
Ctrl-C during a turn cancels it."""


def approval_asker(on_interrupt: Callable[[], None] | None = None) -> Asker:
    """An asker that prompts on the terminal (on stderr when stdout is redirected)."""
    output = None if sys.stdout.isatty() else create_output(stdout=sys.stderr)
    session: PromptSession[str] = PromptSession(output=output)

    async def ask(question: str) -> str:
        for _ in range(5):
            try:
                answer = (await session.prompt_async(question + " ")).strip().lower()
            except (KeyboardInterrupt, EOFError):
                if on_interrupt is None:
                    raise KeyboardInterrupt from None
                on_interrupt()
                raise asyncio.CancelledError from None
            if answer in ("y", "yes", "n", "no", "a", "always"):
                return answer[0]
        return "n"

    return ask


def _key_bindings() -> KeyBindings:
    kb = KeyBindings()

    @kb.add("enter")
    def _submit(event: KeyPressEvent) -> None:
        buf = event.current_buffer
        if buf.text.endswith("\\") and buf.cursor_position == len(buf.text):
            buf.delete_before_cursor(1)
            buf.insert_text("\n")
        else:
            buf.validate_and_handle()

    @kb.add("escape", "enter")
    @kb.add("c-j")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    @kb.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        if event.current_buffer.text:
            event.current_buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt())

    return kb


def history_file(home: Path) -> Path:
    path = ensure_private_dir(home) / "history"
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    return path


class Repl:
    def __init__(self, opts: Options) -> None:
        self.turn_task: asyncio.Task[Any] | None = None
        self.session = Session(opts, approval_asker(self._cancel_turn))
        from swarmchat.render_rich import color_enabled, make_console

        self.console = make_console(sys.stdout, color=color_enabled(opts.color, sys.stdout))
        self.brief = opts.brief
        self.prompt: PromptSession[str] = PromptSession(
            history=FileHistory(str(history_file(user_home()))),
            multiline=True,
            key_bindings=_key_bindings(),
            prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ",
        )

    def _cancel_turn(self) -> None:
        if self.turn_task is not None:
            self.turn_task.cancel()

    def say(self, text: str, style: str = "dim") -> None:
        from rich.text import Text

        self.console.print(Text(text, style=style))

    async def main(self) -> None:
        s = self.session
        self.say(f"swarmchat {__version__} · {s.swarm.source} · talking to {s.swarm.entry} "
                 f"({s.swarm.entry_agent.model}) · /help for commands")  # fmt: skip
        last_interrupt = 0.0
        try:
            while True:
                try:
                    text = await self.prompt.prompt_async("you › ")
                except KeyboardInterrupt:
                    now = time.monotonic()
                    if now - last_interrupt < EXIT_WINDOW:
                        break
                    last_interrupt = now
                    self.say("(press Ctrl-C again to exit, or Ctrl-D)")
                    continue
                except EOFError:
                    break
                text = text.strip()
                if not text:
                    continue
                if text.startswith("/"):
                    if not self.command(text):
                        break
                    continue
                await self.turn(text)
        finally:
            await s.aclose()

    async def turn(self, text: str) -> None:
        from swarmchat.render_rich import RichRenderer

        renderer = RichRenderer(self.console, self.session.swarm, show_approval_code=True,
                                brief=self.brief, workspace=str(self.session.workspace.root))  # fmt: skip
        loop = asyncio.get_running_loop()
        self.turn_task = asyncio.create_task(self.session.turn(text, renderer))
        loop.add_signal_handler(signal.SIGINT, self._cancel_turn)
        try:
            await self.turn_task
        except asyncio.CancelledError:
            self.say("interrupted: the turn was cancelled", "yellow")
        except SwarmchatError as exc:
            self.say(f"error: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), "red")
        finally:
            renderer.close()
            loop.remove_signal_handler(signal.SIGINT)
            self.turn_task = None

    def command(self, line: str) -> bool:
        """Handle a slash command; False means leave the REPL."""
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        if name in ("/exit", "/quit"):
            return False
        if name == "/help":
            self.say(HELP, "")
        elif name == "/new":
            self.session.new_threads()
            self.say("fresh threads: the agents have forgotten this conversation")
        elif name == "/agents":
            for a in self.session.swarm.agents.values():
                tools = ", ".join([*a.tools, *(["SendMessage"] if a.talks_to else [])]) or "-"
                talks = ", ".join(a.talks_to) or "-"
                mark = " (entry)" if a.name == self.session.swarm.entry else ""
                self.say(f"{a.name}{mark} · {a.model} · tools: {tools} · talks to: {talks}", a.color)
        elif name == "/model":
            if not arg:
                self.say(f"model: {self.session.swarm.entry_agent.model} (usage: /model NAME)")
            else:
                self.session.set_model(arg)
                self.say(f"every agent now uses {arg}")
        else:
            self.say(f"unknown command {name}; /help lists them", "yellow")
        return True


def run_repl(opts: Options) -> None:
    repl = Repl(opts)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(repl.main())
