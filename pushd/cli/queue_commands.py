"""``pushdctl queues``, ``stats``, ``pause``, ``resume``, ``purge``; ``oidc-rotate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from pushd.cli import context, exit_codes, render

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
    return render.show(q["rate"])


def queues(ctx: context.Context, args: argparse.Namespace) -> int:
    """Every queue, however many pages the API answers them in."""
    found, _ = context.fetch_pages(ctx, "/api/v1/queues", limit=None, after=None, key="queues")
    if ctx.json:
        ctx.emit({"queues": found})
        return exit_codes.EXIT_OK
    rows = []
    for q in found:
        s = q["stats"]
        rows.append(
            [
                render.show(q["name"]),
                q["mode"],
                _queue_state(q),
                _rate(q),
                render.show(q["bucket_size"]),
                render.show(q["max_concurrent_requests"]),
                str(s["tasks"]),
                render.when(s["oldest_eta_us"], ctx.now_us),
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
    return exit_codes.EXIT_OK


def queue_details(q: Mapping[str, Any], now_us: int) -> list[str]:
    s = q["stats"]
    push = q["mode"] == "push"
    pairs = [("queue", render.show(q["name"])), ("mode", q["mode"]), ("state", _queue_state(q))]
    if push:
        pairs += [
            ("rate", render.show(q["rate"])),
            ("enforced rate", f"{s['enforced_rate']:g}/s"),
            ("bucket size", render.show(q["bucket_size"])),
            ("max concurrent", render.show(q["max_concurrent_requests"])),
            ("target", render.show(q["target"])),
        ]
    pairs += [
        ("retry parameters", render.retry_text(q["retry_parameters"])),
        ("tasks", str(s["tasks"])),
        ("oldest eta", render.when_long(s["oldest_eta_us"], now_us)),
    ]
    if push:
        pairs += [
            ("in flight", str(s["in_flight"])),
            ("executed last minute", str(s["executed_last_minute"])),
        ]
    else:
        pairs.append(("leased last minute", str(s["executed_last_minute"])))
    pairs.append(("dead letters", str(s["dead_letters"])))
    return render.details(pairs)


def stats(ctx: context.Context, args: argparse.Namespace) -> int:
    answer = ctx.api.call("GET", context.queue_path(args.queue))
    if ctx.json:
        ctx.emit(answer)
    else:
        ctx.lines(queue_details(answer, ctx.now_us))
    return exit_codes.EXIT_OK


def pause(ctx: context.Context, args: argparse.Namespace) -> int:
    answer = ctx.api.call("POST", context.queue_path(args.queue, "pause"))
    if ctx.json:
        ctx.emit(answer)
    else:
        ctx.line(
            f"paused queue {answer['name']} ({render.plural(answer['stats']['tasks'], 'task')} wait)"
        )
    return exit_codes.EXIT_OK


def resume(ctx: context.Context, args: argparse.Namespace) -> int:
    answer = ctx.api.call("POST", context.queue_path(args.queue, "resume"))
    if ctx.json:
        ctx.emit(answer)
        return exit_codes.EXIT_OK
    if answer["stats"]["paused"]:
        ctx.line(
            f"resumed queue {answer['name']}, but queue.yaml still pauses it (rate 0 or "
            "the queue is no longer defined there)"
        )
    else:
        ctx.line(
            f"resumed queue {answer['name']} ({render.plural(answer['stats']['tasks'], 'task')})"
        )
    return exit_codes.EXIT_OK


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def purge(ctx: context.Context, args: argparse.Namespace) -> int:
    if not args.yes:
        if not _stdin_is_tty():
            raise context.UsageError(
                f"purge deletes every task of queue {args.queue!r} for good; add --yes to confirm"
            )
        ctx.err.write(f"delete every task of queue {args.queue!r} for good? [y/N] ")
        ctx.err.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            ctx.error("nothing purged")
            return exit_codes.EXIT_REFUSED
    answer = ctx.api.call("POST", context.queue_path(args.queue, "purge"))
    if ctx.json:
        ctx.emit(answer)
    else:
        ctx.line(f"purged {render.plural(answer['purged'], 'task')} from queue {answer['queue']}")
    return exit_codes.EXIT_OK


def oidc_rotate(ctx: context.Context, args: argparse.Namespace) -> int:
    """A new OIDC signing key; the old ones stay published until their tokens expire."""
    answer = ctx.api.call("POST", "/api/v1/oidc/rotate")
    if ctx.json:
        ctx.emit(answer)
    else:
        ctx.line(f"OIDC tokens are signed by key {answer['kid']} from now on")
        ctx.line(f"published keys: {', '.join(answer['published'])}")
    return exit_codes.EXIT_OK
