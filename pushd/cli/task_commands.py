"""``pushdctl add``, ``tasks``, ``delete``, ``run`` and ``lease``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pushd import errors, models, wire
from pushd.cli import context, exit_codes, render

# ------------------------------------------------------------------ adding tasks


def _read_payload(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise context.UsageError(
            f"cannot read the payload file {path}: {exc.strerror or exc}"
        ) from None


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
def shown_anyway(show_done: Callable[[], None], done: Sequence[object]) -> Iterator[None]:
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


def add(ctx: context.Context, args: argparse.Namespace) -> int:
    if args.count < 1:
        raise context.UsageError("--count must be at least 1")
    if args.count > 1 and args.name is not None:
        raise context.UsageError("--count adds tasks with names pushd picks; leave out --name")
    task = build_task(args)
    results: list[dict[str, Any]] = []
    with shown_anyway(lambda: _show_added(ctx, results), results):
        for chunk in _chunks(range(args.count), models.MAX_TASKS_PER_ADD):
            body = task if args.count == 1 else {"tasks": [task] * len(chunk)}
            answer = ctx.api.call("POST", context.queue_path(args.queue, "tasks"), body)
            results.extend(answer["tasks"])
    failed = [r for r in results if r["result"] != "OK"]
    for r in failed:
        meaning = context.RESULT_MEANING.get(r["result"], "refused")
        ctx.error(
            f"task {r['name']!r} was not added to queue {r['queue']!r}: {r['result']} ({meaning})"
        )
    return exit_codes.EXIT_REFUSED if failed else exit_codes.EXIT_OK


def _show_added(ctx: context.Context, results: list[dict[str, Any]]) -> None:
    if ctx.json:
        ctx.emit({"tasks": results})
    elif results:
        rows = [
            [
                render.show(r["name"]),
                render.show(r["queue"]),
                render.when(r["eta_us"], ctx.now_us) if r["result"] == "OK" else "-",
                r["result"],
            ]
            for r in results
        ]
        ctx.table(["TASK", "QUEUE", "ETA", "RESULT"], rows, flexible=(0, 1))


# ------------------------------------------------------------------ tasks


def _tag(t: Mapping[str, Any]) -> str:
    """A task's tag: its text, ``base64:...`` when it is not UTF-8, ``-`` without one."""
    if t.get("tag") is not None:
        return render.show(t["tag"])
    if t.get("tag_base64") is not None:
        return f"base64:{t['tag_base64']}"
    return "-"


def last_outcome(t: Mapping[str, Any]) -> str:
    """A table cell for a task's last attempt: its HTTP status, else why no answer came
    (``refused``, ``timeout``, ...), ``-`` before any."""
    if t.get("last_status") is not None:
        return str(t["last_status"])
    attempt = t.get("last_attempt")
    return render.show(attempt["error"]) if attempt else "-"


def last_attempt_details(t: Mapping[str, Any], now_us: int) -> list[tuple[str, str]]:
    """Detail lines of a task's last attempt: when, what came of it, the message, the URL."""
    attempt = t.get("last_attempt")
    if not attempt:
        return [("last attempt", "-" if t["last_status"] is None else f"HTTP {t['last_status']}")]
    outcome = f"HTTP {attempt['status']}" if attempt["status"] is not None else attempt["error"]
    return [
        ("last attempt", f"{render.when_long(attempt['time_us'], now_us)}: {render.show(outcome)}"),
        ("  message", render.show(attempt["message"])),
        ("  sent to", render.show(attempt["url"])),
    ]


