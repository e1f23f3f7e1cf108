"""The ``pushdctl`` argument parser: commands, options and their help."""

from __future__ import annotations

import argparse
import platform
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from pushd import COMMAND, __version__
from pushd.cli import arguments, daemon_commands, help_texts


def version_text() -> str:
    """``pushdctl 0.1.0 (Python 3.11.7, SQLite 3.40.1)``: what a bug report starts with."""
    return f"{COMMAND} {__version__} (Python {platform.python_version()}, SQLite {sqlite3.sqlite_version})"


def _subcommand(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    description: str,
    epilog: str,
    handler: Callable[[argparse.Namespace], int],
    **options: Any,
) -> argparse.ArgumentParser:
    """One ``pushdctl`` command: its one-line help, description and epilog shown as written."""
    parser = commands.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **options,
    )
    parser.set_defaults(handler=handler)
    return parser


def _add_default_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--default-target", metavar="URL", help="base URL for tasks without a known target"
    )


def _client_options() -> argparse.ArgumentParser:
    """The options every client command takes."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("daemon and output")
    group.add_argument(
        "--server",
        metavar="URL",
        help="the daemon's base URL (default: $PUSHD_URL, else http://127.0.0.1:8460)",
    )
    group.add_argument(
        "--token",
        help="API bearer token (default: $PUSHD_TOKEN, which keeps it out of `ps`)",
    )
    group.add_argument(
        "--json", action="store_true", help="print the daemon's JSON answer instead of a table"
    )
    group.add_argument(
        "--timeout",
        type=arguments.positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="give up on an answer after this long (default: 30)",
    )
    return parent


def _add_client_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parent = _client_options()

    def command(
        name: str,
        help: str,
        epilog: str,
        description: str = "",
        aliases: Sequence[str] = (),
        queue: bool = True,
    ) -> argparse.ArgumentParser:
        """A client command; ``queue``: it takes the queue's name first.

        The description is the one-line help as a sentence unless it says more.
        """
        parser = _subcommand(
            commands,
            name,
            help,
            description or f"{help[0].upper()}{help[1:]}.",
            epilog,
            _client,
            aliases=list(aliases),
            parents=[parent],
        )
        parser.set_defaults(client_command=name)
        if queue:
            parser.add_argument("queue", metavar="QUEUE", help="the queue's name")
        return parser

    def listing(parser: argparse.ArgumentParser, what: str) -> None:
        """NAME to show one in full, else the paging options of a list of ``what``."""
        one = what[:-1]
        parser.add_argument("name", metavar="NAME", nargs="?", help=f"show this {one} in full")
        parser.add_argument(
            "--limit",
            type=arguments.positive_int,
            help=f"show at most this many {what} (default: 100)",
        )
        parser.add_argument("--all", action="store_true", help=f"show every {one}")
        parser.add_argument("--after", metavar="NAME", help="start after this name")

    command(
        "queues",
        "list the queues with their statistics",
        help_texts.QUEUES_EPILOG,
        description="List every queue of the daemon with its statistics.",
        queue=False,
    )

    command("stats", "show one queue's configuration and statistics", help_texts.STATS_EPILOG)

    add = command("add", "add a task to a queue", help_texts.ADD_EPILOG)
    add.add_argument("--name", help="the task's name (default: one pushd picks)")
    add.add_argument("--url", help="relative URL to deliver to (default: /_ah/queue/QUEUE)")
    add.add_argument(
        "--method", help="HTTP method: POST (default), GET, HEAD, PUT, DELETE; PULL for pull"
    )
    body = add.add_mutually_exclusive_group()
    body.add_argument("--payload", metavar="TEXT", help="the request body, as UTF-8 text")
    body.add_argument(
        "--payload-file", metavar="FILE", help="the request body, read from FILE (- for stdin)"
    )
    add.add_argument(
        "--param",
        metavar="KEY=VALUE",
        type=arguments.param_arg,
        action="append",
        help="a form parameter (repeatable; a query string for GET, the body for POST)",
    )
    add.add_argument(
        "--header",
        metavar="'NAME: VALUE'",
        type=arguments.header_arg,
        action="append",
        help="an HTTP header to send (repeatable)",
    )
    due = add.add_mutually_exclusive_group()
    due.add_argument(
        "--countdown", type=float, metavar="SECONDS", help="run no sooner than this from now"
    )
    due.add_argument(
        "--eta",
        type=arguments.eta_arg,
        metavar="TIME",
        help="run no sooner than TIME: RFC 3339 or POSIX seconds",
    )
    add.add_argument("--tag", help="a tag, for leasing pull tasks by tag")
    add.add_argument("--target", help="service or version.service to deliver to")
    add.add_argument(
        "--dispatch-deadline", type=float, metavar="SECONDS", help="how long one attempt may take"
    )
    add.add_argument("--namespace", help="the namespace sent as X-AppEngine-Current-Namespace")
    add.add_argument(
        "--count",
        type=arguments.positive_int,
        default=1,
        metavar="N",
        help="add this many identical tasks, named by pushd (default: 1)",
    )
    retry = add.add_argument_group("retry options (replace the queue's retry_parameters)")
    retry.add_argument("--retry-limit", type=int, metavar="N", help="task_retry_limit")
    retry.add_argument(
        "--age-limit", type=arguments.age_arg, metavar="AGE", help="task_age_limit: 2d, 1.5h"
    )
    retry.add_argument("--min-backoff", type=float, metavar="SECONDS", help="min_backoff_seconds")
    retry.add_argument("--max-backoff", type=float, metavar="SECONDS", help="max_backoff_seconds")
    retry.add_argument("--max-doublings", type=int, metavar="N", help="max_doublings")

    tasks = command(
        "tasks",
        "list a queue's tasks, or show one",
        help_texts.TASKS_EPILOG,
        description="List a queue's tasks, or show one task in full.",
        aliases=["task"],
    )
    listing(tasks, "tasks")

    delete = command(
        "delete",
        "delete tasks by name",
        help_texts.DELETE_EPILOG,
        description="Delete tasks (or dead letters) by name.",
    )
    delete.add_argument("names", metavar="NAME", nargs="+", help="the tasks to delete")
    delete.add_argument("--dead", action="store_true", help="delete dead letters of these names")

    lease = command("lease", "lease tasks of a pull queue", help_texts.LEASE_EPILOG)
    lease.add_argument(
        "--seconds", type=float, required=True, help="how long the lease lasts (at most 604800)"
    )
    lease.add_argument(
        "--max", type=int, default=1, metavar="N", help="lease at most N tasks (default: 1)"
    )
    by_tag = lease.add_mutually_exclusive_group()
    by_tag.add_argument("--tag", help="lease only tasks with this tag")
    by_tag.add_argument(
        "--by-tag", action="store_true", help="lease tasks with the tag of the oldest task"
    )

    run = command(
        "run",
        "make a task due now",
        help_texts.RUN_EPILOG,
        description="Make a waiting task due now.",
    )
    run.add_argument("name", metavar="NAME", help="the task to run now")

    for name, help, epilog in (
        ("pause", "pause a queue", help_texts.PAUSE_EPILOG),
        ("resume", "resume a paused queue", help_texts.RESUME_EPILOG),
    ):
        command(name, help, epilog)

    purge = command("purge", "delete every task of a queue", help_texts.PURGE_EPILOG)
    purge.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    dead = command(
        "dead",
        "list a queue's dead letters, or show one",
        help_texts.DEAD_EPILOG,
        description="List the dead letters of a queue (tasks out of retries), or show one in full.",
    )
    listing(dead, "dead letters")

    redrive = command(
        "redrive",
        "put dead letters back into their queue",
        help_texts.REDRIVE_EPILOG,
        description="Put dead letters back into their queue, due now.",
    )
    redrive.add_argument("names", metavar="NAME", nargs="*", help="the dead letters to redrive")
    redrive.add_argument("--all", action="store_true", help="redrive every dead letter")

    command(
        "oidc-rotate",
        "make a new key sign the OIDC tokens of Cloud Tasks deliveries",
        help_texts.OIDC_ROTATE_EPILOG,
        queue=False,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Self-hosted App Engine Task Queues.",
        epilog=help_texts.MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=version_text(), help="show the versions and exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = _subcommand(
        commands,
        "check-config",
        "validate a queue.yaml and show the queues it defines",
        "Validate a queue.yaml as pushd and App Engine read it.",
        help_texts.CHECK_CONFIG_EPILOG,
        daemon_commands.check_config,
    )
    check.add_argument("path", metavar="PATH", help="the queue.yaml file to check")
    check.add_argument(
        "--settings", metavar="PUSHD_YAML", help="daemon settings whose targets: to resolve"
    )
    _add_default_target(check)

    serve = _subcommand(
        commands,
        "serve",
        "run the delivery daemon and its HTTP API",
        "Run pushd: deliver push tasks, lease pull tasks, serve the HTTP API.",
        help_texts.SERVE_EPILOG,
        daemon_commands.serve,
    )
    serve.add_argument(
        "--config", metavar="QUEUE_YAML", help="queue.yaml to load (default: queue.yaml)"
    )
    serve.add_argument("--settings", metavar="PUSHD_YAML", help="daemon settings file")
    serve.add_argument(
        "--db",
        metavar="PATH_OR_URL",
        help="task database: a SQLite file (default: pushd.sqlite3) or postgresql://...",
    )
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: 8460; 0 picks one)")
    _add_default_target(serve)
    serve.add_argument(
        "--grpc-port",
        type=int,
        metavar="PORT",
        help="serve the Cloud Tasks API over gRPC on this port too (0 picks one; REST is "
        "always under /v2/ on --port)",
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="one line per event as key=value text (default) or as a JSON object",
    )
    serve.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="default: info"
    )

    migrate = _subcommand(
        commands,
        "migrate",
        "bring a task database's schema up to date",
        "Apply the database schema migrations this pushd needs, then exit.",
        help_texts.MIGRATE_EPILOG,
        daemon_commands.migrate,
    )
    migrate.add_argument(
        "--db", metavar="URL", required=True, help="postgresql://... or a SQLite file"
    )

    migrate_db = _subcommand(
        commands,
        "migrate-db",
        "copy a SQLite task database into PostgreSQL",
        "Copy a SQLite task database into PostgreSQL, to run several daemons.",
        help_texts.MIGRATE_DB_EPILOG,
        daemon_commands.migrate_db,
    )
    migrate_db.add_argument(
        "--from", dest="source", metavar="SQLITE", required=True, help="the SQLite file to copy"
    )
    migrate_db.add_argument(
        "--to", dest="target", metavar="URL", required=True, help="postgresql://user@host/db"
    )

    backup = _subcommand(
        commands,
        "backup",
        "copy a running SQLite task database, consistently",
        "Copy a SQLite task database while pushd runs (SQLite's online backup).",
        help_texts.BACKUP_EPILOG,
        daemon_commands.backup,
    )
    backup.add_argument(
        "--db",
        metavar="PATH",
        default="pushd.sqlite3",
        help="the database (default: pushd.sqlite3)",
    )
    backup.add_argument("dest", metavar="DEST", help="the new file (or a folder to write it in)")

    init = _subcommand(
        commands,
        "init",
        "write queue.yaml, hardened pushd.yaml and a systemd unit to start from",
        "Write the files to run pushd in production, from the shipped examples.",
        help_texts.INIT_EPILOG,
        daemon_commands.init,
    )
    init.add_argument("folder", metavar="DIR", nargs="?", default=".", help="default: .")

    sink = _subcommand(
        commands,
        "sink",
        "run a local webhook receiver that prints deliveries",
        "Receive pushd's webhooks locally and print them.",
        help_texts.SINK_EPILOG,
        daemon_commands.sink,
    )
    sink.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    sink.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    sink.add_argument(
        "--status",
        type=arguments.http_status,
        default=200,
        help="HTTP status to answer (default: 200)",
    )
    sink.add_argument(
        "--fail-rate",
        type=arguments.share,
        default=0.0,
        metavar="F",
        help="share of requests answered 500, from 0 to 1 (default: 0)",
    )
    sink.add_argument(
        "--delay",
        type=arguments.seconds,
        default=0.0,
        metavar="SECONDS",
        help="seconds to wait before answering (default: 0)",
    )
    sink.add_argument("--json", action="store_true", help="print one JSON object per delivery")
    _add_client_commands(commands)
    return parser


def _client(args: argparse.Namespace) -> int:
    from pushd.cli import runner  # the HTTP client loads only for client commands

    return runner.run(args)
