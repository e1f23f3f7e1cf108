"""The ``pushdctl`` command line (``python -m pushd`` too): argument parsing and exit codes.

:mod:`~pushd.cli.parser` builds the parser (help texts in :mod:`~pushd.cli.help_texts`, argument types
in :mod:`~pushd.cli.arguments`); :mod:`~pushd.cli.daemon_commands` holds the commands that run
on the daemon's side; the client commands, loaded only when one runs, talk to a daemon over the
native API: :mod:`~pushd.cli.queue_commands`, :mod:`~pushd.cli.task_commands`,
:mod:`~pushd.cli.dead_commands`, run by :mod:`~pushd.cli.runner` and shown by
:mod:`~pushd.cli.render`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pushd.cli.exit_codes import (
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from pushd.cli.parser import build_parser, version_text

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "version_text",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return handler(args)
