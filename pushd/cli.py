"""The ``pushd`` command line: argument parsing and exit codes only, no logic of its own."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import platform
import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pushd import COMMAND, __version__, config, errors, logs, settings

EXIT_OK = 0
EXIT_INVALID = 1  # the input (e.g. queue.yaml) was refused; for client commands: the daemon refused
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_UNREACHABLE = 3  # client commands: the daemon could not be reached (pushd.commands)

MAIN_EPILOG = """\
The command is pushdctl, not pushd: bash and zsh run their own `pushd` builtin (the directory
stack) instead of any program of that name. `python -m pushd` works too.

The client commands (queues, stats, add, tasks, delete, lease, run, pause, resume, purge,
dead, redrive) talk to a running `pushdctl serve`: at --server URL, else $PUSHD_URL, else
http://127.0.0.1:8460, with the bearer token --token, else $PUSHD_TOKEN. They print tables
for people; --json prints the daemon's JSON answer for scripts. Errors go to stderr as one
"pushdctl: <message>" line.

exit status:
  0    done
  1    refused: the daemon refused the request (unknown queue, name in use, wrong token, ...),
       part of it was not done (the rest is printed), check-config/serve found a bad file, or
       serve/migrate cannot connect to the PostgreSQL --db
  2    usage error: a bad command line or an unreadable input file; serve: a --db that cannot
       be used (a folder, not a database, an unknown scheme, held by another pushd, damaged;
       the message says what to do); backup: no such database, or DEST exists
  3    cannot reach the daemon, or it answered a transient error: try again later
  130  interrupted (Ctrl-C)

examples:
  pushdctl serve --config queue.yaml
  pushdctl queues
  pushdctl add default --url /hello --payload hi
  pushdctl tasks default
  PUSHD_URL=http://10.0.0.5:8460 pushdctl stats emails --json
  pushdctl COMMAND --help            # every command's options and examples
