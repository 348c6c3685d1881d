"""Streaming-Markdown render cost (issue 4): linear in the answer, and cheaper than
streaming the same text raw.

Feeds a synthetic answer (paragraphs, lists, code blocks; about 4 characters per token)
to the renderer in 4-character deltas, on a 100-column colour console that thinks it is
an interactive terminal (so the live region runs too), and measures process CPU time
(all threads). "raw" prints each delta as it comes, the way a renderer without Markdown
would. Targets: 20k tokens <= 2.2x the CPU of 10k; streaming Markdown <= 2x raw.
Not a test: run ``make bench``.
"""

from __future__ import annotations

import io
import random
import time

from rich.console import Console
from rich.text import Text

from swarmchat.events import MessageCompleted, RunFinished, RunStarted, TextDelta
from swarmchat.render.tty import RichRenderer
from swarmchat.swarm import parse_swarm

SWARM = parse_swarm("agents:\n  a:\n    description: x\n", "bench")
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "model",
    "agent",
    "swarm",
    "code",
    "file",
    "thread",
]


def answer(tokens: int, seed: int = 1) -> str:
    rnd, parts, n = random.Random(seed), [], 0
    while n < tokens:
        kind = rnd.random()
        if kind < 0.15:
            parts.append("```python\n" + "\n".join(f"x{i} = {i} * 2" for i in range(8)) + "\n```\n\n")
            n += 60
        elif kind < 0.3:
            parts.append("\n".join(f"- item {' '.join(rnd.choices(WORDS, k=6))}" for _ in range(4)) + "\n\n")
            n += 30
        else:
            parts.append(" ".join(rnd.choices(WORDS, k=60)) + "\n\n")
            n += 60
    return "".join(parts)


def console() -> Console:
    return Console(
        file=io.StringIO(),
        width=100,
        height=40,
        force_terminal=True,
        force_interactive=True,
        color_system="truecolor",
    )


def markdown_cpu(text: str) -> float:
    ids = {"agent": "a", "run_id": "r", "depth": 0}
    renderer = RichRenderer(console(), SWARM)
    start = time.process_time()
    renderer(RunStarted(**ids, caller="user", thread_id="t", model="m"))
    for i in range(0, len(text), 4):
        renderer(TextDelta(**ids, text=text[i : i + 4]))
    renderer(MessageCompleted(**ids, text=text))
    renderer(RunFinished(**ids, caller="user", thread_id="t", status="completed", text=text))
    return time.process_time() - start


def raw_cpu(text: str) -> float:
    c = console()
    start = time.process_time()
    for i in range(0, len(text), 4):
        c.print(Text(text[i : i + 4], style="cyan"), end="")
    return time.process_time() - start


def best(fn, text: str, runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    return min(fn(text) for _ in range(runs))


def main() -> None:
    small, large = answer(10_000), answer(20_000)
    md_small, md_large = best(markdown_cpu, small), best(markdown_cpu, large)
    raw_small, raw_large = best(raw_cpu, small), best(raw_cpu, large)
    print(f"{'answer':14} {'chars':>7} {'markdown s':>11} {'raw s':>8} {'md/raw':>7}")
    print(f"{'10k tokens':14} {len(small):7} {md_small:11.3f} {raw_small:8.3f} {md_small / raw_small:7.2f}")
    print(f"{'20k tokens':14} {len(large):7} {md_large:11.3f} {raw_large:8.3f} {md_large / raw_large:7.2f}")
    growth = md_large / md_small
    print(f"growth 20k/10k: markdown {growth:.2f}x (target <= 2.2x), raw {raw_large / raw_small:.2f}x")
    # Worst case for a block splitter: one paragraph that never settles until the end.
    one_small, one_large = " ".join(WORDS * 3000)[:40_000], " ".join(WORDS * 6000)[:80_000]
    a, b = best(markdown_cpu, one_small), best(markdown_cpu, one_large)
    print(f"one 40k/80k-char paragraph: markdown {a:.3f} s / {b:.3f} s, growth {b / a:.2f}x")


if __name__ == "__main__":
    main()
