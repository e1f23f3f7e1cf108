"""The daemon-side commands: ``check-config``, ``serve``, ``migrate``, ``migrate-db``, ``sink``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from pushd import COMMAND, errors, logs, settings
from pushd.cli import exit_codes
from pushd.queue_yaml import config


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


def check_config(args: argparse.Namespace) -> int:
    if problem := _unreadable(args.path, "queue.yaml"):
        print(f"{COMMAND}: {problem}", file=sys.stderr)
        return exit_codes.EXIT_USAGE
    try:
        loaded = config.load_file(args.path)
        daemon_settings = settings.load(
            args.settings, overrides={"default_target": args.default_target}
        )
    except errors.ConfigError as exc:
        for issue in exc.issues:
            print(_issue_line(issue), file=sys.stderr)
        return exit_codes.EXIT_INVALID
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
    return exit_codes.EXIT_OK


def _print_config_error(exc: errors.ConfigError) -> None:
    for issue in exc.issues:
        print(_issue_line(issue), file=sys.stderr)


def _serve_settings(args: argparse.Namespace) -> settings.Settings | int:
    """The daemon's settings, or the exit code after saying what is wrong with them."""
    if args.settings is not None and (problem := _unreadable(args.settings, "settings file")):
        print(f"{COMMAND}: {problem}", file=sys.stderr)
        return exit_codes.EXIT_USAGE
    overrides = {
        "host": args.host,
        "port": args.port,
        "database": args.db,
        "default_target": args.default_target,
        "queue_yaml": args.config,
        "log_format": args.log_format,
        "log_level": args.log_level,
        "cloud_tasks": None if args.grpc_port is None else {"grpc_port": args.grpc_port},
    }
    try:
        return settings.load(args.settings, overrides=overrides)
    except errors.ConfigError as exc:
        _print_config_error(exc)
        return exit_codes.EXIT_INVALID


def _implicit_queues(args: argparse.Namespace, cfg: settings.Settings) -> bool:
    """Whether to run without a queue.yaml: none was named and ./queue.yaml does not exist.
    App Engine ran an app without one on its implicit ``default`` queue; a file named on the
    command line that is missing is a mistake, not that."""
    return (
        args.config is None
        and cfg.queue_yaml == settings.Settings().queue_yaml
        and not Path(cfg.queue_yaml).exists()
    )


def serve(args: argparse.Namespace) -> int:
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
        return exit_codes.EXIT_USAGE
    try:
        runner = daemon.Daemon(cfg, cfg.queue_yaml, queues=queues)
    except errors.ConfigError as exc:
        _print_config_error(exc)
        return exit_codes.EXIT_INVALID
    try:
        daemon.run_event_loop(runner.run(), cfg.event_loop)
    except errors.StoreRefusedError as exc:  # a --db that cannot be used as it is
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return exit_codes.EXIT_USAGE
    except errors.PushdError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return exit_codes.EXIT_INVALID
    except OSError as exc:
        print(
            f"{COMMAND}: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return exit_codes.EXIT_INVALID
    return runner.exit_code  # 0, or 128 + the signal that forced the stop


def migrate(args: argparse.Namespace) -> int:
    from pushd import migrate

    try:
        print(asyncio.run(migrate.migrate_schema(args.db)))
    except errors.PushdError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return exit_codes.EXIT_INVALID
    return exit_codes.EXIT_OK


def migrate_db(args: argparse.Namespace) -> int:
    from pushd import migrate

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        copied = asyncio.run(migrate.copy_sqlite_to_postgres(args.source, args.target, say=say))
    except errors.PushdError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return exit_codes.EXIT_INVALID
    print(
        f"copied {copied['tasks']:,} tasks, {copied['tombstones']:,} tombstones, "
        f"{copied['dead_tasks']:,} dead letters, {copied['queue_state']:,} queue states, "
        f"{copied['signing_keys']:,} OIDC signing keys"
    )
    return exit_codes.EXIT_OK


def backup(args: argparse.Namespace) -> int:
    from pushd import backup

    progress = _backup_progress if sys.stderr.isatty() else None
    try:
        done = backup.backup(args.db, args.dest, progress=progress)
    except backup.BackupRefusedError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return exit_codes.EXIT_USAGE
    except errors.PushdError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return exit_codes.EXIT_INVALID
    finally:
        if progress is not None:
            print(file=sys.stderr)
    print(
        f"backed up {args.db} to {done.dest}: {done.tasks:,} tasks, "
        f"{done.dead_letters:,} dead letters, {done.bytes / 2**20:.1f} MiB, checked"
    )
    return exit_codes.EXIT_OK


def _backup_progress(copied: int, total: int) -> None:
    print(
        f"\rcopying: {copied * 100 // max(total, 1):3d}% of {total:,} pages",
        end="",
        file=sys.stderr,
    )


def init(args: argparse.Namespace) -> int:
    from pushd import scaffold

    try:
        written = scaffold.init(args.folder)
    except scaffold.InitRefusedError as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return exit_codes.EXIT_INVALID
    for path in written:
        print(f"wrote {path}")
    print("next: edit them, then see README, Running in production (install the unit)")
    return exit_codes.EXIT_OK


def sink(args: argparse.Namespace) -> int:
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
        return exit_codes.EXIT_INVALID
    return exit_codes.EXIT_OK
