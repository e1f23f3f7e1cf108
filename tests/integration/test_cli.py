"""`python -m pushd <command>` as subprocesses against a real `pushdctl serve` and receiver."""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import os
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any

from pushd import cli
from tests.integration.harness import Daemon, Receiver, api

if TYPE_CHECKING:
    import aiohttp

    from tests.integration.conftest import StartDaemon

QUEUE_YAML = """
queue:
- name: work
  rate: 100/s
  bucket_size: 10
- name: fragile
  rate: 100/s
  retry_parameters:
    task_retry_limit: 0
- name: pulled
  mode: pull
"""
CLIENT_COMMANDS = [
    "queues",
    "stats",
    "add",
    "tasks",
    "task",
    "delete",
    "lease",
    "run",
    "pause",
    "resume",
    "purge",
    "dead",
    "redrive",
]


@dataclasses.dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def pushd(*argv: str, daemon: Daemon | None = None, url: str | None = None) -> Ran:
    """Run ``python -m pushd ARGV`` with PUSHD_URL pointing at ``daemon`` (or ``url``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PUSHD_URL", "PUSHD_TOKEN")}
    if daemon is not None or url is not None:
        env["PUSHD_URL"] = url or (daemon.url if daemon else "")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pushd",
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def test_add_list_show_delete(start_daemon: StartDaemon) -> None:
    d = await start_daemon(QUEUE_YAML)
    added = await pushd(
        "add",
        "work",
        "--name",
        "later",
        "--url",
        "/hook",
        "--payload",
        "hi",
        "--countdown",
        "3600",
        daemon=d,
    )
    assert (added.code, added.err) == (0, "")
    assert added.out.splitlines()[1].split()[:2] == ["later", "work"]
    assert added.out.splitlines()[1].split()[-1] == "OK"

    listed, shown = await asyncio.gather(
        pushd("tasks", "work", daemon=d), pushd("task", "work", "later", "--json", daemon=d)
    )
    assert listed.code == 0
    header, row = listed.out.splitlines()
    assert header.startswith("TASK ")
    assert row.split()[0] == "later"
    assert row.split()[1] == "in"
    assert "/hook" in row.split()
    task = shown.json()
    assert (task["name"], task["url"], task["payload_base64"]) == ("later", "/hook", "aGk=")

    deleted = await pushd("delete", "work", "later", daemon=d)
    assert (deleted.code, deleted.out) == (0, "deleted task later\n")
    empty = await pushd("tasks", "work", "--json", daemon=d)
    assert empty.json() == {"tasks": [], "next": None}


async def test_pull_queue_add_lease_delete(start_daemon: StartDaemon) -> None:
    d = await start_daemon(QUEUE_YAML)
    added = await pushd(
        "add", "pulled", "--name", "p1", "--payload", "job 1", "--tag", "a", daemon=d
    )
    assert added.code == 0
    leased = await pushd("lease", "pulled", "--seconds", "60", "--max", "5", "--json", daemon=d)
    assert leased.code == 0
    [task] = leased.json()["tasks"]
    assert (task["name"], task["tag"]) == ("p1", "a")
    assert base64.b64decode(task["payload_base64"]) == b"job 1"
    again, deleted = await asyncio.gather(  # leased, then deleted: never leased again
        pushd("lease", "pulled", "--seconds", "60", daemon=d),
        pushd("delete", "pulled", "p1", daemon=d),
    )
    assert (again.code, again.out) == (0, "no tasks to lease in queue pulled\n")
    assert (deleted.code, deleted.out) == (0, "deleted task p1\n")


async def test_queues_stats_pause_resume_purge(start_daemon: StartDaemon) -> None:
    d = await start_daemon(QUEUE_YAML)
    assert (await pushd("add", "work", "--countdown", "3600", "--count", "3", daemon=d)).code == 0
    table, as_json, stats = await asyncio.gather(
        pushd("queues", daemon=d),
        pushd("queues", "--json", daemon=d),
        pushd("stats", "work", daemon=d),
    )
    lines = table.out.splitlines()
    assert lines[0].split()[:3] == ["QUEUE", "MODE", "STATE"]
    assert [line.split()[0] for line in lines[1:]] == ["default", "fragile", "pulled", "work"]
    work = lines[4].split()
    assert work[:4] == ["work", "push", "running", "100/s"]
    assert work[6] == "3"  # TASKS
    assert {q["name"]: q["stats"]["tasks"] for q in as_json.json()["queues"]} == {
        "work": 3,
        "fragile": 0,
        "pulled": 0,
        "default": 0,
    }
    assert "tasks:                 3" in stats.out.splitlines()

    paused = await pushd("pause", "work", "--json", daemon=d)
    assert paused.json()["stats"]["paused"] is True
    resumed = await pushd("resume", "work", daemon=d)
    assert (resumed.code, resumed.out) == (0, "resumed queue work (3 tasks)\n")
    unconfirmed, purged = await asyncio.gather(
        pushd("purge", "work", daemon=d),  # stdin is no terminal: refused before any request
        pushd("purge", "work", "--yes", daemon=d),
    )
    assert unconfirmed.code == 2
    assert "add --yes to confirm" in unconfirmed.err
    assert (purged.code, purged.out) == (0, "purged 3 tasks from queue work\n")


async def wait_dead_letters(
    session: aiohttp.ClientSession, d: Daemon, queue: str, count: int
) -> None:
    """Poll the API (no sleeping) until ``queue`` holds ``count`` dead letters."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body = await api(session, d, "GET", f"/api/v1/queues/{queue}")
        assert status == 200, body
        if body["stats"]["dead_letters"] == count:
            return
    raise AssertionError(f"queue {queue} never held {count} dead letters")


