"""The command line's client commands (``pushdctl add``, ``lease``, ``tasks``, ``queues``, ...).

Each command talks to a running daemon over the native API (:class:`pushd.client.Client`) and
prints either aligned tables for people (times as ``in 5s`` / ``3m ago``, or UTC ISO seconds
when further than a day) or, with ``--json``, the daemon's own JSON answer, unchanged, on
stdout (exact times in ``*_us`` fields). Errors go to stderr as one ``pushdctl: <message>`` line.

Exit codes (also in ``pushd --help``):

* 0 :data:`EXIT_OK`: everything asked for was done;
* 1 :data:`EXIT_REFUSED`: the daemon refused (a :class:`errors.Error`), or part of the request
  was not done (a task not added, a name not found); what did succeed is printed first;
* 2 :data:`EXIT_USAGE`: a bad command line (argparse's own code), an unreadable input file;
* 3 :data:`EXIT_UNREACHABLE`: pushd could not be reached, or answered a transient error
  (:class:`errors.TransientError`): trying again later may work;
* 130 :data:`EXIT_INTERRUPTED`: Ctrl-C.

:mod:`pushd.cli` parses the arguments; every command here is ``(Context, Namespace) -> int``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime
import difflib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from pushd import COMMAND, client, clock, errors, models, wire

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

#: Largest page the daemon answers (``pushd.api.native.MAX_PAGE_SIZE``).
MAX_PAGE_SIZE = 1000
#: Page size of ``pushdctl tasks`` and ``pushdctl dead`` without ``--limit``.
DEFAULT_LIMIT = 100
#: Tables show times closer than this as "in 5s" / "3m ago", others as UTC ISO seconds.
RELATIVE_WITHIN_US = 86_400 * clock.US_PER_SECOND

#: Widest payload a table shows; ``pushdctl tasks QUEUE NAME`` and --json show all of it.
PAYLOAD_CELL_WIDTH = 60

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
        self.lines(table(headers, rows, right=right, width=self.width, flexible=flexible))

    def error(self, message: str) -> None:
        self.err.write(f"{COMMAND}: {message}\n")
        self.err.flush()


Command = Callable[[Context, argparse.Namespace], int]


# ------------------------------------------------------------------ formatting


def iso(us: int | None) -> str:
    """UTC ISO 8601 to the second, e.g. ``2024-05-01T12:00:00Z``; ``-`` for None."""
    if us is None:
        return "-"
    seconds = us // clock.US_PER_SECOND
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"@{seconds}"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def span(seconds: int) -> str:
    """A duration for people: ``45s``, ``4m10s``, ``3h05m``, ``2d04h``."""
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s" if seconds else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if hours else f"{days}d"


def relative(us: int, now_us: int) -> str:
    """``in 5s``, ``3m ago`` or ``now`` (within a second)."""
    delta = us - now_us
    seconds = abs(delta) // clock.US_PER_SECOND
    if seconds == 0:
        return "now"
    return f"in {span(seconds)}" if delta > 0 else f"{span(seconds)} ago"


def when(us: int | None, now_us: int) -> str:
    """A table cell: relative within a day, else ISO; ``-`` for None."""
    if us is None:
        return "-"
    if abs(us - now_us) < RELATIVE_WITHIN_US:
        return relative(us, now_us)
    return iso(us)


def when_long(us: int | None, now_us: int) -> str:
    """A detail line: ``2024-05-01T12:00:00Z (in 5s)``."""
    if us is None:
        return "-"
    return f"{iso(us)} ({relative(us, now_us)})"


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` on one line: control and other unprintable characters escaped."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


def show_payload(encoded: str | None) -> str:
    """A payload for people: its text if UTF-8 (escaped onto one line), else ``base64:...``."""
    if encoded is None:
        return "-"
    try:
        data = base64.b64decode(encoded)
    except (binascii.Error, ValueError):
        return f"base64:{encoded}"
    if not data:
        return "(empty)"
    try:
        return printable(data.decode("utf-8"))
    except UnicodeDecodeError:
        return f"base64:{encoded}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def show(value: object) -> str:
    """A value in a table cell or detail line; ``-`` for None or empty text."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return printable(str(value))


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[int] = (),
    width: int | None = None,
    flexible: Sequence[int] = (),
) -> list[str]:
    """Lines of an aligned table: two spaces between columns, ``right`` columns right-aligned,
    no trailing spaces. With a ``width`` (the terminal's), the ``flexible`` columns, in that
    order, are narrowed (cells cut with ``…``) until the lines fit, or down to their minimum."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    if width is not None:
        widths = _fit(widths, headers, width, flexible)

    def fmt(cells: Sequence[str]) -> str:
        parts = [
            clip(cell, w).rjust(w) if i in right else clip(cell, w).ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [fmt(headers), *(fmt(row) for row in rows)]


#: A narrowed column keeps at least this many characters (or its header's width).
MIN_COLUMN_WIDTH = 8


def _fit(
    widths: list[int], headers: Sequence[str], width: int, flexible: Sequence[int]
) -> list[int]:
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    fitted = list(widths)
    for i in flexible:
        if excess <= 0:
            break
        least = max(len(headers[i]), MIN_COLUMN_WIDTH)
        cut = min(excess, max(0, fitted[i] - least))
        fitted[i] -= cut
        excess -= cut
    return fitted


def terminal_width(stream: TextIO) -> int | None:
    """The width to fit tables in: ``$COLUMNS``, else the terminal's; None when ``stream`` is
    not a terminal (a pipe or a file gets every character, for grep)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if not stream.isatty():
            return None
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return None