"""

CHECK_CONFIG_EPILOG = """\
Prints one line per queue (mode, rate, bucket, concurrency, retry policy and, for push queues,
the base URL its tasks go to, from the settings' targets: and default_target) and exits 0, or
prints every problem as PATH:LINE:COLUMN: message on stderr and exits 1. Warnings (such as a
queue target with no mapping in targets:) go to stderr and do not change the exit code. Where
pushd refuses what App Engine would accept, the message says so.

examples:
  pushdctl check-config queue.yaml
  pushdctl check-config queue.yaml.example
  pushdctl check-config queue.yaml --settings config/pushd.yaml   # resolve targets as serve does
  pushdctl check-config path/to/app/queue.yaml && echo valid
"""


BACKUP_EPILOG = """\
Copies the database as it was when the backup started, while pushd keeps adding and
delivering (SQLite's online backup API under one read transaction; it never takes the daemon's
lock). The copy is written to DEST.partial, checked (quick_check) and synced, then renamed to
DEST; an existing DEST is refused. Progress shows on a terminal. For PostgreSQL use pg_dump.

restore: stop pushd, copy the backup over the database, remove its -wal and -shm files, start
pushd; or start pushd with --db pointing at the copy.

examples:
  pushdctl backup --db /var/lib/pushd/pushd.sqlite3 /var/backups/pushd-$(date +%F).sqlite3
  pushdctl backup --db pushd.sqlite3 backups/
"""

INIT_EPILOG = """\
Writes DIR/queue.yaml (every key, commented), DIR/pushd.yaml (hardened settings: tokens and a
signing secret generated here, JSON logs, mode 0640) and DIR/pushd.service (a systemd unit),
from the examples shipped in the package. Refuses to overwrite any of them (exit 1).

examples:
  pushdctl init /etc/pushd
  pushdctl init .
"""

SERVE_EPILOG = """\
Runs the delivery daemon: loads queue.yaml, opens the task database (SQLite by default), serves
the HTTP API and delivers push tasks to their targets until SIGTERM or Ctrl-C, which let
in-flight deliveries finish (up to shutdown_grace_s; it logs what it waits for every
shutdown_report_s). A second SIGTERM or Ctrl-C stops at once: the tasks in flight are given back,
due again at once, and the exit code is 143 (SIGTERM) or 130 (SIGINT) instead of 0. SIGHUP
reloads queue.yaml; a queue removed from it keeps its tasks, shown as removed. Without a
queue.yaml (none given and no ./queue.yaml) it runs App Engine's implicit `default` queue and
says so. Precedence: flags > PUSHD_* environment variables > the settings file > defaults; see
config/pushd.yaml.example. The `listening` line names the versions of pushd, Python, SQLite and
the PostgreSQL server.

examples:
  pushdctl serve --config queue.yaml
  pushdctl serve --config queue.yaml --db /var/lib/pushd/tasks.sqlite3 --port 8460
  pushdctl serve --settings config/pushd.yaml --default-target http://127.0.0.1:8080
  pushdctl serve --db postgresql://pushd@db.internal/pushd   # one of several daemons sharing queues
  pushdctl serve --log-format json --log-level debug          # one JSON object per event, every task
  pkill -HUP -f 'pushdctl serve'     # reload queue.yaml without dropping a task
"""

MIGRATE_EPILOG = """\
Brings the database's schema up to date and exits; `pushdctl serve` does the same on start, so
this is for upgrading ahead of time, or for running the daemons with a database user that may
not change the schema. Migrations are numbered and applied once, in order, under a lock, so
several daemons starting together are safe.

examples:
  pushdctl migrate --db postgresql://pushd@db.internal/pushd
  pushdctl migrate --db pushd.sqlite3
"""

MIGRATE_DB_EPILOG = """\
Copies everything a daemon keeps in a SQLite file (tasks with their retry counters and ETAs,
leases, tombstones, dead letters, paused flags) into a PostgreSQL database, in one transaction:
on any error nothing is copied. The destination must hold no tasks. Stop the daemon using the
file first; then start the daemons with --db postgresql://... (see README, "Scale-out").

examples:
  pushdctl migrate-db --from pushd.sqlite3 --to postgresql://pushd@db.internal/pushd
  pushdctl migrate-db --from sqlite:////var/lib/pushd/tasks.sqlite3 --to "$DATABASE_URL"
"""

SINK_EPILOG = """\
A local webhook receiver for trying pushd out: prints one line per delivery with its
X-AppEngine-* headers, and answers with --status (or 500 for a --fail-rate share).

examples:
  pushdctl sink --port 8080
  pushdctl sink --port 8080 --fail-rate 0.3          # watch retries happen
  pushdctl sink --port 8080 --status 503 --delay 2   # watch adaptive back-off
"""


QUEUES_EPILOG = """\
One line per queue: mode, state (running or paused), rate (and the rate enforced now when the
queue slowed itself down after 429/503 answers), bucket size, concurrency cap, tasks stored,
the oldest ETA, deliveries in flight, deliveries in the last minute (leases, for a pull queue)
and dead letters.

examples:
  pushdctl queues
  pushdctl queues --json | jq '.queues[] | {name, tasks: .stats.tasks}'
  pushdctl queues --server http://10.0.0.5:8460
"""

STATS_EPILOG = """\
One queue's configuration (rate, bucket, concurrency, target, retry parameters) and statistics
(tasks stored, oldest ETA, deliveries in flight and in the last minute, or leases in the last
minute for a pull queue, dead letters, paused or running).

examples:
  pushdctl stats default
  pushdctl stats emails --json | jq .stats.tasks
"""

ADD_EPILOG = """\
Adds one task as taskqueue.add() does; what is not given takes App Engine's defaults: a name
pushd picks, POST to /_ah/queue/QUEUE on a push queue, a PULL task on a pull queue, the queue's
retry parameters. Prints each task's name, ETA and result. A name in use (TASK_ALREADY_EXISTS)
or deleted too recently (TOMBSTONED_TASK) is reported on stderr and exits 1. Retry options
replace the queue's retry_parameters as a whole, as on App Engine.

examples:
  pushdctl add default --url /hello --payload hi
  pushdctl add emails --name welcome-42 --url /send --param to=a@example.com --countdown 30
  pushdctl add emails --url /send --header 'Content-Type: application/json' --payload-file mail.json
  pushdctl add reports --url /run --eta 2024-05-01T06:00:00Z --retry-limit 3 --age-limit 1d
  pushdctl add pulled-work --payload '{"id": 7}' --tag batch-1      # a pull task
  echo hi | pushdctl add default --url /load --payload-file - --count 500
"""

TASKS_EPILOG = """\
Lists a queue's tasks in name order: ETA, method, URL, tag, retries, last HTTP status and
payload size; 100 at a time: --limit N for more, --all for every one, --after NAME to go on
where a listing stopped (stderr says so when more follow). With a NAME, shows that task in full
with its payload: as text if it is UTF-8 (escaped onto one line), else as base64:....

examples:
  pushdctl tasks default
  pushdctl tasks emails --all --json | jq -r '.tasks[].name'
  pushdctl tasks emails welcome-42
  pushdctl task emails welcome-42 --json         # `task` is another name for `tasks`
"""

DELETE_EPILOG = """\
Deletes tasks by name: push tasks before they run, pull tasks a worker has finished. A name
the queue does not hold is reported on stderr and exits 1, after the others are deleted. A
deleted name cannot be reused for a while (it is tombstoned), as on App Engine. With --dead,
deletes dead letters instead.

examples:
  pushdctl delete emails welcome-42
  pushdctl delete pulled-work task-1 task-2 task-3
  pushdctl delete emails welcome-42 --dead
"""

LEASE_EPILOG = """\
Leases up to --max tasks of a pull queue for --seconds: no one else can lease them until the
lease ends. Delete each task once it is done (pushdctl delete QUEUE NAME); a task whose lease ends
can be leased again, up to the queue's task_retry_limit. --tag leases only tasks with that tag;
--by-tag leases tasks sharing the tag of the oldest task. Payloads show as text if UTF-8, else
as base64:...; --json gives payload_base64 and the exact end of the lease (eta_us).

examples:
  pushdctl lease pulled-work --seconds 60
  pushdctl lease pulled-work --seconds 300 --max 100 --tag batch-1
  pushdctl lease pulled-work --seconds 60 --json | jq -r '.tasks[].name'
"""

RUN_EPILOG = """\
Makes a waiting task due now ("Run now" in App Engine's console); the queue's rate, bucket and
concurrency limits still apply.

examples:
  pushdctl run reports nightly-2024-05-01
"""

PAUSE_EPILOG = """\
Stops delivering a push queue's tasks (or leasing a pull queue's) until `pushdctl resume`; tasks
can still be added. The pause is stored and survives a restart.

examples:
  pushdctl pause emails
  pushdctl pause emails --json | jq .stats.paused
"""

RESUME_EPILOG = """\
Resumes a queue paused with `pushdctl pause`. A queue that queue.yaml pauses (rate 0, or no
longer defined there) stays paused until queue.yaml changes; the output says so.

examples:
  pushdctl resume emails
"""

PURGE_EPILOG = """\
Deletes every task of a queue for good; dead letters stay (see pushdctl dead). Asks first on a
terminal; anywhere else it needs --yes.

examples:
  pushdctl purge emails
  pushdctl purge emails --yes
"""

DEAD_EPILOG = """\
Lists a queue's dead letters: tasks that ran out of retries (task_retry_limit and
task_age_limit), which App Engine would have dropped, with when and why each died; 100 at a
time, as pushdctl tasks. With a NAME, shows one in full, payload included. Put them back with
pushdctl redrive; delete them with pushdctl delete --dead.

