"""The command line (Typer): options, modes, and the one place errors become exit codes.

Exit codes: 0 success, 1 run failed, 2 usage error, 3 configuration/authentication,
4 provider error after retries, 5 the entry agent hit its turn limit, 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from swarmchat import __version__, lifecycle
from swarmchat.environment import debug_enabled
from swarmchat.errors import (
    ConfigError,
    InterruptedRunError,
    ProviderError,
    SwarmchatError,
    TurnLimitError,
    UsageError,
)
from swarmchat.sandbox import SANDBOX_MODES
from swarmchat.session import COLOR_CHOICES, Options

EXIT_CODES: tuple[tuple[type[SwarmchatError], int], ...] = (
    (UsageError, 2),
    (ConfigError, 3),  # AuthError too
    (ProviderError, 4),
    (TurnLimitError, 5),
    (InterruptedRunError, 130),
)
"""Every other error (a failed run) exits 1."""

EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 run failed, 2 usage error, 3 configuration or authentication "
    "error, 4 provider error after retries, 5 turn limit reached, 130 interrupted."
)

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Chat with a swarm of agents: a user proxy that delegates to specialists.\n\n" + EXIT_CODES_HELP,
)

AgentsOpt = Annotated[
    str | None,
    typer.Option(
        "--agents", "-a", help="Agents file (default: ./agents.yaml, else the bundled one).", metavar="FILE"
    ),
]
SandboxOpt = Annotated[
    str | None,
    typer.Option(
        "--sandbox",
        help="Isolation tier: auto, bwrap, landlock or none (default: agents.yaml, else auto).",
        metavar="TIER",
    ),
]
UnsafeOpt = Annotated[
    bool,
    typer.Option(
        "--unsafe-local-exec", help="When no sandbox works, run agent code unconfined instead of refusing."
    ),
]

WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Directory agents may write and run files in (default: current).",
        metavar="DIR",
    ),
]
SHARED_OPTIONS: dict[str, Any] = {
    "agents_file": AgentsOpt,
    "model": Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model for every agent (overrides SWARMCHAT_MODEL and agents.yaml).",
            metavar="NAME",
        ),
    ],
    "workspace": WorkspaceOpt,
    "yes": Annotated[bool, typer.Option("--yes", "-y", help="Run agent code without asking.")],
    "max_turns": Annotated[
        int | None,
        typer.Option(
            "--max-turns",
            min=1,
            max=500,
            help="Turn limit for every run (default: per agent, 20).",
            metavar="N",
        ),
    ],
    "timeout": Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds a Python file may run.", metavar="SECONDS")
    ],
    "network": Annotated[
        bool, typer.Option("--network", help="Let agent code use the network (default: no network).")
    ],
    "sandbox": SandboxOpt,
    "unsafe_local_exec": UnsafeOpt,
    "color": Annotated[
        str,
        typer.Option(
            "--color",
            help="Colour: auto, always or never (NO_COLOR, FORCE_COLOR and TERM=dumb are honoured on auto).",
            metavar="WHEN",
        ),
    ],
    "brief": Annotated[
        bool, typer.Option("--brief", help="Fold each finished sub-agent exchange into one line.")
    ],
}
"""The options the REPL and ``ask`` share, declared once: the keys are :class:`Options`
fields, and their defaults come from there."""


def shared_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the shared options, merged into its ``opts`` argument.

    Typer reads a command's options from its signature, so the wrapper's signature is the
    command's own with the shared options spliced in after its arguments."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "opts"]
    defaults = Options()
    shared = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, name), annotation=ann
        )
        for name, ann in SHARED_OPTIONS.items()
    ]
    keyword = inspect.Parameter.KEYWORD_ONLY
    spliced = [p for p in own if p.kind != keyword] + shared + [p for p in own if p.kind == keyword]

    @functools.wraps(command)
    def with_options(ctx: typer.Context, *args: Any, **kwargs: Any) -> None:
        values = {name: kwargs.pop(name) for name in SHARED_OPTIONS}
        given = {name: value for name, value in values.items() if _given(ctx, name)}
        command(ctx, *args, opts=_merge(ctx, **given), **kwargs)

    with_options.__signature__ = signature.replace(parameters=spliced)  # type: ignore[attr-defined]
    with_options.__annotations__ = {p.name: p.annotation for p in spliced}
    return with_options


def _given(ctx: typer.Context, param: str) -> bool:
    """Whether ``param`` was on the command line (or in the environment), not a default:
    ``--timeout 60`` given after the subcommand must win over ``--timeout 1`` before it."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _merge(ctx: typer.Context, **given: Any) -> Options:
    """The options given here over those given before the subcommand (``swarmchat -m x
    ask``), over the defaults. ``given`` holds only options the user actually gave."""
    if given.get("sandbox") not in (None, *SANDBOX_MODES):
        raise UsageError(f"--sandbox must be one of {', '.join(SANDBOX_MODES)}", "see 'swarmchat --help'")
    if given.get("color", "auto") not in COLOR_CHOICES:
        raise UsageError(f"--color must be one of {', '.join(COLOR_CHOICES)}", "see 'swarmchat --help'")
    root: Options = ctx.obj if isinstance(ctx.obj, Options) else Options()
    return dataclasses.replace(root, **given)


