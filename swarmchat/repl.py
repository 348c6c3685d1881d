"""The interactive chat: the only module that imports prompt_toolkit (and owns the TTY).

Enter submits; Alt/Esc+Enter, Ctrl-J or a trailing backslash insert a newline; pasted
text keeps its newlines; Ctrl-G or Ctrl-X Ctrl-E edit the prompt in $VISUAL/$EDITOR;
Ctrl-R searches the history (kept private in the user data directory); Tab completes
slash commands, ``@agent`` names and workspace files. Ctrl-C cancels a running turn and
returns to the prompt, clears a non-empty prompt, and exits when pressed twice on an
empty one; Ctrl-D exits. What is typed while a turn runs is kept, unechoed, and becomes
the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import create_output

from swarmchat import __version__
from swarmchat.approval import Asker
from swarmchat.environment import ensure_private_dir, user_home
from swarmchat.errors import SwarmchatError
from swarmchat.events import Event, RunFinished, Usage
from swarmchat.render.board import human_tokens
from swarmchat.session import Options, Session
from swarmchat.slash import NAMES, CommandState, run_command, unknown_agent

EXIT_WINDOW = 2.0


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

    @kb.add("c-g")
    def _editor(event: KeyPressEvent) -> None:
        event.current_buffer.open_in_editor(validate_and_handle=False)

    @kb.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        if event.current_buffer.text:
            event.current_buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt())

    return kb


class SwarmCompleter(Completer):
    """Slash commands at the start, ``@agent`` names, otherwise workspace file names."""

    def __init__(self, agents: Callable[[], list[str]], workspace: Path) -> None:
        self.agents = agents
        self.paths = PathCompleter(get_paths=lambda: [str(workspace)], expanduser=False)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        word = document.get_word_before_cursor(WORD=True)
        if word.startswith("/") and document.text_before_cursor.lstrip() == word:
            yield from (Completion(n, -len(word)) for n in NAMES if n.startswith(word))
        elif word.startswith("@"):
            yield from (Completion("@" + a, -len(word)) for a in self.agents() if ("@" + a).startswith(word))
        elif word:
            yield from self.paths.get_completions(Document(word, len(word)), complete_event)


def history_file(home: Path) -> Path:
    path = ensure_private_dir(home) / "history"
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    return path


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
        from swarmchat.render.tty import color_enabled, make_console

        self.turn_task: asyncio.Task[Any] | None = None
        self.session = Session(opts, approval_asker(self._cancel_turn))
        self.console = make_console(sys.stdout, color=color_enabled(opts.color, sys.stdout))
        self.state = CommandState(brief=opts.brief)
        self.usage = Usage()
        self.prompt: PromptSession[str] = PromptSession(
            history=FileHistory(str(history_file(user_home()))),
            multiline=True,
            key_bindings=_key_bindings(),
            enable_open_in_editor=True,
            completer=SwarmCompleter(lambda: list(self.session.swarm.agents), self.session.workspace.root),
            complete_while_typing=False,
            bottom_toolbar=self.toolbar,
            prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ",
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
        from rich.text import Text

        self.console.print(Text(text, style=style))

    async def main(self) -> None:
        s = self.session
        self.say(
            f"swarmchat {__version__} · {s.swarm.source} · talking to {s.swarm.entry} "
            f"({s.swarm.entry_agent.model}) · /help for commands"
        )
        # Warm the client only once the prompt is on screen: importing openai competes for
        # the interpreter and would delay the first paint.
        warm = threading.Thread(target=_warm_client, args=(s,), daemon=True)
        asyncio.get_running_loop().call_later(0.2, warm.start)
        last_interrupt = 0.0
        try:
            while self.state.running:
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
        finally:
            await s.aclose()

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
        emit = Fanout(renderer, self._count)
        self.turn_task = asyncio.create_task(self.session.turn(text, emit, agent))
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
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(repl.main())
