"""The CLI's client commands: formatting, argument parsing, and exit codes against an in-process
API (a MemoryStore, a FakeClock, the real aiohttp server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from pushd import api, cli, clock, errors, models, service, settings, wire
from pushd.api import server
from pushd.cli import context, exit_codes, render, runner, task_commands
from pushd.queue_yaml import config
from pushd.store import base, memory

T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z
S = 1_000_000
QUEUE_YAML = """
queue:
- name: fast
  rate: 10/s
  bucket_size: 3
  max_concurrent_requests: 2
  retry_parameters:
    task_retry_limit: 4
    task_age_limit: 2d
- name: work
  mode: pull
"""
ADMIN = "admin-token-0123456789"
PRODUCER = "producer-token-0123456789"


# ------------------------------------------------------------------ formatting


def test_iso_is_utc_to_the_second() -> None:
    assert render.iso(T0) == "2023-11-14T22:13:20Z"
    assert render.iso(T0 + 999_999) == "2023-11-14T22:13:20Z"
    assert render.iso(None) == "-"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (250, "4m10s"),
        (3600, "1h"),
        (3600 + 5 * 60 + 9, "1h05m"),
        (86_400, "1d"),
        (2 * 86_400 + 4 * 3600, "2d04h"),
    ],
)
def test_span(seconds: int, text: str) -> None:
    assert render.span(seconds) == text


def test_relative_and_table_times() -> None:
    assert render.relative(T0 + 5 * S, T0) == "in 5s"
    assert render.relative(T0 - 3 * 60 * S, T0) == "3m ago"
    assert render.relative(T0 + S // 2, T0) == "now"
    assert render.when(T0 + 90 * S, T0) == "in 1m30s"
    assert render.when(T0 + 2 * 86_400 * S, T0) == "2023-11-16T22:13:20Z"  # far: ISO
    assert render.when(None, T0) == "-"
    assert render.when_long(T0 + 5 * S, T0) == "2023-11-14T22:13:25Z (in 5s)"


def test_table_aligns_columns_without_trailing_spaces() -> None:
    lines = render.table(
        ["NAME", "TASKS", "NOTE"], [["a", "1", "x"], ["long-name", "1234", ""]], right=(1,)
    )
    assert lines == [
        "NAME       TASKS  NOTE",
        "a              1  x",
        "long-name   1234",
    ]


def test_details_align_values_and_continue_without_a_key() -> None:
    assert render.details([("task", "t1"), ("headers", "A: 1"), ("", "B: 2")]) == [
        "task:     t1",
        "headers:  A: 1",
        "          B: 2",
    ]


def test_payloads_show_as_one_line_of_text_or_base64() -> None:
    assert render.show_payload(wire.b64encode(b"hi there")) == "hi there"
    assert render.show_payload(wire.b64encode(b"a\nb\tc\x00")) == "a\\nb\\tc\\x00"
    assert render.show_payload(wire.b64encode("é✓".encode())) == "é✓"
    assert render.show_payload(wire.b64encode(b"\xff\xfe")) == "base64://4="
    assert render.show_payload(wire.b64encode(b"")) == "(empty)"
    assert render.show_payload(None) == "-"
    assert render.clip("x" * 100, 10) == "x" * 9 + "…"


def test_retry_text_names_only_what_is_set() -> None:
    assert render.retry_text({"task_retry_limit": 4, "task_age_limit": 172_800}) == (
        "retry_limit=4 age_limit=2d"
    )
    assert render.retry_text(dict.fromkeys(wire.RETRY_FIELDS)) == "App Engine's defaults"


# ------------------------------------------------------------------ argument parsing


def parse(*argv: str) -> Any:
    return cli.build_parser().parse_args(list(argv))


def test_add_options_become_one_task_object() -> None:
    args = parse(
        "add",
        "fast",
        "--name",
        "t1",
        "--url",
        "/hook",
        "--payload",
        "hi",
        "--param",
        "a=1",
        "--param",
        "a=2",
        "--param",
        "b=x=y",
        "--header",
        "X-One: 1",
        "--header",
        "X-One:2",
        "--eta",
        "2024-05-01T12:00:00Z",
        "--retry-limit",
        "3",
        "--age-limit",
        "1.5h",
        "--tag",
        "t",
    )
    assert args.client_command == "add"
    assert task_commands.build_task(args) == {
        "name": "t1",
        "url": "/hook",
        "eta": "2024-05-01T12:00:00Z",
        "tag": "t",
        "payload": "hi",
        "headers": [["X-One", "1"], ["X-One", "2"]],
        "params": {"a": ["1", "2"], "b": "x=y"},
        "retry_options": {"task_retry_limit": 3, "task_age_limit": "1.5h"},
    }


def test_numbers_stay_numbers_and_files_go_as_base64(tmp_path: Any) -> None:
    path = tmp_path / "body.bin"
    path.write_bytes(b"\x00\x01")
    args = parse("add", "q", "--eta", "1700000000.5", "--payload-file", str(path))
    assert task_commands.build_task(args) == {"eta": 1700000000.5, "payload_base64": "AAE="}
    args = parse("add", "q", "--countdown", "30", "--age-limit", "90")
    assert task_commands.build_task(args) == {
        "countdown": 30.0,
        "retry_options": {"task_age_limit": 90},
    }


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["add", "q", "--header", "no colon"], "is not 'Name: value'"),
        (["add", "q", "--param", "novalue"], "is not key=value"),
        (["add", "q", "--eta", "tomorrow"], "is not an RFC 3339 time"),
        (["add", "q", "--age-limit", "soon"], "AGE must be seconds"),
        (["add", "q", "--payload", "a", "--payload-file", "f"], "not allowed with"),
        (["add", "q", "--countdown", "1", "--eta", "1"], "not allowed with"),
        (["add", "q", "--count", "0"], "must be at least 1"),
        (["lease", "q"], "--seconds"),
        (["lease", "q", "--seconds", "1", "--tag", "a", "--by-tag"], "not allowed with"),
        (["tasks", "q", "--limit", "x"], "not a whole number"),
        (["queues", "--timeout", "0"], "must be more than 0"),
        (["delete", "q"], "NAME"),
        (["stats"], "QUEUE"),
    ],
)
def test_bad_command_lines_exit_2(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == exit_codes.EXIT_USAGE
    assert complaint in capsys.readouterr().err


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


@pytest.mark.parametrize("command", [*CLIENT_COMMANDS, "check-config", "serve", "sink"])
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  pushdctl " in out
    if command not in ("check-config", "serve", "sink"):
        assert "--server URL" in out
        assert "--json" in out


def test_top_level_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for line in ("0    done", "1    refused", "2    usage error", "3    cannot reach"):
        assert line in out
    assert "PUSHD_URL" in out
    assert "PUSHD_TOKEN" in out
    for command in CLIENT_COMMANDS:
        assert command in out


# ------------------------------------------------------------------ against a daemon


class FakeEngine:
    """Pause state lives in the store, as with the scheduler; nothing is delivered."""

    def __init__(self, store: base.Store) -> None:
        self.store = store

    def notify(self, queue: str, eta_us: int) -> None:
        pass

    def forget(self, queue: str, names: object = None) -> None:
        pass

    async def pause(self, queue: str) -> None:
        await self.store.set_paused(queue, True)

    async def resume(self, queue: str) -> None:
        await self.store.set_paused(queue, False)

    def live(self, queue: str) -> models.LiveStats:
        return models.LiveStats(in_flight=1, executed_last_minute=7, enforced_rate=2.5)


@dataclasses.dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclasses.dataclass
class Daemon:
    url: str
    store: memory.MemoryStore
    clock: clock.FakeClock

    async def run(self, *argv: str, server: str | None = None, now_us: int = T0) -> Ran:
        """``pushd ARGV --server URL``, the command in a thread while the loop serves it."""
        args = parse(*argv, "--server", server or self.url)
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(runner.run, args, out=out, err=err, now_us=now_us)
        return Ran(code, out.getvalue(), err.getvalue())

    async def kill(self, queue: str, name: str) -> None:
        """Move a stored push task to the dead letters as the scheduler would."""
        [claimed] = await self.store.claim_due(queue, now_us=T0, limit=1, lease_us=60 * S)
        outcome = base.DeadLetter(
            queue=queue,
            name=name,
            lease_eta_us=claimed.lease_eta_us,
            retry_count=5,
            execution_count=5,
            first_try_us=T0,
            last_status=500,
            reason="task_retry_limit 4 reached; last attempt: HTTP 500",
        )
        await self.store.finish([outcome], now_us=T0 + S)


async def start(tokens: Sequence[settings.ApiToken] = ()) -> tuple[Daemon, server.Server]:
    store = memory.MemoryStore()
    fake_clock = clock.FakeClock(T0)
    queues = config.load_text(QUEUE_YAML)
    domain = service.Service(
        store=store, clock=fake_clock, queues=lambda: queues, engine=FakeEngine(store)
    )
    app = api.create_app(service=domain, settings=settings.Settings(auth_tokens=tuple(tokens)))
    srv = await server.Server.start(app, "127.0.0.1", 0)
    return Daemon(srv.url, store, fake_clock), srv


@pytest.fixture
async def daemon() -> AsyncIterator[Daemon]:
    d, srv = await start()
    yield d
    await srv.stop()


async def test_add_list_show_delete(daemon: Daemon) -> None:
    ran = await daemon.run(
        "add", "fast", "--name", "t1", "--url", "/hook", "--payload", "a\nb", "--countdown", "5"
    )
    assert (ran.code, ran.err) == (0, "")
    assert ran.out.splitlines() == [
        "TASK  QUEUE  ETA    RESULT",
        "t1    fast   in 5s  OK",
    ]
    assert (await daemon.run("add", "fast", "--name", "t2", "--header", "X-A: 1")).code == 0

    listed = await daemon.run("tasks", "fast")
    assert listed.code == 0
    header, first, second = listed.out.splitlines()
    assert header.split() == [
        "TASK",
        "ETA",
        "METHOD",
        "URL",
        "TAG",
        "RETRIES",
        "LAST_STATUS",
        "PAYLOAD_BYTES",
    ]
    assert first.split() == ["t1", "in", "5s", "POST", "/hook", "-", "0", "-", "3"]
    assert second.split() == ["t2", "now", "POST", "/_ah/queue/fast", "-", "0", "-", "0"]

    shown = await daemon.run("task", "fast", "t1")
    assert shown.code == 0
    assert "eta:                2023-11-14T22:13:25Z (in 5s)" in shown.out
    assert "payload (3 bytes):  a\\nb" in shown.out
    as_json = (await daemon.run("tasks", "fast", "t1", "--json")).json()
    assert (as_json["name"], as_json["eta_us"]) == ("t1", T0 + 5 * S)
    assert wire.b64decode(as_json["payload_base64"], "payload") == b"a\nb"

    deleted = await daemon.run("delete", "fast", "t1", "nope", "t2")
    assert deleted.code == exit_codes.EXIT_REFUSED
    assert deleted.out.splitlines() == ["deleted task t1", "deleted task t2"]
    assert deleted.err == (
        "pushdctl: queue 'fast' has no task 'nope' (deleted already, or never added)\n"
    )
    empty = await daemon.run("tasks", "fast")
    assert (empty.code, empty.out) == (0, "no tasks in queue fast\n")


async def test_add_reports_names_in_use_and_exits_1(daemon: Daemon) -> None:
    assert (await daemon.run("add", "fast", "--name", "dup")).code == 0
    ran = await daemon.run("add", "fast", "--name", "dup")
    assert ran.code == exit_codes.EXIT_REFUSED
    assert "dup   fast   -    TASK_ALREADY_EXISTS" in ran.out
    assert ran.err == (
        "pushdctl: task 'dup' was not added to queue 'fast': TASK_ALREADY_EXISTS "
        "(a task with this name is already in the queue)\n"
    )
    assert (await daemon.run("delete", "fast", "dup")).code == 0
    tombstoned = await daemon.run("add", "fast", "--name", "dup", "--json")
    assert tombstoned.code == exit_codes.EXIT_REFUSED
    assert tombstoned.json()["tasks"][0]["result"] == "TOMBSTONED_TASK"


async def test_add_count_batches_by_100_and_json_lists_every_task(daemon: Daemon) -> None:
    ran = await daemon.run("add", "fast", "--count", "150", "--json")
    assert ran.code == 0
    added = ran.json()["tasks"]
    assert len({t["name"] for t in added}) == 150
    assert {t["result"] for t in added} == {"OK"}
    assert (await daemon.store.counts("fast")).tasks == 150
    refused = await daemon.run("add", "fast", "--count", "2", "--name", "x")
    assert refused.code == exit_codes.EXIT_USAGE
    assert "leave out --name" in refused.err


async def test_listing_pages_with_limit_after_and_all(daemon: Daemon) -> None:
    for name in ("a", "b", "c"):
        await daemon.run("add", "fast", "--name", name)
    first = await daemon.run("tasks", "fast", "--limit", "2")
    assert [line.split()[0] for line in first.out.splitlines()[1:]] == ["a", "b"]
    assert "`pushdctl tasks fast --after b` or --all" in first.err
    page = (await daemon.run("tasks", "fast", "--limit", "2", "--json")).json()
    assert ([t["name"] for t in page["tasks"]], page["next"]) == (["a", "b"], "b")
    rest = (await daemon.run("tasks", "fast", "--after", "b", "--json")).json()
    assert ([t["name"] for t in rest["tasks"]], rest["next"]) == (["c"], None)
    every = (await daemon.run("tasks", "fast", "--all", "--json")).json()
    assert [t["name"] for t in every["tasks"]] == ["a", "b", "c"]
    assert every["next"] is None


async def test_queues_and_stats(daemon: Daemon) -> None:
    await daemon.run("add", "fast", "--name", "t1", "--countdown", "60")
    ran = await daemon.run("queues")
    assert ran.code == 0
    lines = ran.out.splitlines()
    assert lines[0].split() == [
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
    assert lines[2].split() == [
        "fast",
        "push",
        "running",
        "10/s",
        "(now",
        "2.5/s)",
        "3",
        "2",
        "1",
        "in",
        "1m",
        "1",
        "7",
        "0",
    ]
    assert lines[3].split()[:4] == ["work", "pull", "running", "-"]
    assert [line.split()[0] for line in lines[1:]] == ["default", "fast", "work"]  # name order
    as_json = (await daemon.run("queues", "--json")).json()
    assert [q["name"] for q in as_json["queues"]] == ["default", "fast", "work"]

    stats = await daemon.run("stats", "fast")
    assert stats.code == 0
    assert stats.out.splitlines() == [
        "queue:                 fast",
        "mode:                  push",
        "state:                 running",
        "rate:                  10/s",
        "enforced rate:         2.5/s",
        "bucket size:           3",
        "max concurrent:        2",
        "target:                -",
        "retry parameters:      retry_limit=4 age_limit=2d",
        "tasks:                 1",
        "oldest eta:            2023-11-14T22:14:20Z (in 1m)",
        "in flight:             1",
        "executed last minute:  7",
        "dead letters:          0",
    ]
    pull = await daemon.run("stats", "work")
    assert "leased last minute:  0" in pull.out
    assert "rate:" not in pull.out
    assert (await daemon.run("stats", "fast", "--json")).json()["stats"]["tasks"] == 1


async def test_pause_resume_purge(daemon: Daemon) -> None:
    await daemon.run("add", "fast", "--name", "t1")
    paused = await daemon.run("pause", "fast")
    assert (paused.code, paused.out) == (0, "paused queue fast (1 task wait)\n")
    assert (await daemon.run("stats", "fast", "--json")).json()["stats"]["paused"] is True
    resumed = await daemon.run("resume", "fast", "--json")
    assert resumed.json()["stats"]["paused"] is False
    refused = await daemon.run("purge", "fast")  # stdin is no terminal here
    assert refused.code == exit_codes.EXIT_USAGE
    assert "add --yes to confirm" in refused.err
    purged = await daemon.run("purge", "fast", "--yes")
    assert (purged.code, purged.out) == (0, "purged 1 task from queue fast\n")
    assert (await daemon.run("purge", "fast", "-y", "--json")).json() == {
        "queue": "fast",
        "purged": 0,
    }


async def test_lease_and_delete_on_a_pull_queue(daemon: Daemon) -> None:
    await daemon.run("add", "work", "--name", "p1", "--payload", "job 1", "--tag", "a")
    await daemon.run("add", "work", "--name", "p2", "--payload", "job 2", "--tag", "b")
    none = await daemon.run("lease", "work", "--seconds", "60", "--tag", "zzz")
    assert (none.code, none.out) == (0, "no tasks to lease in queue work\n")
    leased = await daemon.run("lease", "work", "--seconds", "60", "--max", "10")
    assert leased.code == 0
    assert leased.out.splitlines() == [
        "TASK  LEASED_UNTIL          TAG  RETRIES  PAYLOAD",
        "p1    2023-11-14T22:14:20Z  a          1  job 1",
        "p2    2023-11-14T22:14:20Z  b          1  job 2",
    ]
    again = (await daemon.run("lease", "work", "--seconds", "60", "--json")).json()
    assert again == {"tasks": []}
    assert (await daemon.run("delete", "work", "p1", "p2")).code == 0
    assert (await daemon.store.counts("work")).tasks == 0


async def test_lease_by_tag_json_carries_payload_base64(daemon: Daemon) -> None:
    await daemon.run("add", "work", "--name", "p1", "--payload", "x", "--tag", "a")
    await daemon.run("add", "work", "--name", "p2", "--payload", "y", "--tag", "b")
    by_tag = (await daemon.run("lease", "work", "--seconds", "1", "--by-tag", "--json")).json()
    assert [(t["name"], t["payload_base64"]) for t in by_tag["tasks"]] == [("p1", "eA==")]
    tagged = (await daemon.run("lease", "work", "--seconds", "1", "--tag", "b", "--json")).json()
    assert [t["name"] for t in tagged["tasks"]] == ["p2"]


async def test_dead_letters_list_show_redrive_delete(daemon: Daemon) -> None:
    for name in ("d1", "d2", "d3"):
        await daemon.run("add", "fast", "--name", name, "--url", "/x", "--payload", name)
        await daemon.kill("fast", name)
    listed = await daemon.run("dead", "fast", now_us=T0 + 61 * S)
    assert listed.code == 0
    lines = listed.out.splitlines()
    assert lines[0].split() == ["TASK", "DIED", "ATTEMPTS", "LAST_STATUS", "URL", "REASON"]
    assert lines[1].split()[:6] == ["d1", "1m", "ago", "5", "500", "/x"]
    assert lines[1].endswith("task_retry_limit 4 reached; last attempt: HTTP 500")
    shown = await daemon.run("dead", "fast", "d1")
    assert "reason:" in shown.out
    assert "payload (2 bytes):  d1" in shown.out
    assert "\neta:" not in shown.out
    assert (await daemon.run("dead", "fast", "d1", "--json")).json()["attempts"] == 5

    redriven = await daemon.run("redrive", "fast", "d1", "nope")
    assert redriven.code == exit_codes.EXIT_REFUSED
    assert redriven.out.splitlines() == ["REDRIVEN  ETA", "d1        now"]
    assert redriven.err == "pushdctl: queue 'fast' has no dead letter 'nope'\n"
    assert (await daemon.store.get("fast", "d1")) is not None

    gone = await daemon.run("delete", "fast", "d2", "--dead")
    assert (gone.code, gone.out) == (0, "deleted dead letter d2\n")
    rest = (await daemon.run("redrive", "fast", "--all", "--json")).json()
    assert [t["name"] for t in rest["tasks"]] == ["d3"]
    assert (await daemon.run("dead", "fast")).out == "no dead letters in queue fast\n"
    neither = await daemon.run("redrive", "fast")
    assert (neither.code, neither.err) == (
        exit_codes.EXIT_USAGE,
        "pushdctl: give the names of the dead letters to redrive, or --all\n",
    )


async def test_run_makes_a_task_due_now(daemon: Daemon) -> None:
    await daemon.run("add", "fast", "--name", "later", "--countdown", "3600")
    ran = await daemon.run("run", "fast", "later")
    assert (ran.code, ran.out) == (
        0,
        "task later of queue fast is due 2023-11-14T22:13:20Z (now)\n",
    )
    task = await daemon.store.get("fast", "later")
    assert task is not None
    assert task.eta_us == T0


async def test_refusals_exit_1_with_the_daemons_message(daemon: Daemon) -> None:
    for argv in (
        ["stats", "nope"],
        ["tasks", "nope"],
        ["add", "nope"],
        ["pause", "nope"],
        ["dead", "nope", "x"],
    ):
        ran = await daemon.run(*argv)
        assert (ran.code, ran.out) == (exit_codes.EXIT_REFUSED, ""), argv
        assert ran.err == (
            "pushdctl: queue 'nope' is not configured (the queues are: default, fast, work)\n"
        )
    missing = await daemon.run("tasks", "fast", "nope")
    assert missing.err == "pushdctl: queue 'fast' has no task 'nope'\n"
    push_lease = await daemon.run("lease", "fast", "--seconds", "1")
    assert push_lease.code == exit_codes.EXIT_REFUSED
    assert push_lease.err.startswith("pushdctl: ")
    bad = await daemon.run("add", "fast", "--url", "no-slash")
    assert bad.code == exit_codes.EXIT_REFUSED


async def test_tokens() -> None:
    d, srv = await start(
        [
            settings.ApiToken(name="ops", token=ADMIN, role="admin"),
            settings.ApiToken(name="web", token=PRODUCER, role="producer"),
        ]
    )
    try:
        anonymous = await d.run("queues")
        assert anonymous.code == exit_codes.EXIT_REFUSED
        assert anonymous.err.endswith("(give a token with --token or PUSHD_TOKEN)\n")
        producer = await d.run("purge", "fast", "--yes", "--token", PRODUCER)
        assert producer.code == exit_codes.EXIT_REFUSED
        assert "'web' has role 'producer', which may not administer queues" in producer.err
        assert "--token" not in producer.err
        assert (await d.run("queues", "--token", ADMIN)).code == 0
    finally:
        await srv.stop()


async def test_environment_gives_server_and_token(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSHD_URL", daemon.url)
    monkeypatch.setenv("PUSHD_TOKEN", "unused-token")
    args = parse("queues", "--json")
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(runner.run, args, out=out, err=err, now_us=T0)
    assert code == 0
    assert "queues" in json.loads(out.getvalue())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_daemon_exits_3_and_bad_url_exits_2(daemon: Daemon) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    ran = await daemon.run("queues", server=url)
    assert (ran.code, ran.out) == (exit_codes.EXIT_UNREACHABLE, "")
    assert ran.err.startswith(f"pushdctl: cannot reach pushd at {url}: ")
    assert ran.err.count("\n") == 1
    bad = await daemon.run("queues", server="ftp://example.com")
    assert bad.code == exit_codes.EXIT_USAGE
    assert "is not an http:// or https:// URL" in bad.err


async def test_unreadable_payload_file_is_a_usage_error(daemon: Daemon, tmp_path: Any) -> None:
    ran = await daemon.run("add", "fast", "--payload-file", str(tmp_path / "missing"))
    assert ran.code == exit_codes.EXIT_USAGE
    assert ran.err.startswith("pushdctl: cannot read the payload file ")
    assert (await daemon.store.counts("fast")).tasks == 0


async def test_a_failure_midway_shows_what_was_done(daemon: Daemon) -> None:
    """A daemon failing after some work: what succeeded is printed, then the error."""

    class FailingApi:
        def __init__(self) -> None:
            self.calls = 0

        def call(self, method: str, path: str, body: object = None, **kw: Any) -> Any:
            self.calls += 1
            if self.calls == 2:
                raise errors.TransientError("cannot reach pushd at http://x: reset")
            return {
                "tasks": [
                    {"name": f"n{i}", "queue": "q", "eta_us": T0, "result": "OK"}
                    for i in range(100)
                ]
            }

    out, err = io.StringIO(), io.StringIO()
    ctx = context.Context(api=FailingApi(), out=out, err=err, now_us=T0)
    code = runner.execute(task_commands.add, ctx, parse("add", "q", "--count", "150"))
    assert code == exit_codes.EXIT_UNREACHABLE
    assert len(out.getvalue().splitlines()) == 101
    assert err.getvalue() == "pushdctl: cannot reach pushd at http://x: reset\n"


# ------------------------------------------------------------------ fitting, hints, not pushd


def test_tables_fit_the_width_by_cutting_the_flexible_columns() -> None:
    rows = [["t1", "/" + "x" * 70, "tag-" + "y" * 30], ["t2", "/short", "-"]]
    wide = render.table(["TASK", "URL", "TAG"], rows)
    assert len(wide[1]) == 4 + 2 + 71 + 2 + 34
    fitted = render.table(["TASK", "URL", "TAG"], rows, width=60, flexible=(1, 2))
    assert max(len(line) for line in fitted) == 60
    assert fitted[1].split()[1] == "/" + "x" * 16 + "…"  # the URL gave up what was needed
    assert fitted[1].split()[2] == "tag-" + "y" * 30  # so the tag stayed whole
    assert fitted[2].split() == ["t2", "/short", "-"]
    # Narrower than the flexible columns can go: each keeps MIN_COLUMN_WIDTH characters.
    tight = render.table(["TASK", "URL", "TAG"], rows, width=10, flexible=(1, 2))
    assert tight[1].split()[1:] == ["/xxxxxx…", "tag-yyy…"]
    assert render.table(["A"], [["b"]], width=1, flexible=(0,)) == ["A", "b"]


async def test_tasks_fit_the_terminal(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    long_url = "/hooks/" + "segment/" * 20 + "end"
    added = await daemon.run("add", "fast", "--name", "long", "--url", long_url)
    assert added.code == 0
    wide = await daemon.run("tasks", "fast")  # not a terminal: nothing is cut, for grep
    assert long_url in wide.out
    monkeypatch.setenv("COLUMNS", "80")
    ran = await daemon.run("tasks", "fast")
    assert ran.code == 0
    lines = ran.out.splitlines()
    assert max(len(line) for line in lines) <= 80
    [url] = [cell for cell in lines[1].split() if cell.startswith("/hooks/")]
    assert url.endswith("…")
    assert long_url.startswith(url[:-1])


async def test_an_unknown_queue_suggests_the_closest_name(daemon: Daemon) -> None:
    ran = await daemon.run("stats", "fsat")
    assert (ran.code, ran.out) == (exit_codes.EXIT_REFUSED, "")
    assert ran.err == "pushdctl: queue 'fsat' is not configured; did you mean 'fast'?\n"
    upper = await daemon.run("pause", "WORK")
    assert upper.err == "pushdctl: queue 'WORK' is not configured; did you mean 'work'?\n"


@pytest.fixture
async def not_pushd() -> AsyncIterator[str]:
    """A web server that is not pushd: HTML pages, a 404 page and another JSON API."""
    from aiohttp import web

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>It works!</body></html>", content_type="text/html")

    async def other_json(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app = web.Application()
    app.router.add_get("/api/v1/queues", other_json)
    app.router.add_get("/api/v1/queues/{name}", html)
    srv = await server.Server.start(app, "127.0.0.1", 0)
    yield srv.url
    await srv.stop()


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["stats", "q"], "HTTP 200, not JSON: <html><body>It works!</body></html>"),
        (["tasks", "q"], "HTTP 404 without pushd's error object: 404: Not Found"),
        (["queues"], "no 'queues' in its answer"),
    ],
)
async def test_a_server_that_is_not_pushd_is_named_so(
    daemon: Daemon, not_pushd: str, argv: list[str], what: str
) -> None:
    ran = await daemon.run(*argv, server=not_pushd)
    assert (ran.code, ran.out) == (exit_codes.EXIT_REFUSED, "")
    assert ran.err.count("\n") == 1
    assert what in ran.err
    assert "as pushd does" in ran.err
    assert "is pushd listening there? (set the address with --server or PUSHD_URL)" in ran.err
    assert "request body" not in ran.err