def _show_version(value: bool) -> None:
    """Eager: ``--version`` answers before any other option is checked."""
    if value:
        typer.echo(f"swarmchat {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
@shared_options
def root(
    ctx: typer.Context,
    *,
    opts: Options,
    version: Annotated[
        bool, typer.Option("--version", "-V", help="Show the version.", is_eager=True, callback=_show_version)
    ] = False,
) -> None:
    """Interactive chat when stdin is a terminal; otherwise the piped text is the prompt."""
    ctx.obj = opts
    if ctx.invoked_subcommand is not None:
        return
    if sys.stdin.isatty():
        from swarmchat.repl import run_repl

        run_repl(opts)
        return
    from swarmchat.oneshot import AskOutput, run_ask

    error = run_ask(opts, _read_prompt(None), AskOutput())
    if error is not None:
        raise error


@app.command()
@shared_options
def ask(
    ctx: typer.Context,
    prompt: Annotated[
        str | None, typer.Argument(help="The prompt; '-' reads stdin.", metavar="PROMPT")
    ] = None,
    *,
    opts: Options,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object with the result.")] = False,
    jsonl: Annotated[
        bool,
        typer.Option("--jsonl", help="Print one JSON object per event, then the result (docs/jsonl.md)."),
    ] = False,
    output_format: Annotated[
        str | None,
        typer.Option("--output-format", help="text, json or stream-json (= --jsonl).", metavar="FORMAT"),
    ] = None,
    include_partial: Annotated[
        bool, typer.Option("--include-partial", help="With --jsonl: also emit message.delta events.")
    ] = False,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent", help="Send the prompt to this agent, not the entry one (like @NAME).", metavar="NAME"
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Show agent activity on stderr even when it is not a terminal."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only the final answer; nothing on stderr.")
    ] = False,
    out: Annotated[
        str | None, typer.Option("--out", help="Also write the final answer to FILE.", metavar="FILE")
    ] = None,
) -> None:
    """Ask once and exit. Piped stdin is appended to PROMPT as context."""
    from swarmchat.oneshot import AskOutput, OutputFormat, run_ask

    formats: dict[str, OutputFormat] = {
        "text": "text",
        "json": "json",
        "stream-json": "jsonl",
        "jsonl": "jsonl",
    }
    if output_format is not None and output_format not in formats:
        raise UsageError("--output-format must be text, json or stream-json", "see 'swarmchat ask --help'")
    flagged: tuple[tuple[OutputFormat, bool], ...] = (("json", json_out), ("jsonl", jsonl))
    chosen: set[OutputFormat] = {f for f, on in flagged if on}
    if output_format is not None:
        chosen.add(formats[output_format])
    if len(chosen) > 1:
        raise UsageError(
            "choose one output format: --json, --jsonl and --output-format disagree",
            "pass one of them (--output-format stream-json is --jsonl)",
        )
    if quiet and verbose:
        raise UsageError("--quiet and --verbose cannot be used together", "drop one of them")
    fmt: OutputFormat = chosen.pop() if chosen else "text"
    if out:
        _check_out(Path(out))
    if include_partial and fmt != "jsonl":
        raise UsageError(
            "--include-partial goes with --jsonl (or --output-format stream-json)", "add --jsonl"
        )
    output = AskOutput(fmt, include_partial, verbose, quiet, out)
    error = run_ask(opts, _read_prompt(prompt), output, agent)
    if error is not None:
        if quiet:  # the exit code alone tells what happened
            raise typer.Exit(exit_code(error))
        raise error