def details(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """``key:  value`` lines with the values aligned."""
    width = max((len(key) for key, _ in pairs), default=0) + 1
    return [f"{key + ':' if key else '':<{width}}  {value}".rstrip() for key, value in pairs]


def clip(text: str, width: int = PAYLOAD_CELL_WIDTH) -> str:
    """``text`` cut to ``width`` characters, ending in ``…`` when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def retry_text(options: Mapping[str, Any] | None) -> str:
    """``retry_limit=4 age_limit=2d min_backoff=0.1s ...`` for the options that are set."""
    if options is None:
        return "-"
    parts = []
    if options.get("task_retry_limit") is not None:
        parts.append(f"retry_limit={options['task_retry_limit']}")
    if options.get("task_age_limit") is not None:
        parts.append(f"age_limit={span(int(options['task_age_limit']))}")
    if options.get("min_backoff_seconds") is not None:
        parts.append(f"min_backoff={options['min_backoff_seconds']:g}s")
    if options.get("max_backoff_seconds") is not None:
        parts.append(f"max_backoff={options['max_backoff_seconds']:g}s")
    if options.get("max_doublings") is not None:
        parts.append(f"max_doublings={options['max_doublings']}")
    return " ".join(parts) or "App Engine's defaults"


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


def _page_limit(args: argparse.Namespace) -> int | None:
    if args.all:
        return None
    limit: int = args.limit if args.limit is not None else DEFAULT_LIMIT
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    return limit


def _more_hint(ctx: Context, what: str, command: str, cursor: str | None) -> None:
    if cursor is not None and not ctx.json:
        ctx.error(f"more {what} follow; see them with `{command} --after {cursor}` or --all")


# ------------------------------------------------------------------ queues


def _queue_state(q: Mapping[str, Any]) -> str:
    if q["stats"].get("removed"):  # gone from queue.yaml, its tasks kept
        return "removed"
    return "paused" if q["stats"]["paused"] else "running"


def _rate(q: Mapping[str, Any]) -> str:
    if q["mode"] != "push":
        return "-"
    rate, enforced = q.get("rate_per_second"), q["stats"].get("enforced_rate")
    if isinstance(rate, int | float) and isinstance(enforced, int | float) and enforced < rate:
        return f"{q['rate']} (now {enforced:g}/s)"
    return show(q["rate"])


def queues(ctx: Context, args: argparse.Namespace) -> int:
    """Every queue, however many pages the API answers them in."""
    found, _ = fetch_pages(ctx, "/api/v1/queues", limit=None, after=None, key="queues")
    if ctx.json:
        ctx.emit({"queues": found})
        return EXIT_OK
    rows = []
    for q in found:
        s = q["stats"]
        rows.append(
            [
                show(q["name"]),
                q["mode"],
                _queue_state(q),
                _rate(q),
                show(q["bucket_size"]),
                show(q["max_concurrent_requests"]),
                str(s["tasks"]),
                when(s["oldest_eta_us"], ctx.now_us),
                str(s["in_flight"]),
                str(s["executed_last_minute"]),
                str(s["dead_letters"]),
            ]
        )
    headers = [
        "QUEUE",
        "MODE",
        "STATE",
        "RATE",
        "BUCKET",
        "MAX_CONCURRENT",
        "TASKS",
        "OLDEST_ETA",
        "IN_FLIGHT",
        "LAST_MINUTE",
        "DEAD",
    ]
    ctx.table(headers, rows, right=(4, 5, 6, 8, 9, 10), flexible=(0, 3))
    return EXIT_OK


def queue_details(q: Mapping[str, Any], now_us: int) -> list[str]:
    s = q["stats"]
    push = q["mode"] == "push"
    pairs = [("queue", show(q["name"])), ("mode", q["mode"]), ("state", _queue_state(q))]
    if push:
        pairs += [
            ("rate", show(q["rate"])),
            ("enforced rate", f"{s['enforced_rate']:g}/s"),
            ("bucket size", show(q["bucket_size"])),
            ("max concurrent", show(q["max_concurrent_requests"])),
            ("target", show(q["target"])),
        ]
    pairs += [
        ("retry parameters", retry_text(q["retry_parameters"])),
        ("tasks", str(s["tasks"])),
        ("oldest eta", when_long(s["oldest_eta_us"], now_us)),
    ]
    if push:
        pairs += [
            ("in flight", str(s["in_flight"])),
            ("executed last minute", str(s["executed_last_minute"])),
        ]
    else:
        pairs.append(("leased last minute", str(s["executed_last_minute"])))
    pairs.append(("dead letters", str(s["dead_letters"])))
    return details(pairs)


def stats(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.api.call("GET", queue_path(args.queue))
    if ctx.json:
        ctx.emit(answer)
    else:
        ctx.lines(queue_details(answer, ctx.now_us))
    return EXIT_OK


def pause(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.api.call("POST", queue_path(args.queue, "pause"))
    if ctx.json:
        ctx.emit(answer)
    else:
        ctx.line(f"paused queue {answer['name']} ({plural(answer['stats']['tasks'], 'task')} wait)")
    return EXIT_OK


def resume(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.api.call("POST", queue_path(args.queue, "resume"))
    if ctx.json:
        ctx.emit(answer)
        return EXIT_OK
    if answer["stats"]["paused"]:
        ctx.line(
            f"resumed queue {answer['name']}, but queue.yaml still pauses it (rate 0 or "
            "the queue is no longer defined there)"
        )
    else:
        ctx.line(f"resumed queue {answer['name']} ({plural(answer['stats']['tasks'], 'task')})")
    return EXIT_OK


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def purge(ctx: Context, args: argparse.Namespace) -> int:
    if not args.yes:
        if not _stdin_is_tty():
            raise UsageError(
                f"purge deletes every task of queue {args.queue!r} for good; add --yes to confirm"
            )
        ctx.err.write(f"delete every task of queue {args.queue!r} for good? [y/N] ")
        ctx.err.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            ctx.error("nothing purged")
            return EXIT_REFUSED
    answer = ctx.api.call("POST", queue_path(args.queue, "purge"))
    if ctx.json:
        ctx.emit(answer)
    else:
        ctx.line(f"purged {plural(answer['purged'], 'task')} from queue {answer['queue']}")
    return EXIT_OK


# ------------------------------------------------------------------ adding tasks


def _read_payload(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read the payload file {path}: {exc.strerror or exc}") from None


def build_task(args: argparse.Namespace) -> dict[str, object]:
    """The task object of ``pushdctl add``'s options; unset options are left out."""
    task: dict[str, object] = {}
    for field, value in (
        ("name", args.name),
        ("method", args.method),
        ("url", args.url),
        ("countdown", args.countdown),
        ("eta", args.eta),
        ("tag", args.tag),
        ("target", args.target),
        ("dispatch_deadline", args.dispatch_deadline),
        ("namespace", args.namespace),
    ):
        if value is not None:
            task[field] = value
    if args.payload is not None:
        task["payload"] = args.payload
    elif args.payload_file is not None:
        task["payload_base64"] = wire.b64encode(_read_payload(args.payload_file))
    if args.header:
        task["headers"] = [list(pair) for pair in args.header]
    if args.param:
        params: dict[str, list[str]] = {}
        for key, value in args.param:
            params.setdefault(key, []).append(value)
        task["params"] = {k: v[0] if len(v) == 1 else v for k, v in params.items()}
    retry = {
        "task_retry_limit": args.retry_limit,
        "task_age_limit": args.age_limit,
        "min_backoff_seconds": args.min_backoff,
        "max_backoff_seconds": args.max_backoff,
        "max_doublings": args.max_doublings,
    }
    if any(v is not None for v in retry.values()):
        task["retry_options"] = {k: v for k, v in retry.items() if v is not None}
    return task


@contextlib.contextmanager
def _shown_anyway(show_done: Callable[[], None], done: Sequence[object]) -> Iterator[None]:
    """Show what was done: always on success; on failure only if something was done, so a
    request refused outright prints nothing on stdout."""
    try:
        yield
    except BaseException:
        if done:
            show_done()
        raise
    show_done()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def add(ctx: Context, args: argparse.Namespace) -> int:
    if args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.count > 1 and args.name is not None:
        raise UsageError("--count adds tasks with names pushd picks; leave out --name")
    task = build_task(args)
    results: list[dict[str, Any]] = []
    with _shown_anyway(lambda: _show_added(ctx, results), results):
        for chunk in _chunks(range(args.count), models.MAX_TASKS_PER_ADD):
            body = task if args.count == 1 else {"tasks": [task] * len(chunk)}
            answer = ctx.api.call("POST", queue_path(args.queue, "tasks"), body)
            results.extend(answer["tasks"])
    failed = [r for r in results if r["result"] != "OK"]
    for r in failed:
        meaning = RESULT_MEANING.get(r["result"], "refused")
        ctx.error(
            f"task {r['name']!r} was not added to queue {r['queue']!r}: {r['result']} ({meaning})"
        )
    return EXIT_REFUSED if failed else EXIT_OK


def _show_added(ctx: Context, results: list[dict[str, Any]]) -> None:
    if ctx.json:
        ctx.emit({"tasks": results})
    elif results:
        rows = [
            [
                show(r["name"]),
                show(r["queue"]),
                when(r["eta_us"], ctx.now_us) if r["result"] == "OK" else "-",
                r["result"],
            ]
            for r in results
        ]
        ctx.table(["TASK", "QUEUE", "ETA", "RESULT"], rows, flexible=(0, 1))


# ------------------------------------------------------------------ tasks


def _tag(t: Mapping[str, Any]) -> str:
    """A task's tag: its text, ``base64:...`` when it is not UTF-8, ``-`` without one."""
    if t.get("tag") is not None:
        return show(t["tag"])
    if t.get("tag_base64") is not None:
        return f"base64:{t['tag_base64']}"
    return "-"


def last_outcome(t: Mapping[str, Any]) -> str:
    """A table cell for a task's last attempt: its HTTP status, else why no answer came
    (``refused``, ``timeout``, ...), ``-`` before any."""
    if t.get("last_status") is not None:
        return str(t["last_status"])
    attempt = t.get("last_attempt")
    return show(attempt["error"]) if attempt else "-"


def last_attempt_details(t: Mapping[str, Any], now_us: int) -> list[tuple[str, str]]:
    """Detail lines of a task's last attempt: when, what came of it, the message, the URL."""
    attempt = t.get("last_attempt")
    if not attempt:
        return [("last attempt", "-" if t["last_status"] is None else f"HTTP {t['last_status']}")]
    outcome = f"HTTP {attempt['status']}" if attempt["status"] is not None else attempt["error"]
    return [
        ("last attempt", f"{when_long(attempt['time_us'], now_us)}: {show(outcome)}"),
        ("  message", show(attempt["message"])),
        ("  sent to", show(attempt["url"])),
    ]


def _task_rows(found: list[dict[str, Any]], now_us: int) -> list[list[str]]:
    return [
        [
            show(t["name"]),
            when(t["eta_us"], now_us),
            t["method"],
            show(t["url"]) if t["method"] != "PULL" else "-",
            _tag(t),
            str(t["retry_count"]),
            last_outcome(t),
            str(t["payload_size"]),
        ]
        for t in found
    ]


_TASK_HEADERS = ["TASK", "ETA", "METHOD", "URL", "TAG", "RETRIES", "LAST_STATUS", "PAYLOAD_BYTES"]


def task_details(t: Mapping[str, Any], now_us: int) -> list[str]:
    headers = t.get("headers") or []
    is_dead = "dead_us" in t
    pairs = [
        ("task", show(t["name"])),
        ("queue", show(t["queue"])),
        ("method", t["method"]),
        ("url", show(t["url"])),
    ]
    if not is_dead:  # a dead letter's ETA is no longer a time it will run
        pairs.append(("eta", when_long(t["eta_us"], now_us)))
    pairs += [
        ("created", when_long(t["created_us"], now_us)),
        ("tag", _tag(t)),
        ("target", show(t["target"])),
        (
            "dispatch deadline",
            "-" if t["dispatch_deadline"] is None else f"{t['dispatch_deadline']:g}s",
        ),
        ("retry options", retry_text(t["retry_options"]) if t["retry_options"] else "the queue's"),
        ("retries", str(t["retry_count"])),
        ("executions", str(t["execution_count"])),
        ("first try", when_long(t["first_try_us"], now_us)),
        *last_attempt_details(t, now_us),
        ("size", f"{t['size']} bytes"),
    ]
    if is_dead:
        pairs += [
            ("died", when_long(t["dead_us"], now_us)),
            ("attempts", str(t["attempts"])),
            ("reason", show(t["reason"])),
        ]
    for i, (name, value) in enumerate(headers):
        pairs.append(("headers" if i == 0 else "", f"{printable(name)}: {printable(value)}"))
    pairs.append((f"payload ({t['payload_size']} bytes)", show_payload(t.get("payload_base64"))))
    return details(pairs)


def _one_or_page(
    ctx: Context, args: argparse.Namespace, collection: str
) -> tuple[list[dict[str, Any]], str | None] | None:
    """``tasks``/``dead`` share this: show the one named item (None returned), or fetch the
    page(s) asked for; with --json the page is printed here too (None returned)."""
    if args.name is not None:
        found = ctx.api.call("GET", queue_path(args.queue, collection, args.name))
        if ctx.json:
            ctx.emit(found)
        else:
            ctx.lines(task_details(found, ctx.now_us))
        return None
    items, cursor = fetch_pages(
        ctx, queue_path(args.queue, collection), limit=_page_limit(args), after=args.after
    )
    if ctx.json:
        ctx.emit({"tasks": items, "next": cursor})
        return None
    return items, cursor


def tasks_(ctx: Context, args: argparse.Namespace) -> int:
    page = _one_or_page(ctx, args, "tasks")
    if page is None:
        return EXIT_OK
    items, cursor = page
    if not items:
        ctx.line(f"no tasks in queue {args.queue}" + (f" after {args.after}" if args.after else ""))
        return EXIT_OK
    ctx.table(_TASK_HEADERS, _task_rows(items, ctx.now_us), right=(5, 6, 7), flexible=(3, 4, 0))
    _more_hint(ctx, "tasks", f"pushdctl tasks {args.queue}", cursor)
    return EXIT_OK


def delete(ctx: Context, args: argparse.Namespace) -> int:
    names: list[str] = list(dict.fromkeys(args.names))  # repeats would be refused
    outcomes: list[dict[str, Any]] = []
    with _shown_anyway(lambda: _show_deleted(ctx, outcomes, dead=args.dead), outcomes):
        if args.dead:
            for name in names:
                try:
                    ctx.api.call("DELETE", queue_path(args.queue, "dead", name))
                except errors.UnknownTaskError:
                    outcomes.append({"name": name, "deleted": False})
                else:
                    outcomes.append({"name": name, "deleted": True})
        else:
            for chunk in _chunks(names, wire.MAX_NAMES_PER_DELETE):
                body = {"names": list(chunk)}
                answer = ctx.api.call("POST", queue_path(args.queue, "delete"), body)
                outcomes.extend(answer["tasks"])
    missing = [o["name"] for o in outcomes if not o["deleted"]]
    for name in missing:
        if args.dead:
            ctx.error(f"queue {args.queue!r} has no dead letter {name!r}")
        else:
            ctx.error(
                f"queue {args.queue!r} has no task {name!r} (deleted already, or never added)"
            )
    return EXIT_REFUSED if missing else EXIT_OK


def _show_deleted(ctx: Context, outcomes: list[dict[str, Any]], *, dead: bool) -> None:
    if ctx.json:
        ctx.emit({"tasks": outcomes})
    else:
        what = "dead letter" if dead else "task"
        ctx.lines([f"deleted {what} {show(o['name'])}" for o in outcomes if o["deleted"]])


def run_now(ctx: Context, args: argparse.Namespace) -> int:
    found = ctx.api.call("POST", queue_path(args.queue, "tasks", args.name, "run"))
    if ctx.json:
        ctx.emit(found)
    else:
        due = when_long(found["eta_us"], ctx.now_us)
        ctx.line(f"task {show(found['name'])} of queue {found['queue']} is due {due}")
    return EXIT_OK


# ------------------------------------------------------------------ pull queues


def lease(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, object] = {
        "lease_seconds": args.seconds,
        "max_tasks": args.max,
        "group_by_tag": bool(args.by_tag or args.tag is not None),
    }
    if args.tag is not None:
        body["tag"] = args.tag
    answer = ctx.api.call("POST", queue_path(args.queue, "lease"), body)
    if ctx.json:
        ctx.emit(answer)
        return EXIT_OK
    leased = answer["tasks"]
    if not leased:
        ctx.line(f"no tasks to lease in queue {args.queue}")
        return EXIT_OK
    rows = [
        [
            show(t["name"]),
            iso(t["eta_us"]),
            _tag(t),
            str(t["retry_count"]),
            clip(show_payload(t.get("payload_base64"))),
        ]
        for t in leased
    ]
    ctx.table(
        ["TASK", "LEASED_UNTIL", "TAG", "RETRIES", "PAYLOAD"], rows, right=(3,), flexible=(4, 2, 0)
    )
    return EXIT_OK


# ------------------------------------------------------------------ dead letters


def dead(ctx: Context, args: argparse.Namespace) -> int:
    page = _one_or_page(ctx, args, "dead")
    if page is None:
        return EXIT_OK
    items, cursor = page
    if not items:
        ctx.line(f"no dead letters in queue {args.queue}")
        return EXIT_OK
    rows = [
        [
            show(d["name"]),
            when(d["dead_us"], ctx.now_us),
            str(d["attempts"]),
            last_outcome(d),
            show(d["url"]) if d["method"] != "PULL" else "-",
            show(d["reason"]),
        ]
        for d in items
    ]
    headers = ["TASK", "DIED", "ATTEMPTS", "LAST_STATUS", "URL", "REASON"]
    ctx.table(headers, rows, right=(2, 3), flexible=(5, 4, 0))
    _more_hint(ctx, "dead letters", f"pushdctl dead {args.queue}", cursor)
    return EXIT_OK


def redrive(ctx: Context, args: argparse.Namespace) -> int:
    if args.all and args.names:
        raise UsageError("give dead letters' names or --all, not both")
    if not args.all and not args.names:
        raise UsageError("give the names of the dead letters to redrive, or --all")
    if args.all:
        items, _ = fetch_pages(ctx, queue_path(args.queue, "dead"), limit=None, after=None)
        names = [d["name"] for d in items]
        if not names and not ctx.json:
            ctx.line(f"no dead letters in queue {args.queue}")
    else:
        names = list(dict.fromkeys(args.names))
    redriven: list[dict[str, Any]] = []
    missing: list[str] = []
    with _shown_anyway(lambda: _show_redriven(ctx, redriven), redriven):
        for name in names:
            try:
                redriven.append(
                    ctx.api.call("POST", queue_path(args.queue, "dead", name, "redrive"))
                )
            except errors.UnknownTaskError:
                missing.append(name)
    for name in missing:
        ctx.error(f"queue {args.queue!r} has no dead letter {name!r}")
    return EXIT_REFUSED if missing else EXIT_OK


def _show_redriven(ctx: Context, redriven: list[dict[str, Any]]) -> None:
    if ctx.json:
        ctx.emit({"tasks": redriven})
    elif redriven:
        rows = [[show(t["name"]), when(t["eta_us"], ctx.now_us)] for t in redriven]
        ctx.table(["REDRIVEN", "ETA"], rows, flexible=(0,))


# ------------------------------------------------------------------ running a command

COMMANDS: dict[str, Command] = {
    "queues": queues,
    "stats": stats,
    "pause": pause,
    "resume": resume,
    "purge": purge,
    "add": add,
    "tasks": tasks_,
    "delete": delete,
    "run": run_now,
    "lease": lease,
    "dead": dead,
    "redrive": redrive,
}


def _permission_hint(exc: errors.PermissionDeniedError, token_given: bool) -> str:
    if token_given:
        return exc.message
    return f"{exc.message} (give a token with --token or {client.TOKEN_ENV})"


def execute(command: Command, ctx: Context, args: argparse.Namespace) -> int:
    """Run ``command``, turning each failure into its message on stderr and its exit code."""
    try:
        return command(ctx, args)
    except UsageError as exc:
        ctx.error(str(exc))
        return EXIT_USAGE
    except errors.TransientError as exc:
        ctx.error(exc.message)
        return EXIT_UNREACHABLE
    except errors.PermissionDeniedError as exc:
        ctx.error(_permission_hint(exc, ctx.token_given))
        return EXIT_REFUSED
    except errors.UnknownQueueError as exc:
        ctx.error(exc.message + _closest_queue(ctx, getattr(args, "queue", None)))
        return EXIT_REFUSED
    except errors.Error as exc:
        ctx.error(exc.message)
        return EXIT_REFUSED
    except (KeyError, TypeError) as exc:  # JSON, but not the shape pushd answers
        ctx.error(
            f"the server did not answer as pushd does (no {exc} in its answer); is pushd "
            f"listening there? (set the address with --server or {client.URL_ENV})"
        )
        return EXIT_REFUSED


def _closest_queue(ctx: Context, queue: str | None) -> str:
    """``; did you mean 'emails'?`` for a mistyped queue name, else the queues there are."""
    if queue is None:
        return ""
    try:
        names = [str(q["name"]) for q in ctx.api.call("GET", "/api/v1/queues")["queues"]]
    except (errors.Error, KeyError, TypeError):  # only a hint: the error itself is said anyway
        return ""
    close = difflib.get_close_matches(queue, names, n=1, cutoff=0.6)
    if not close:
        close = [n for n in names if n.lower() == queue.lower()]
    if close:
        return f"; did you mean {close[0]!r}?"
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f" (the queues are: {shown})" if names else ""


def run(
    args: argparse.Namespace,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    now_us: int | None = None,
) -> int:
    """The command ``args.client_command`` against the daemon ``args.server``; its exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    command = COMMANDS[args.client_command]
    try:
        api = client.Client(args.server, token=args.token, timeout_s=args.timeout)
    except errors.Error as exc:  # a malformed --server or PUSHD_URL
        err.write(f"{COMMAND}: {exc.message}\n")
        return EXIT_USAGE
    ctx = Context(
        api=api,
        out=out,
        err=err,
        now_us=clock.SystemClock().now_us() if now_us is None else now_us,
        json=args.json,
        token_given=api.token is not None,
        width=terminal_width(out),
    )
    try:
        with api:
            code = execute(command, ctx, args)
        out.flush()
    except KeyboardInterrupt:
        err.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `pushdctl tasks q --all | head`: stop quietly
        _silence_stdout()
        return EXIT_REFUSED
    return code


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
