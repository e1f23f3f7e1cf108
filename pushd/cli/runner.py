"""Running one client command: its :class:`~pushd.cli.context.Context`, and each failure as its
message on stderr and its exit code."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import TextIO

from pushd import COMMAND, client, clock, errors
from pushd.cli import context, dead_commands, exit_codes, queue_commands, render, task_commands

# ------------------------------------------------------------------ running a command

COMMANDS: dict[str, context.Command] = {
    "queues": queue_commands.queues,
    "stats": queue_commands.stats,
    "pause": queue_commands.pause,
    "resume": queue_commands.resume,
    "purge": queue_commands.purge,
    "add": task_commands.add,
    "tasks": task_commands.tasks_,
    "delete": task_commands.delete,
    "run": task_commands.run_now,
    "lease": task_commands.lease,
    "dead": dead_commands.dead,
    "redrive": dead_commands.redrive,
    "oidc-rotate": queue_commands.oidc_rotate,
}


def _permission_hint(exc: errors.PermissionDeniedError, token_given: bool) -> str:
    if token_given:
        return exc.message
    return f"{exc.message} (give a token with --token or {client.TOKEN_ENV})"


def execute(command: context.Command, ctx: context.Context, args: argparse.Namespace) -> int:
    """Run ``command``, turning each failure into its message on stderr and its exit code."""
    try:
        return command(ctx, args)
    except context.UsageError as exc:
        ctx.error(str(exc))
        return exit_codes.EXIT_USAGE
    except errors.TransientError as exc:
        ctx.error(exc.message)
        return exit_codes.EXIT_UNREACHABLE
    except errors.PermissionDeniedError as exc:
        ctx.error(_permission_hint(exc, ctx.token_given))
        return exit_codes.EXIT_REFUSED
    except errors.UnknownQueueError as exc:
        ctx.error(exc.message + _closest_queue(ctx, getattr(args, "queue", None)))
        return exit_codes.EXIT_REFUSED
    except errors.Error as exc:
        ctx.error(exc.message)
        return exit_codes.EXIT_REFUSED
    except (KeyError, TypeError) as exc:  # JSON, but not the shape pushd answers
        ctx.error(
            f"the server did not answer as pushd does (no {exc} in its answer); is pushd "
            f"listening there? (set the address with --server or {client.URL_ENV})"
        )
        return exit_codes.EXIT_REFUSED


def _closest_queue(ctx: context.Context, queue: str | None) -> str:
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
        return exit_codes.EXIT_USAGE
    ctx = context.Context(
        api=api,
        out=out,
        err=err,
        now_us=clock.SystemClock().now_us() if now_us is None else now_us,
        json=args.json,
        token_given=api.token is not None,
        width=render.terminal_width(out),
    )
    try:
        with api:
            code = execute(command, ctx, args)
        out.flush()
    except KeyboardInterrupt:
        err.write("\n")
        return exit_codes.EXIT_INTERRUPTED
    except BrokenPipeError:  # `pushdctl tasks q --all | head`: stop quietly
        _silence_stdout()
        return exit_codes.EXIT_REFUSED
    return code


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