@app.command("agents")
def agents_cmd(
    ctx: typer.Context,
    agents: AgentsOpt = None,
    check: Annotated[
        str | None, typer.Option("--check", help="Validate FILE and exit 0 (valid) or 3.", metavar="FILE")
    ] = None,
) -> None:
    """List the swarm: each agent's model, tools and who it talks to."""
    from swarmchat.session import resolve_swarm

    opts = _merge(ctx, **({"agents_file": check or agents} if check or _given(ctx, "agents") else {}))
    swarm = resolve_swarm(opts)
    if check:
        typer.echo(f"{check}: ok ({len(swarm.agents)} agents, entry: {swarm.entry})")
        return
    rows = [("AGENT", "MODEL", "TOOLS", "TALKS TO")]
    for a in swarm.agents.values():
        name = a.name + (" *" if a.name == swarm.entry else "")
        rows.append((name, a.model, ", ".join(a.all_tools) or "-", ", ".join(a.talks_to) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    typer.echo(f"\n{swarm.source} · * entry agent")


@app.command()
def doctor(
    ctx: typer.Context,
    agents: AgentsOpt = None,
    sandbox: SandboxOpt = None,
    unsafe_local_exec: UnsafeOpt = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show which sandbox runs agent code here, and what it protects.

    Each isolation tier is probed; the report lists the protections each one gives on
    this machine, which one runs agent code and why the others do not."""
    from swarmchat.session import make_sandbox, resolve_swarm

    values: dict[str, tuple[str, Any]] = {
        "agents": ("agents_file", agents),
        "sandbox": ("sandbox", sandbox),
        "unsafe_local_exec": ("unsafe_local_exec", unsafe_local_exec),
        "workspace": ("workspace", workspace),
    }
    opts = _merge(ctx, **{field: value for param, (field, value) in values.items() if _given(ctx, param)})
    root = Path(opts.workspace).expanduser().absolute() if opts.workspace else Path.cwd()
    box = make_sandbox(opts, resolve_swarm(opts), root)

    from swarmchat.doctor import report as doctor_report

    for line in lifecycle.run(doctor_report(box, root)):
        typer.echo(line)


def _check_out(path: Path) -> None:
    """``--out`` must be a writable file path: found out before any model call."""
    hint = "give --out a file path in an existing, writable directory"
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory", hint)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--out {path}: the directory {parent} does not exist", hint)
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"--out {path}: not writable", hint)


def _read_prompt(prompt: str | None) -> str:
    """The prompt, with bytes that are not UTF-8 replaced (said once on stderr)."""
    from swarmchat.textsafe import valid_utf8

    text = _prompt_text(prompt)
    clean = valid_utf8(text)
    if clean != text:
        sys.stderr.write("swarmchat: note: the input is not valid UTF-8; those bytes are now U+FFFD\n")
    return clean


def _stdin() -> str:
    """All of stdin; read as bytes where possible, so that no decoding error can stop us."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin.read()
    return bytes(buffer.read()).decode("utf-8", "surrogateescape")


def _prompt_text(prompt: str | None) -> str:
    """The instruction from the argument, stdin, or both (stdin becomes context)."""
    piped = not sys.stdin.isatty()
    if prompt == "-":
        if not piped:
            raise UsageError(
                "'-' reads the prompt from stdin, but stdin is a terminal",
                "pipe it in: echo ... | swarmchat ask -",
            )
        prompt, piped = _stdin(), False
    stdin_text = _stdin() if piped else ""
    if prompt is None or not prompt.strip():
        if stdin_text.strip():
            return stdin_text.strip()
        if prompt is not None:
            raise UsageError("the prompt is empty", 'swarmchat ask "what to do"')
        if piped:
            raise UsageError("no prompt given and stdin was empty", 'swarmchat ask "..." or pipe text in')
        raise UsageError(
            "no prompt given", "swarmchat ask \"...\", pipe text in, or run 'swarmchat' for a chat"
        )
    if stdin_text.strip():
        return f"{prompt.strip()}\n\n<stdin>\n{stdin_text.rstrip()}\n</stdin>"
    return prompt.strip()


def exit_code(error: SwarmchatError) -> int:
    return next((code for cls, code in EXIT_CODES if isinstance(error, cls)), 1)


def report(error: SwarmchatError) -> int:
    """Print the error as one line (and a hint); return its exit code. Messages may quote an
    agent (an answer cut short, a provider's reply): made visible, never sent raw."""
    from swarmchat.textsafe import visible_controls

    sys.stderr.write(f"swarmchat: error: {visible_controls(error.message)}\n")
    if error.hint:
        sys.stderr.write(f"hint: {visible_controls(error.hint)}\n")
    sys.stderr.flush()
    return exit_code(error)


def run(args: list[str]) -> int:
    """Run the CLI with ``args``; return the exit code (the one place codes are decided).
    After SIGTERM or SIGHUP it is 128 + the signal, whatever the framework made of it."""
    try:
        code = _run(args)
    except BaseException:
        if lifecycle.received() is None:
            raise
        code = 0
    signum = lifecycle.received()
    return code if signum is None else 128 + signum


def _run(args: list[str]) -> int:
    try:
        # Without standalone mode the framework returns an exit code (typer.Exit) or None.
        code = app(args=args, prog_name="swarmchat", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except SwarmchatError as exc:
        if debug_enabled():
            traceback.print_exc()
        return report(exc)
    except KeyboardInterrupt:
        return report(InterruptedRunError("interrupted"))
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except SystemExit as exc:  # the framework exits 1 on EPIPE: a closed pipe is not a failure
        if isinstance(exc.__context__, BrokenPipeError):
            _silence_stdout()
            return 0
        raise
    except Exception as exc:
        code = _framework_exit(exc)
        if code is not None:
            return code
        if debug_enabled():
            raise
        hint = "rerun with SWARMCHAT_DEBUG=1 for a traceback and report it"
        return report(SwarmchatError(f"internal error: {type(exc).__name__}: {exc}", hint))


def _framework_exit(exc: Exception) -> int | None:
    """Exit code for the CLI framework's own exceptions (click's, or the copy of click
    that recent Typer versions vendor), recognised by class name to work with both."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Exit" in names:
        return int(getattr(exc, "exit_code", 0))
    if "Abort" in names:
        return report(InterruptedRunError("interrupted"))
    if "UsageError" in names or "ClickException" in names:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        error = UsageError(message.replace("\n", " "), "see 'swarmchat --help'")
        return report(error)
    return None


def _silence_stdout() -> None:
    """After the reader closed the pipe, point stdout at /dev/null so exit stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
