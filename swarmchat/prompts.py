"""Reading lines from the terminal: the only module that imports prompt_toolkit.

Two prompts: the approval question (used by the REPL and by ``ask`` in a terminal) and
the REPL's chat prompt. In the chat prompt Enter submits; Alt/Esc+Enter, Ctrl-J or a
trailing backslash insert a newline; pasted text keeps its newlines; Ctrl-G or Ctrl-X
Ctrl-E edit the prompt in $VISUAL/$EDITOR; Ctrl-R searches the history (kept private in
the user data directory); Tab completes slash commands, ``@agent`` names and workspace
files. Ctrl-C clears a non-empty prompt and raises KeyboardInterrupt on an empty one;
Ctrl-D raises EOFError.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import create_output

from swarmchat.approval import Asker
from swarmchat.environment import ensure_private_dir
from swarmchat.textsafe import visible_controls

ANSWERS = ("y", "yes", "n", "no", "a", "always")
ASK_ATTEMPTS = 5  # unrecognised answers before "no"


def approval_asker(on_interrupt: Callable[[], None] | None = None) -> Asker:
    """An asker that prompts on the terminal (on stderr when stdout is redirected).

    Ctrl-C or Ctrl-D at the question calls ``on_interrupt`` and cancels the asking task
    (the REPL cancels the turn); without ``on_interrupt`` it raises KeyboardInterrupt."""
    output = None if sys.stdout.isatty() else create_output(stdout=sys.stderr)
    session: PromptSession[str] = PromptSession(output=output)

    async def ask(question: str) -> str:
        shown = visible_controls(question)  # approval.question() did; a custom caller may not
        for _ in range(ASK_ATTEMPTS):
            try:
                # handle_sigint=False: prompt_toolkit would remove the REPL's SIGINT handler on
                # return, and Ctrl-C could no longer stop the code the user just approved.
                answer = (await session.prompt_async(shown + " ", handle_sigint=False)).strip().lower()
            except (KeyboardInterrupt, EOFError):
                if on_interrupt is None:
                    raise KeyboardInterrupt from None
                on_interrupt()
                raise asyncio.CancelledError from None
            if answer in ANSWERS:
                return answer[0]
        return "n"

    return ask


def chat_prompt(
    history: Path,
    commands: tuple[str, ...],
    agents: Callable[[], list[str]],
    workspace: Path,
    toolbar: Callable[[], str],
) -> Callable[[str], Awaitable[str]]:
    """The REPL's prompt; call the result with the prompt text to read one message."""
    session: PromptSession[str] = PromptSession(
        history=FileHistory(str(history_file(history))),
        multiline=True,
        key_bindings=_key_bindings(),
        enable_open_in_editor=True,
        completer=SwarmCompleter(commands, agents, workspace),
        complete_while_typing=False,
        bottom_toolbar=toolbar,
        prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ",
    )

    async def read(message: str) -> str:
        return await session.prompt_async(message)

    return read


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

    def __init__(self, commands: tuple[str, ...], agents: Callable[[], list[str]], workspace: Path) -> None:
        self.commands = commands
        self.agents = agents
        self.paths = PathCompleter(get_paths=lambda: [str(workspace)], expanduser=False)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        word = document.get_word_before_cursor(WORD=True)
        if word.startswith("/") and document.text_before_cursor.lstrip() == word:
            yield from (Completion(n, -len(word)) for n in self.commands if n.startswith(word))
        elif word.startswith("@"):
            names = ("@" + a for a in self.agents())
            yield from (Completion(n, -len(word)) for n in names if n.startswith(word))
        elif word:
            yield from self.paths.get_completions(Document(word, len(word)), complete_event)


def history_file(home: Path) -> Path:
    """The REPL history, created private (mode 0600) in the user data directory."""
    path = ensure_private_dir(home) / "history"
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    return path