examples:
  pushdctl dead emails
  pushdctl dead emails welcome-42
  pushdctl dead emails --all --json | jq -r '.tasks[] | [.name, .reason] | @tsv'
"""

REDRIVE_EPILOG = """\
Puts dead letters back into their queue as tasks due now, as if never tried (retry counts
reset), by name or all of them. A name that is not a dead letter is reported on stderr and
exits 1, after the others are put back.

examples:
  pushdctl redrive emails welcome-42
  pushdctl redrive emails welcome-42 welcome-43
  pushdctl redrive emails --all
"""


def _header_arg(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not 'Name: value'")
    return name.strip(), value.strip()


def _param_arg(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value")
    return key, value


def _eta_arg(text: str) -> float | str:
    """POSIX seconds, or RFC 3339 text (checked here, sent as written)."""
    from pushd import wire

    try:
        return float(text)
    except ValueError:
        pass
    try:
        wire.parse_rfc3339(text, "TIME")
    except errors.Error as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return text


def _age_arg(text: str) -> float | str:
    """Seconds, or a duration such as 90s, 15m, 1.5h or 2d."""
    from pushd import wire

    value: float | str
    try:
        value = float(text)
    except ValueError:
        value = text
    try:
        wire.parse_age_limit_s(value, "AGE")
    except errors.Error as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0; got {text}")
    return value


def _http_status(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an HTTP status code") from None
    if not 100 <= value <= 599:
        raise argparse.ArgumentTypeError(f"{value} is not an HTTP status code (100 to 599)")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1") from None
    if not 0 <= value <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text} is not a share from 0 to 1 (0.3 is 30%)")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds; got {text}")
    return value


def version_text() -> str:
    """``pushdctl 0.1.0 (Python 3.11.7, SQLite 3.40.1)``: what a bug report starts with."""
    return f"{COMMAND} {__version__} (Python {platform.python_version()}, SQLite {sqlite3.sqlite_version})"


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
        type=_positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="give up on an answer after this long (default: 30)",
    )
    return parent


def _add_client_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parent = _client_options()

    def command(
        name: str, help: str, description: str, epilog: str, aliases: Sequence[str] = ()
    ) -> argparse.ArgumentParser:
        parser = commands.add_parser(
            name,
            aliases=list(aliases),
            help=help,
            description=description,
            epilog=epilog,
            parents=[parent],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(handler=_client, client_command=name)
        return parser

    def listing(parser: argparse.ArgumentParser, what: str) -> None:
        parser.add_argument(
            "--limit", type=_positive_int, help=f"show at most this many {what} (default: 100)"
        )
        parser.add_argument("--all", action="store_true", help=f"show every {what[:-1]}")
        parser.add_argument("--after", metavar="NAME", help="start after this name")

    command(
        "queues",
        "list the queues with their statistics",
        "List every queue of the daemon with its statistics.",
        QUEUES_EPILOG,
    )

    stats = command(
        "stats",
        "show one queue's configuration and statistics",
        "Show one queue's configuration and statistics.",
        STATS_EPILOG,
    )
    stats.add_argument("queue", metavar="QUEUE", help="the queue's name")

    add = command("add", "add a task to a queue", "Add a task to a queue.", ADD_EPILOG)
    add.add_argument("queue", metavar="QUEUE", help="the queue's name")
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
        type=_param_arg,
        action="append",
        help="a form parameter (repeatable; a query string for GET, the body for POST)",
    )
    add.add_argument(
        "--header",
        metavar="'NAME: VALUE'",
        type=_header_arg,
        action="append",
        help="an HTTP header to send (repeatable)",
    )
    due = add.add_mutually_exclusive_group()
    due.add_argument(
        "--countdown", type=float, metavar="SECONDS", help="run no sooner than this from now"
    )
    due.add_argument(
        "--eta",
        type=_eta_arg,
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
        type=_positive_int,
        default=1,
        metavar="N",
        help="add this many identical tasks, named by pushd (default: 1)",
    )
    retry = add.add_argument_group("retry options (replace the queue's retry_parameters)")
    retry.add_argument("--retry-limit", type=int, metavar="N", help="task_retry_limit")
    retry.add_argument("--age-limit", type=_age_arg, metavar="AGE", help="task_age_limit: 2d, 1.5h")
    retry.add_argument("--min-backoff", type=float, metavar="SECONDS", help="min_backoff_seconds")
    retry.add_argument("--max-backoff", type=float, metavar="SECONDS", help="max_backoff_seconds")
    retry.add_argument("--max-doublings", type=int, metavar="N", help="max_doublings")

    tasks = command(
        "tasks",
        "list a queue's tasks, or show one",
        "List a queue's tasks, or show one task in full.",
        TASKS_EPILOG,
        aliases=["task"],
    )
    tasks.add_argument("queue", metavar="QUEUE", help="the queue's name")
    tasks.add_argument("name", metavar="NAME", nargs="?", help="show this task in full")
    listing(tasks, "tasks")

    delete = command(
        "delete", "delete tasks by name", "Delete tasks (or dead letters) by name.", DELETE_EPILOG
    )
    delete.add_argument("queue", metavar="QUEUE", help="the queue's name")
    delete.add_argument("names", metavar="NAME", nargs="+", help="the tasks to delete")
    delete.add_argument("--dead", action="store_true", help="delete dead letters of these names")

    lease = command(
        "lease", "lease tasks of a pull queue", "Lease tasks of a pull queue.", LEASE_EPILOG
    )
    lease.add_argument("queue", metavar="QUEUE", help="the queue's name")
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

    run = command("run", "make a task due now", "Make a waiting task due now.", RUN_EPILOG)
    run.add_argument("queue", metavar="QUEUE", help="the queue's name")
    run.add_argument("name", metavar="NAME", help="the task to run now")

    for name, help, epilog in (
        ("pause", "pause a queue", PAUSE_EPILOG),
        ("resume", "resume a paused queue", RESUME_EPILOG),
    ):
        toggle = command(name, help, f"{help[0].upper()}{help[1:]}.", epilog)
        toggle.add_argument("queue", metavar="QUEUE", help="the queue's name")

    purge = command(
        "purge", "delete every task of a queue", "Delete every task of a queue.", PURGE_EPILOG
    )
    purge.add_argument("queue", metavar="QUEUE", help="the queue's name")
    purge.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    dead = command(
        "dead",
        "list a queue's dead letters, or show one",
        "List the dead letters of a queue (tasks out of retries), or show one in full.",
        DEAD_EPILOG,
    )
    dead.add_argument("queue", metavar="QUEUE", help="the queue's name")
    dead.add_argument("name", metavar="NAME", nargs="?", help="show this dead letter in full")
    listing(dead, "dead letters")

    redrive = command(
        "redrive",
        "put dead letters back into their queue",
        "Put dead letters back into their queue, due now.",
        REDRIVE_EPILOG,
    )
    redrive.add_argument("queue", metavar="QUEUE", help="the queue's name")
    redrive.add_argument("names", metavar="NAME", nargs="*", help="the dead letters to redrive")
    redrive.add_argument("--all", action="store_true", help="redrive every dead letter")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Self-hosted App Engine Task Queues.",
        epilog=MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=version_text(), help="show the versions and exit"
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
    check.add_argument(
        "--settings", metavar="PUSHD_YAML", help="daemon settings whose targets: to resolve"
    )
    check.add_argument(
        "--default-target", metavar="URL", help="base URL for tasks without a known target"
    )
    check.set_defaults(handler=_check_config)

    serve = commands.add_parser(
        "serve",
        help="run the delivery daemon and its HTTP API",
        description="Run pushd: deliver push tasks, lease pull tasks, serve the HTTP API.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    serve.add_argument(
        "--default-target", metavar="URL", help="base URL for tasks without a known target"
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="one line per event as key=value text (default) or as a JSON object",
    )
    serve.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="default: info"
    )
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser(
        "migrate",
        help="bring a task database's schema up to date",
        description="Apply the database schema migrations this pushd needs, then exit.",
        epilog=MIGRATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    migrate.add_argument(
        "--db", metavar="URL", required=True, help="postgresql://... or a SQLite file"
    )
    migrate.set_defaults(handler=_migrate)

    migrate_db = commands.add_parser(
        "migrate-db",
        help="copy a SQLite task database into PostgreSQL",
        description="Copy a SQLite task database into PostgreSQL, to run several daemons.",
        epilog=MIGRATE_DB_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    migrate_db.add_argument(
        "--from", dest="source", metavar="SQLITE", required=True, help="the SQLite file to copy"
    )
    migrate_db.add_argument(
        "--to", dest="target", metavar="URL", required=True, help="postgresql://user@host/db"
    )
    migrate_db.set_defaults(handler=_migrate_db)

    backup = commands.add_parser(
        "backup",
        help="copy a running SQLite task database, consistently",
        description="Copy a SQLite task database while pushd runs (SQLite's online backup).",
        epilog=BACKUP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backup.add_argument(
        "--db",
        metavar="PATH",
        default="pushd.sqlite3",
        help="the database (default: pushd.sqlite3)",
    )
    backup.add_argument("dest", metavar="DEST", help="the new file (or a folder to write it in)")
    backup.set_defaults(handler=_backup)

    init = commands.add_parser(
        "init",
        help="write queue.yaml, hardened pushd.yaml and a systemd unit to start from",
        description="Write the files to run pushd in production, from the shipped examples.",
        epilog=INIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("folder", metavar="DIR", nargs="?", default=".", help="default: .")
    init.set_defaults(handler=_init)

    sink = commands.add_parser(
        "sink",
        help="run a local webhook receiver that prints deliveries",
        description="Receive pushd's webhooks locally and print them.",
        epilog=SINK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sink.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    sink.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    sink.add_argument(
        "--status", type=_http_status, default=200, help="HTTP status to answer (default: 200)"
    )
    sink.add_argument(
        "--fail-rate",
        type=_share,
        default=0.0,
        metavar="F",
        help="share of requests answered 500, from 0 to 1 (default: 0)",
    )
    sink.add_argument(
        "--delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="seconds to wait before answering (default: 0)",
    )
    sink.add_argument("--json", action="store_true", help="print one JSON object per delivery")
    sink.set_defaults(handler=_sink)
    _add_client_commands(commands)
    return parser


def _issue_line(issue: errors.ConfigIssue) -> str:
    # An issue not tied to a line (an unreadable file) reads better without ":0:0".
    if issue.line:
        return str(issue)
    where = f"{issue.path}: " if issue.path else ""
    return f"{issue.file}: {where}{issue.message}"


def _unreadable(path: str, what: str) -> str | None:
    """Why ``path`` cannot be read, as a message (exit 2, as a bad command line), or None."""
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return f"cannot read the {what} {path}: {exc.strerror or exc}"


def _check_config(args: argparse.Namespace) -> int:
    if problem := _unreadable(args.path, "queue.yaml"):
        print(f"{COMMAND}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        loaded = config.load_file(args.path)
        daemon_settings = settings.load(
            args.settings, overrides={"default_target": args.default_target}
        )
    except errors.ConfigError as exc:
        for issue in exc.issues:
            print(_issue_line(issue), file=sys.stderr)
        return EXIT_INVALID
    for warning in loaded.warnings:
        print(f"{_issue_line(warning)} (warning)", file=sys.stderr)
    routes = {
        r.queue: r for r in loaded.routes(daemon_settings.targets, daemon_settings.default_target)
    }
    for route in routes.values():
        if not route.mapped:
            print(
                f"{args.path}: queue {route.queue}: target {route.target!r} has no mapping in "
                f"the settings' targets: its tasks go to default_target {route.url} (warning)",
                file=sys.stderr,
            )
    width = max(len(name) for name in loaded.queues)
    for name, queue in loaded.queues.items():
        implicit = "  (implicit)" if queue.implicit else ""
        where = f"  {routes[name].describe()}" if name in routes else ""
        print(f"{name:<{width}}  {queue.describe()}{where}{implicit}")
    if loaded.total_storage_limit_bytes is not None:
        print(f"total_storage_limit: {loaded.total_storage_limit_bytes} bytes")
    return EXIT_OK


def _print_config_error(exc: errors.ConfigError) -> None:
    for issue in exc.issues:
        print(_issue_line(issue), file=sys.stderr)


def _serve_settings(args: argparse.Namespace) -> settings.Settings | int:
    """The daemon's settings, or the exit code after saying what is wrong with them."""
    if args.settings is not None and (problem := _unreadable(args.settings, "settings file")):
        print(f"{COMMAND}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    overrides = {
        "host": args.host,
        "port": args.port,
        "database": args.db,
        "default_target": args.default_target,
        "queue_yaml": args.config,
        "log_format": args.log_format,
        "log_level": args.log_level,
    }
    try:
        return settings.load(args.settings, overrides=overrides)
    except errors.ConfigError as exc:
        _print_config_error(exc)
        return EXIT_INVALID