def _task_rows(found: list[dict[str, Any]], now_us: int) -> list[list[str]]:
    return [
        [
            render.show(t["name"]),
            render.when(t["eta_us"], now_us),
            t["method"],
            render.show(t["url"]) if t["method"] != "PULL" else "-",
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
        ("task", render.show(t["name"])),
        ("queue", render.show(t["queue"])),
        ("method", t["method"]),
        ("url", render.show(t["url"])),
    ]
    if not is_dead:  # a dead letter's ETA is no longer a time it will run
        pairs.append(("eta", render.when_long(t["eta_us"], now_us)))
    pairs += [
        ("created", render.when_long(t["created_us"], now_us)),
        ("tag", _tag(t)),
        ("target", render.show(t["target"])),
        (
            "dispatch deadline",
            "-" if t["dispatch_deadline"] is None else f"{t['dispatch_deadline']:g}s",
        ),
        (
            "retry options",
            render.retry_text(t["retry_options"]) if t["retry_options"] else "the queue's",
        ),
        ("retries", str(t["retry_count"])),
        ("executions", str(t["execution_count"])),
        ("first try", render.when_long(t["first_try_us"], now_us)),
        *last_attempt_details(t, now_us),
        ("size", f"{t['size']} bytes"),
    ]
    if is_dead:
        pairs += [
            ("died", render.when_long(t["dead_us"], now_us)),
            ("attempts", str(t["attempts"])),
            ("reason", render.show(t["reason"])),
        ]
    for i, (name, value) in enumerate(headers):
        pairs.append(
            ("headers" if i == 0 else "", f"{render.printable(name)}: {render.printable(value)}")
        )
    pairs.append(
        (f"payload ({t['payload_size']} bytes)", render.show_payload(t.get("payload_base64")))
    )
    return render.details(pairs)


def one_or_page(
    ctx: context.Context, args: argparse.Namespace, collection: str
) -> tuple[list[dict[str, Any]], str | None] | None:
    """``tasks``/``dead`` share this: show the one named item (None returned), or fetch the
    page(s) asked for; with --json the page is printed here too (None returned)."""
    if args.name is not None:
        found = ctx.api.call("GET", context.queue_path(args.queue, collection, args.name))
        if ctx.json:
            ctx.emit(found)
        else:
            ctx.lines(task_details(found, ctx.now_us))
        return None
    items, cursor = context.fetch_pages(
        ctx,
        context.queue_path(args.queue, collection),
        limit=context.page_limit(args),
        after=args.after,
    )
    if ctx.json:
        ctx.emit({"tasks": items, "next": cursor})
        return None
    return items, cursor


def tasks_(ctx: context.Context, args: argparse.Namespace) -> int:
    page = one_or_page(ctx, args, "tasks")
    if page is None:
        return exit_codes.EXIT_OK
    items, cursor = page
    if not items:
        ctx.line(f"no tasks in queue {args.queue}" + (f" after {args.after}" if args.after else ""))
        return exit_codes.EXIT_OK
    ctx.table(_TASK_HEADERS, _task_rows(items, ctx.now_us), right=(5, 6, 7), flexible=(3, 4, 0))
    context.more_hint(ctx, "tasks", f"pushdctl tasks {args.queue}", cursor)
    return exit_codes.EXIT_OK


def delete(ctx: context.Context, args: argparse.Namespace) -> int:
    names: list[str] = list(dict.fromkeys(args.names))  # repeats would be refused
    outcomes: list[dict[str, Any]] = []
    with shown_anyway(lambda: _show_deleted(ctx, outcomes, dead=args.dead), outcomes):
        if args.dead:
            for name in names:
                try:
                    ctx.api.call("DELETE", context.queue_path(args.queue, "dead", name))
                except errors.UnknownTaskError:
                    outcomes.append({"name": name, "deleted": False})
                else:
                    outcomes.append({"name": name, "deleted": True})
        else:
            for chunk in _chunks(names, wire.MAX_NAMES_PER_DELETE):
                body = {"names": list(chunk)}
                answer = ctx.api.call("POST", context.queue_path(args.queue, "delete"), body)
                outcomes.extend(answer["tasks"])
    missing = [o["name"] for o in outcomes if not o["deleted"]]
    for name in missing:
        if args.dead:
            ctx.error(f"queue {args.queue!r} has no dead letter {name!r}")
        else:
            ctx.error(
                f"queue {args.queue!r} has no task {name!r} (deleted already, or never added)"
            )
    return exit_codes.EXIT_REFUSED if missing else exit_codes.EXIT_OK


def _show_deleted(ctx: context.Context, outcomes: list[dict[str, Any]], *, dead: bool) -> None:
    if ctx.json:
        ctx.emit({"tasks": outcomes})
    else:
        what = "dead letter" if dead else "task"
        ctx.lines([f"deleted {what} {render.show(o['name'])}" for o in outcomes if o["deleted"]])


def run_now(ctx: context.Context, args: argparse.Namespace) -> int:
    found = ctx.api.call("POST", context.queue_path(args.queue, "tasks", args.name, "run"))
    if ctx.json:
        ctx.emit(found)
    else:
        due = render.when_long(found["eta_us"], ctx.now_us)
        ctx.line(f"task {render.show(found['name'])} of queue {found['queue']} is due {due}")
    return exit_codes.EXIT_OK


# ------------------------------------------------------------------ pull queues


def lease(ctx: context.Context, args: argparse.Namespace) -> int:
    body: dict[str, object] = {
        "lease_seconds": args.seconds,
        "max_tasks": args.max,
        "group_by_tag": bool(args.by_tag or args.tag is not None),
    }
    if args.tag is not None:
        body["tag"] = args.tag
    answer = ctx.api.call("POST", context.queue_path(args.queue, "lease"), body)
    if ctx.json:
        ctx.emit(answer)
        return exit_codes.EXIT_OK
    leased = answer["tasks"]
    if not leased:
        ctx.line(f"no tasks to lease in queue {args.queue}")
        return exit_codes.EXIT_OK
    rows = [
        [
            render.show(t["name"]),
            render.iso(t["eta_us"]),
            _tag(t),
            str(t["retry_count"]),
            render.clip(render.show_payload(t.get("payload_base64"))),
        ]
        for t in leased
    ]
    ctx.table(
        ["TASK", "LEASED_UNTIL", "TAG", "RETRIES", "PAYLOAD"], rows, right=(3,), flexible=(4, 2, 0)
    )
    return exit_codes.EXIT_OK
