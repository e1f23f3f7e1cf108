"""The ``pushd`` command line: argument parsing and exit codes only, no logic of its own."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pushd import config, errors, logs, settings

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


SERVE_EPILOG = """\
Runs the delivery daemon: loads queue.yaml, opens the task database (SQLite by default), serves
the HTTP API and delivers push tasks to their targets until SIGTERM or Ctrl-C, which let
in-flight deliveries finish (up to shutdown_grace_s). SIGHUP reloads queue.yaml. Flags override
the settings file, which overrides PUSHD_* variables' defaults; see config/pushd.yaml.example.

examples:
  pushd serve --config queue.yaml
  pushd serve --config queue.yaml --db /var/lib/pushd/tasks.sqlite3 --port 8460
  pushd serve --settings config/pushd.yaml --default-target http://127.0.0.1:8080
  kill -HUP $(pidof pushd)     # reload queue.yaml without dropping a task
"""

SINK_EPILOG = """\
A local webhook receiver for trying pushd out: prints one line per delivery with its
X-AppEngine-* headers, and answers with --status (or 500 for a --fail-rate share).

examples:
  pushd sink --port 8080
  pushd sink --port 8080 --fail-rate 0.3          # watch retries happen
  pushd sink --port 8080 --status 503 --delay 2   # watch adaptive back-off
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
    serve.add_argument("--db", metavar="PATH", help="task database (default: pushd.sqlite3)")
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: 8460; 0 picks one)")
    serve.add_argument(
        "--default-target", metavar="URL", help="base URL for tasks without a known target"
    )
    serve.set_defaults(handler=_serve)

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
        "--status", type=int, default=200, help="HTTP status to answer (default: 200)"
    )
    sink.add_argument("--fail-rate", type=float, default=0.0, help="share of requests answered 500")
    sink.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering")
    sink.add_argument("--json", action="store_true", help="print one JSON object per delivery")
    sink.set_defaults(handler=_sink)
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


def _print_config_error(exc: errors.ConfigError) -> None:
    for issue in exc.issues:
        print(_issue_line(issue), file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    from pushd import daemon  # the daemon's dependencies load only for `serve`

    overrides = {
        "host": args.host,
        "port": args.port,
        "database": args.db,
        "default_target": args.default_target,
        "queue_yaml": args.config,
    }
    try:
        cfg = settings.load(args.settings, overrides=overrides)
    except errors.ConfigError as exc:
        _print_config_error(exc)
        return EXIT_INVALID
    logs.setup(cfg.log_level, cfg.log_format)
    try:
        runner = daemon.Daemon(cfg, cfg.queue_yaml)
    except errors.ConfigError as exc:
        _print_config_error(exc)
        if not Path(cfg.queue_yaml).exists():
            print("pushd: give the queue.yaml to load with --config PATH", file=sys.stderr)
        return EXIT_INVALID
    try:
        asyncio.run(runner.run())
    except errors.PushdError as exc:
        print(f"pushd: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(
            f"pushd: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return EXIT_INVALID
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
        print(f"pushd sink listening on {srv.url}", file=sys.stderr, flush=True)
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
            f"pushd sink: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return handler(args)