def _implicit_queues(args: argparse.Namespace, cfg: settings.Settings) -> bool:
    """Whether to run without a queue.yaml: none was named and ./queue.yaml does not exist.
    App Engine ran an app without one on its implicit ``default`` queue; a file named on the
    command line that is missing is a mistake, not that."""
    return (
        args.config is None
        and cfg.queue_yaml == settings.Settings().queue_yaml
        and not Path(cfg.queue_yaml).exists()
    )


def _serve(args: argparse.Namespace) -> int:
    from pushd import daemon  # the daemon's dependencies load only for `serve`

    cfg = _serve_settings(args)
    if isinstance(cfg, int):
        return cfg
    logs.setup(cfg.log_level, cfg.log_format)
    queues = None
    if _implicit_queues(args, cfg):
        queues = config.load_text("queue: []\n", cfg.queue_yaml)  # the implicit default alone
        logs.event(
            "queue_yaml_missing",
            logging.WARNING,
            always=True,
            file=cfg.queue_yaml,
            queues="default",
            hint="running App Engine's implicit default queue (5/s); give --config PATH",
        )
    elif problem := _unreadable(cfg.queue_yaml, "queue.yaml"):
        print(
            f"{COMMAND}: {problem}; give the queue.yaml to load with --config PATH", file=sys.stderr
        )
        return EXIT_USAGE
    try:
        runner = daemon.Daemon(cfg, cfg.queue_yaml, queues=queues)
    except errors.ConfigError as exc:
        _print_config_error(exc)
        return EXIT_INVALID
    try:
        daemon.run_event_loop(runner.run(), cfg.event_loop)
    except errors.StoreRefusedError as exc:  # a --db that cannot be used as it is
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except errors.PushdError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(
            f"{COMMAND}: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    return runner.exit_code  # 0, or 128 + the signal that forced the stop


def _migrate(args: argparse.Namespace) -> int:
    from pushd import migrate

    try:
        print(asyncio.run(migrate.migrate_schema(args.db)))
    except errors.PushdError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK


def _migrate_db(args: argparse.Namespace) -> int:
    from pushd import migrate

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        copied = asyncio.run(migrate.copy_sqlite_to_postgres(args.source, args.target, say=say))
    except errors.PushdError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(
        f"copied {copied['tasks']:,} tasks, {copied['tombstones']:,} tombstones, "
        f"{copied['dead_tasks']:,} dead letters, {copied['queue_state']:,} queue states"
    )
    return EXIT_OK


def _backup(args: argparse.Namespace) -> int:
    from pushd import backup

    progress = _backup_progress if sys.stderr.isatty() else None
    try:
        done = backup.backup(args.db, args.dest, progress=progress)
    except backup.BackupRefusedError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except errors.PushdError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        if progress is not None:
            print(file=sys.stderr)
    print(
        f"backed up {args.db} to {done.dest}: {done.tasks:,} tasks, "
        f"{done.dead_letters:,} dead letters, {done.bytes / 2**20:.1f} MiB, checked"
    )
    return EXIT_OK


def _backup_progress(copied: int, total: int) -> None:
    print(
        f"\rcopying: {copied * 100 // max(total, 1):3d}% of {total:,} pages",
        end="",
        file=sys.stderr,
    )


def _init(args: argparse.Namespace) -> int:
    from pushd import scaffold

    try:
        written = scaffold.init(args.folder)
    except scaffold.InitRefusedError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for path in written:
        print(f"wrote {path}")
    print("next: edit them, then see README, Running in production (install the unit)")
    return EXIT_OK


def _sink(args: argparse.Namespace) -> int:
    from pushd import sink
    from pushd.api import server

    options = sink.SinkOptions(
        status=args.status, fail_rate=args.fail_rate, delay_s=args.delay, json_lines=args.json
    )
    receiver = sink.Sink(options)

    async def run() -> None:
        srv = await server.Server.start(receiver.app(), args.host, args.port)
        print(f"{COMMAND} sink listening on {srv.url}", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await srv.stop()

    try:
        asyncio.run(run())
    except OSError as exc:
        print(
            f"{COMMAND} sink: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    return EXIT_OK


def _client(args: argparse.Namespace) -> int:
    from pushd import commands  # the HTTP client loads only for the client commands

    return commands.run(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return handler(args)
