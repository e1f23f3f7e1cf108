"""The ``pushd`` command line: argument parsing and exit codes only, no logic of its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pushd import config, errors

EXIT_OK = 0
EXIT_INVALID = 1  # the input (e.g. queue.yaml) was refused
EXIT_USAGE = 2  # argparse's own code for a bad command line

CHECK_CONFIG_EPILOG = """\
Prints one line per queue (mode, rate, bucket, concurrency, retry policy) and exits 0, or prints
every problem as PATH:LINE:COLUMN: message on stderr and exits 1. Warnings go to stderr and do
not change the exit code. Where pushd refuses what App Engine would accept, the message says so.

examples:
  pushd check-config queue.yaml
  pushd check-config queue.yaml.example
  pushd check-config path/to/app/queue.yaml && echo valid
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pushd",
        description="Self-hosted App Engine Task Queues.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check-config",
        help="validate a queue.yaml and show the queues it defines",
        description="Validate a queue.yaml as pushd and App Engine read it.",
        epilog=CHECK_CONFIG_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("path", metavar="PATH", help="the queue.yaml file to check")
    check.set_defaults(handler=_check_config)
    return parser


def _issue_line(issue: errors.ConfigIssue) -> str:
    # An issue not tied to a line (an unreadable file) reads better without ":0:0".
    if issue.line:
        return str(issue)
    where = f"{issue.path}: " if issue.path else ""
    return f"{issue.file}: {where}{issue.message}"


def _check_config(args: argparse.Namespace) -> int:
    try:
        loaded = config.load_file(args.path)
    except errors.ConfigError as exc:
        for issue in exc.issues:
            print(_issue_line(issue), file=sys.stderr)
        return EXIT_INVALID
    for warning in loaded.warnings:
        print(f"{_issue_line(warning)} (warning)", file=sys.stderr)
    width = max(len(name) for name in loaded.queues)
    for name, queue in loaded.queues.items():
        implicit = "  (implicit)" if queue.implicit else ""
        print(f"{name:<{width}}  {queue.describe()}{implicit}")
    if loaded.total_storage_limit_bytes is not None:
        print(f"total_storage_limit: {loaded.total_storage_limit_bytes} bytes")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return handler(args)