async def test_dead_letters_and_redrive(
    start_daemon: StartDaemon, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.respond = lambda request, i: 500 if i == 0 else 200
    d = await start_daemon(QUEUE_YAML)
    added = await pushd("add", "fragile", "--name", "doomed", "--url", "/fail", daemon=d)
    assert added.code == 0
    await receiver.wait_for(1)
    await wait_dead_letters(session, d, "fragile", 1)

    listed, shown = await asyncio.gather(
        pushd("dead", "fragile", daemon=d), pushd("dead", "fragile", "doomed", "--json", daemon=d)
    )
    assert listed.code == 0
    header, row = listed.out.splitlines()
    assert header.split() == ["TASK", "DIED", "ATTEMPTS", "LAST_STATUS", "URL", "REASON"]
    assert row.split()[0] == "doomed"
    assert "task_retry_limit" in row
    dead = shown.json()
    assert (dead["name"], dead["attempts"], dead["last_status"]) == ("doomed", 1, 500)

    redriven = await pushd("redrive", "fragile", "doomed", daemon=d)
    assert redriven.code == 0
    assert redriven.out.splitlines()[1].split()[0] == "doomed"
    deliveries = await receiver.wait_for(2)
    assert [(x.path, x.status) for x in deliveries] == [("/fail", 500), ("/fail", 200)]
    nothing = await pushd("redrive", "fragile", "--all", daemon=d)
    assert (nothing.code, nothing.out) == (0, "no dead letters in queue fragile\n")


async def test_errors_and_exit_codes(start_daemon: StartDaemon) -> None:
    d = await start_daemon(QUEUE_YAML)
    unknown, usage, missing = await asyncio.gather(
        pushd("stats", "wrok", daemon=d),
        pushd("lease", "pulled", daemon=d),
        pushd("delete", "work", "never-added", daemon=d),
    )
    assert (unknown.code, unknown.out) == (1, "")
    assert unknown.err == "pushdctl: queue 'wrok' is not configured; did you mean 'work'?\n"
    assert usage.code == 2
    assert "the following arguments are required: --seconds" in usage.err
    assert missing.code == 1
    assert missing.err == (
        "pushdctl: queue 'work' has no task 'never-added' (deleted already, or never added)\n"
    )

    url = d.url
    assert await d.stop() == 0
    down = await pushd("queues", url=url)
    assert (down.code, down.out) == (3, "")
    assert down.err.startswith(f"pushdctl: cannot reach pushd at {url}: ")
    assert down.err.count("\n") == 1


async def test_help_of_every_command_has_examples() -> None:
    """Every client command's --help (from the installed entry point) shows examples, and each
    example is a command line the parser takes, for that command (check-config, serve and
    sink: tests/unit/test_commands.py)."""
    top, *helps = await asyncio.gather(
        pushd("--help"), *(pushd(command, "--help") for command in CLIENT_COMMANDS)
    )
    assert top.code == 0
    assert "exit status:" in top.out
    assert _parsed_examples(top.out)
    for command, ran in zip(CLIENT_COMMANDS, helps, strict=True):
        assert ran.code == 0, (command, ran.err)
        assert "--server URL" in ran.out, command
        parsed = _parsed_examples(ran.out)
        assert parsed, command
        wanted = {command, "task", "tasks"} if command.startswith("task") else {command}
        assert {args.command for args in parsed} & wanted, (command, parsed)


def _parsed_examples(help_text: str) -> list[argparse.Namespace]:
    """The command lines under ``examples:`` (after ``pushdctl``, before a pipe or a comment),
    each parsed by the CLI's parser: an example it refuses fails the test (SystemExit)."""
    examples = help_text.split("examples:\n", 1)[1]
    parsed = []
    for line in examples.splitlines():
        words = shlex.split(line, comments=True)
        if "pushdctl" not in words:
            continue
        argv = words[words.index("pushdctl") + 1 :]
        argv = argv[: argv.index("|")] if "|" in argv else argv
        if argv[0] == "COMMAND":
            continue
        parsed.append(cli.build_parser().parse_args(argv))
    return parsed
