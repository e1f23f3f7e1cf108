"""What every client command (``pushdctl add``, ``lease``, ``tasks``, ``queues``, ...) shares:
the :class:`Context` it runs in, paths and paging.

Each command talks to a running daemon over the native API (:class:`pushd.client.Client`) and
prints either aligned tables for people (times as ``in 5s`` / ``3m ago``, or UTC ISO seconds
when further than a day) or, with ``--json``, the daemon's own JSON answer, unchanged, on
stdout (exact times in ``*_us`` fields). Errors go to stderr as one ``pushdctl: <message>`` line.

Exit codes are in :mod:`pushd.cli.exit_codes`.

:mod:`pushd.cli` parses the arguments; every command here is ``(Context, Namespace) -> int``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from pushd import COMMAND, client
from pushd.cli import render

#: Largest page the daemon answers (``pushd.api.native.MAX_PAGE_SIZE``).
MAX_PAGE_SIZE = 1000
#: Page size of ``pushdctl tasks`` and ``pushdctl dead`` without ``--limit``.
DEFAULT_LIMIT = 100


RESULT_MEANING = {
    "TASK_ALREADY_EXISTS": "a task with this name is already in the queue",
    "TOMBSTONED_TASK": "this name was used recently and cannot be reused yet",
}


class UsageError(Exception):
    """The command line asks for something impossible (exit 2)."""


class Api(Protocol):
    """What commands need of :class:`pushd.client.Client` (tests may pass another)."""

    def call(
        self, method: str, path: str, body: object = None, *, query: client.Query | None = None
    ) -> Any: ...


@dataclass
class Context:
    """Where a command reads from and writes to."""

    api: Api
    out: TextIO
    err: TextIO
    now_us: int
    json: bool = False
    token_given: bool = False
    width: int | None = None  # the terminal's: tables are cut to fit; None: never cut

    def emit(self, value: object) -> None:
        """``value`` as stable, indented JSON on stdout."""
        self.out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def lines(self, texts: Sequence[str]) -> None:
        for text in texts:
            self.line(text)

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        right: Sequence[int] = (),
        flexible: Sequence[int] = (),
    ) -> None:
        """Print a table fit to :attr:`width`, narrowing the ``flexible`` columns first."""
        self.lines(render.table(headers, rows, right=right, width=self.width, flexible=flexible))

    def error(self, message: str) -> None:
        self.err.write(f"{COMMAND}: {message}\n")
        self.err.flush()


Command = Callable[[Context, argparse.Namespace], int]


# ------------------------------------------------------------------ paths and paging


def queue_path(queue: str, *parts: str) -> str:
    """``/api/v1/queues/<queue>/<part>/...``, each segment percent-encoded."""
    return "/api/v1/queues/" + "/".join(client.quote(p) for p in (queue, *parts))


def fetch_pages(
    ctx: Context, path: str, *, limit: int | None, after: str | None, key: str = "tasks"
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` items (all with None) of a paged list (the ``key`` of each answer), and
    the cursor if more remain."""
    items: list[dict[str, Any]] = []
    cursor = after
    while True:
        size = MAX_PAGE_SIZE if limit is None else min(MAX_PAGE_SIZE, limit - len(items))
        query: dict[str, str | int] = {"limit": size}
        if cursor:
            query["after"] = cursor
        answer = ctx.api.call("GET", path, query=query)
        items.extend(answer[key])
        cursor = answer.get("next")
        if cursor is None or (limit is not None and len(items) >= limit):
            return items, cursor


def page_limit(args: argparse.Namespace) -> int | None:
    if args.all:
        return None
    limit: int = args.limit if args.limit is not None else DEFAULT_LIMIT
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    return limit


def more_hint(ctx: Context, what: str, command: str, cursor: str | None) -> None:
    if cursor is not None and not ctx.json:
        ctx.error(f"more {what} follow; see them with `{command} --after {cursor}` or --all")
