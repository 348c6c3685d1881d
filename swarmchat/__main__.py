"""Entry point of the ``swarmchat`` command.

``--version`` is answered before the CLI framework is even imported, to keep it instant.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        from swarmchat import __version__

        sys.stdout.write(f"swarmchat {__version__}\n")
        return
    from swarmchat import lifecycle
    from swarmchat.cli import run

    lifecycle.install()
    sys.exit(run(args))


if __name__ == "__main__":
    main()
