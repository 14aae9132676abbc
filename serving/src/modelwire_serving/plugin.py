"""modelwire plugin: adds `modelwire serve` (the same command as `modelwire-serve`).

Registered under the `modelwire` entry-point group. Discovery imports this module
for every modelwire user, so it imports nothing itself: the command line is
loaded only when the `modelwire` CLI builds its parser or runs `serve`.
"""

from __future__ import annotations

from typing import Any

from modelwire import hookimpl


def _configure(parser: Any) -> None:
    from modelwire_serving.cli import configure_parser

    configure_parser(parser)


def _run(args: Any) -> int:
    from modelwire_serving.cli import run

    return run(args)


@hookimpl
def register_commands(cli: Any) -> None:
    """Add `serve` to the `modelwire` command line."""
    cli.add(
        "serve",
        help="Serve a Hugging Face model over HTTP (modelwire-serve)",
        configure=_configure,
        run=_run,
    )
