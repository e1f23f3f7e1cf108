"""``pushdctl dead`` and ``redrive``: dead letters."""

from __future__ import annotations

import argparse
from typing import Any

from pushd import errors
from pushd.cli import context, exit_codes, render, task_commands

# ------------------------------------------------------------------ dead letters


def dead(ctx: context.Context, args: argparse.Namespace) -> int:
    page = task_commands.one_or_page(ctx, args, "dead")
    if page is None:
        return exit_codes.EXIT_OK
    items, cursor = page
    if not items:
        ctx.line(f"no dead letters in queue {args.queue}")
        return exit_codes.EXIT_OK
    rows = [
        [
            render.show(d["name"]),
            render.when(d["dead_us"], ctx.now_us),
            str(d["attempts"]),
            task_commands.last_outcome(d),
            render.show(d["url"]) if d["method"] != "PULL" else "-",
            render.show(d["reason"]),
        ]
        for d in items
    ]
    headers = ["TASK", "DIED", "ATTEMPTS", "LAST_STATUS", "URL", "REASON"]
    ctx.table(headers, rows, right=(2, 3), flexible=(5, 4, 0))
    context.more_hint(ctx, "dead letters", f"pushdctl dead {args.queue}", cursor)
    return exit_codes.EXIT_OK


def redrive(ctx: context.Context, args: argparse.Namespace) -> int:
    if args.all and args.names:
        raise context.UsageError("give dead letters' names or --all, not both")
    if not args.all and not args.names:
        raise context.UsageError("give the names of the dead letters to redrive, or --all")
    if args.all:
        items, _ = context.fetch_pages(
            ctx, context.queue_path(args.queue, "dead"), limit=None, after=None
        )
        names = [d["name"] for d in items]
        if not names and not ctx.json:
            ctx.line(f"no dead letters in queue {args.queue}")
    else:
        names = list(dict.fromkeys(args.names))
    redriven: list[dict[str, Any]] = []
    missing: list[str] = []
    with task_commands.shown_anyway(lambda: _show_redriven(ctx, redriven), redriven):
        for name in names:
            try:
                redriven.append(
                    ctx.api.call("POST", context.queue_path(args.queue, "dead", name, "redrive"))
                )
            except errors.UnknownTaskError:
                missing.append(name)
    for name in missing:
        ctx.error(f"queue {args.queue!r} has no dead letter {name!r}")
    return exit_codes.EXIT_REFUSED if missing else exit_codes.EXIT_OK


def _show_redriven(ctx: context.Context, redriven: list[dict[str, Any]]) -> None:
    if ctx.json:
        ctx.emit({"tasks": redriven})
    elif redriven:
        rows = [[render.show(t["name"]), render.when(t["eta_us"], ctx.now_us)] for t in redriven]
        ctx.table(["REDRIVEN", "ETA"], rows, flexible=(0,))
