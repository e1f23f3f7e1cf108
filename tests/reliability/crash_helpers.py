"""The crash campaign's machinery (tests/reliability/test_crash.py): drive, record, judge.

:class:`Campaign` runs one real ``pushd serve`` after another on the same SQLite file and kills
each with SIGKILL at a random moment while producers add push and pull tasks over the HTTP API,
a receiver records every delivery, pull workers lease and delete, and probers learn which
tasks' success the daemon has recorded. Everything it sees is recorded; :func:`judge` turns the
record into figures and into violations by category, which the tests assert are empty.

Each daemon incarnation (an *epoch*) gets its own default target, ``<receiver>/e<epoch>``, so
every delivery says which daemon sent it: a task delivered again by the same daemon is told
apart exactly from one delivered again after a kill.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import random
import signal
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.integration.harness import Daemon, Delivery, Receiver, api

PUSH_QUEUE = "crash-push"
PULL_QUEUE = "crash-pull"
DEADLINE_S = 1  # default_dispatch_deadline_s: the shortest the daemon allows
CLAIM_S = 2 * DEADLINE_S + 5  # README: a claim lasts two dispatch deadlines plus 5 s
LEASE_S = 1  # pull leases: short, so abandoned tasks come back quickly
US = 1_000_000
QUEUE_YAML = f"""\
queue:
- name: {PUSH_QUEUE}
  rate: 1000/s
  bucket_size: 200
  retry_parameters:
    min_backoff_seconds: 0.1
    max_backoff_seconds: 0.5
- name: {PULL_QUEUE}
  mode: pull
"""
SETTINGS_YAML = f"default_dispatch_deadline_s: {DEADLINE_S}\nshutdown_grace_s: 5\n"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=15)
CHECKS = (
    "lost",  # an acknowledged push task never delivered
    "stored",  # tasks left in the store at the end
    "phantom",  # a delivery of no task we added, or under another name
    "duplicate",  # delivered again without a kill (or a recorded failed attempt) between
    "retry_regress",  # a task's retry count went down: a recorded outcome was lost
    "after_success",  # delivered after its success was recorded (404 / TOMBSTONED_TASK)
    "readd",  # a used name re-added and not refused with TOMBSTONED_TASK
    "pull_deleted_back",  # a pull task leased again after its deletion was acknowledged
    "pull_overlap",  # a pull task leased again before its lease ran out
    "pull_not_back",  # a pull task left un-deleted never leased again
    "pull_vanished",  # a pull task gone without being deleted
    "restart",  # the daemon did not start again on the same file
    "exit",  # the last daemon did not stop cleanly on SIGTERM
    "database",  # the SQLite file is not sound afterwards
    "api",  # the API failed without a kill to explain it
    "campaign",  # the campaign itself could not go on (its traceback)
)


def now() -> float:
    return time.monotonic()


class AnswerLostError(Exception):
    """A request may have been handled but its answer was lost (the daemon died meanwhile)."""

    def __init__(self, epoch: int, cause: BaseException) -> None:
        super().__init__(f"epoch {epoch}: {type(cause).__name__}: {cause}")
        self.epoch = epoch
        self.cause = cause


@dataclass(frozen=True)
class Plan:
    """What one campaign does; everything random derives from ``seed``."""

    seed: int
    push_tasks: int
    pull_tasks: int
    kills: int
    producers: int = 4
    pull_workers: int = 2
    named_share: float = 0.7
    countdown_share: float = 0.2
    max_countdown_s: float = 3.0
    fail_share: float = 0.03  # push tasks whose first attempt answers 500 (a retry follows)
    abandon_share: float = 0.3  # pull tasks whose first lease runs out un-deleted
    quick_kill_share: float = 0.2  # kills right after a restart, during recovery
    quick_kill_s: tuple[float, float] = (0.05, 0.3)
    kill_interval_s: tuple[float, float] = (0.6, 1.8)
    startup_kill_share: float = 0.15  # extra kills of a daemon still starting up
    readd_per_round: int = 20
    drain_timeout_s: float = 40.0
    receiver_delay_s: float = 0.02


@dataclass(eq=False)
class Spec:
    """One task the campaign adds, and what it knows of it."""

    id: int
    queue: str
    named: bool
    countdown: float
    name: str | None = None  # its own, or the daemon's once an answer gave it
    state: str = "new"  # new | acked | unknown (answer lost) | resolving (named, asking again)
    acked_at: float | None = None

    def body(self) -> dict[str, Any]:
        task: dict[str, Any] = {"payload": str(self.id)}
        if self.queue == PUSH_QUEUE:
            task["url"] = f"/t/{self.id}"
        if self.named:
            task["name"] = self.name
        if self.countdown:
            task["countdown"] = self.countdown
        return task


@dataclass
class Batch:
    queue: str
    offset_s: float  # when to add it, from the start
    specs: list[Spec]


@dataclass
class KillRecord:
    epoch: int
    at: float
    receiver_in_flight: int
    exit_code: int | None = None
    restarted_at: float | None = None
    restart_s: float | None = None
    startup_kills: int = 0


@dataclass
class Lease:
    eta_us: int
    sent_at: float
    epoch: int
    abandoned: bool = False

    @property
    def start_us(self) -> int:
        return self.eta_us - LEASE_S * US


@dataclass
class PullRecord:
    spec: Spec | None
    leases: list[Lease] = field(default_factory=list)
    delete_tried_at: float | None = None  # first delete request sent
    deleted_at: float | None = None  # a delete answered true (or false after a lost answer)


class CountingReceiver(Receiver):
    """The harness receiver, plus a wait for N deliveries that answers False on timeout."""

    async def arrived(self, count: int, timeout_s: float) -> bool:
        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.deliveries) >= count)

        try:
            await asyncio.wait_for(enough(), max(timeout_s, 0.0))
        except TimeoutError:
            return False
        return True


def delivery_key(d: Delivery) -> tuple[int, int]:
    """(epoch, task id) from ``/e<epoch>/t/<id>``; (-1, -1) for anything else."""
    parts = d.path.split("?", 1)[0].split("/")
    if len(parts) == 4 and parts[1][:1] == "e" and parts[2] == "t":
        try:
            return int(parts[1][1:]), int(parts[3])
        except ValueError:
            pass
    return -1, -1


def retry_count(d: Delivery) -> int:
    return int(d.headers.get("X-AppEngine-TaskRetryCount", "-1"))


class Campaign:
    """One crash campaign: see the module docstring."""

    def __init__(
        self,
        plan: Plan,
        tmp: Path,
        receiver: CountingReceiver,
        session: aiohttp.ClientSession,
    ) -> None:
        self.plan = plan
        self.tmp = tmp
        self.rx = receiver
        self.session = session
        self.settings = tmp / "pushd.yaml"
        self.settings.write_text(SETTINGS_YAML)
        self.db = tmp / "pushd.sqlite3"
        rng = random.Random(plan.seed)
        self.kill_rng = random.Random(rng.random())
        self.pull_rng = random.Random(rng.random())
        self.readd_rng = random.Random(rng.random())
        self.specs: dict[int, Spec] = {}
        self.by_name: dict[tuple[str, str], Spec] = {}  # (queue, name) -> the task added
        self.batches = self._batches(random.Random(rng.random()))
        self.fail_ids = {
            s.id
            for s in self.specs.values()
            if s.queue == PUSH_QUEUE and rng.random() < plan.fail_share
        }
        receiver.respond = self._respond
        receiver.delay_s = plan.receiver_delay_s
        self.epochs = 0
        self.daemons: list[Daemon] = []
        self.live: Daemon | None = None
        self.live_epoch = -1
        self._up = asyncio.Condition()
        self.kills: list[KillRecord] = []
        self.killed_at: dict[int, float] = {}  # epoch -> when it was SIGKILLed (start-up too)
        self.startup_kills = 0
        self.startup_kills_unready = 0
        self.success_at: dict[tuple[str, str], float] = {}  # (queue, name) -> when known done
        self.readds: Counter[str] = Counter()
        self.resolved: Counter[str] = Counter()  # named adds whose answer was lost, asked again
        self.pull: dict[str, PullRecord] = {}
        self.pull_deleted = 0
        self.problems: dict[str, list[str]] = defaultdict(list)
        self.final_stats: dict[str, int] = {}  # "<queue>" tasks, "<queue> dead" dead letters
        self.started = now()
        self.ended = self.started
        self._probe_pending: list[str] = []
        self._delivered: set[str] = set()  # task names answered 2xx (see _undelivered)
        self._delivered_upto = 0

    # ---------------------------------------------------------------- plan
    def _batches(self, rng: random.Random) -> list[Batch]:
        p = self.plan
        total = p.push_tasks + p.pull_tasks
        # Adds are paced over about the time the kills take, so they overlap every kill.
        mean_interval = (1 - p.quick_kill_share) * sum(p.kill_interval_s) / 2 + (
            p.quick_kill_share * sum(p.quick_kill_s) / 2
        )
        window_s = 0.85 * p.kills * (mean_interval + 0.6)
        left = {PUSH_QUEUE: p.push_tasks, PULL_QUEUE: p.pull_tasks}
        batches: list[Batch] = []
        next_id = 0
        while left[PUSH_QUEUE] + left[PULL_QUEUE]:
            queue = PUSH_QUEUE if rng.random() * total < left[PUSH_QUEUE] else PULL_QUEUE
            if not left[queue]:
                queue = PUSH_QUEUE if queue == PULL_QUEUE else PULL_QUEUE
            size = min(left[queue], 1 if rng.random() < 0.5 else rng.randint(2, 20))
            left[queue] -= size
            specs = []
            for _ in range(size):
                named = rng.random() < p.named_share
                countdown = 0.0
                if rng.random() < p.countdown_share:
                    countdown = round(rng.uniform(0.2, p.max_countdown_s), 3)
                spec = Spec(next_id, queue, named, countdown)
                if named:
                    spec.name = f"{'n' if queue == PUSH_QUEUE else 'p'}{next_id}"
                    self.by_name[queue, spec.name] = spec
                self.specs[next_id] = spec
                specs.append(spec)
                next_id += 1
            done = total - left[PUSH_QUEUE] - left[PULL_QUEUE]
            batches.append(Batch(queue, window_s * done / total, specs))
        return batches

    def _respond(self, request: web.Request, index: int) -> int:
        parts = request.path.split("/")
        task_id = int(parts[-1]) if parts[-1].isdigit() else -1
        if task_id in self.fail_ids and request.headers.get("X-AppEngine-TaskRetryCount") == "0":
            return 500
        return 200

    # ---------------------------------------------------------------- daemons
    def _new_daemon(self) -> tuple[Daemon, int]:
        epoch = self.epochs
        self.epochs += 1
        d = Daemon(
            self.tmp,
            QUEUE_YAML,
            default_target=f"{self.rx.url}/e{epoch}",
            extra_args=["--settings", str(self.settings)],
            db=self.db,
        )
        self.daemons.append(d)
        return d, epoch

    async def start(self) -> None:
        """Start the next daemon on the same file and make it the one clients use."""
        d, epoch = self._new_daemon()
        t0 = now()
        try:
            await d.start()
        except AssertionError as exc:
            self.problems["restart"].append(f"epoch {epoch}: {exc}")
            raise
        async with self._up:
            self.live, self.live_epoch = d, epoch
            self._up.notify_all()
        if self.kills and self.kills[-1].restarted_at is None:
            self.kills[-1].restarted_at = now()
            self.kills[-1].restart_s = now() - t0

    async def startup_kill(self) -> None:
        """Start a daemon and SIGKILL it a moment later, most often before it listens."""
        d, epoch = self._new_daemon()
        starting = asyncio.create_task(d.start())
        await asyncio.sleep(self.kill_rng.uniform(0.05, 0.5))  # a random moment of its start-up
        if d.proc is not None and d.proc.returncode is None:
            self.killed_at[epoch] = now()
            self.startup_kills_unready += not d.url  # before its ``listening`` line
            os.kill(d.proc.pid, signal.SIGKILL)
        with contextlib.suppress(AssertionError):  # "pushd did not start": killed, as intended
            await starting
        self.killed_at.setdefault(epoch, now())  # (if it was not spawned yet at that moment)
        await d.kill()
        self.startup_kills += 1
        self.kills[-1].startup_kills += 1

    async def kill(self) -> None:
        """SIGKILL the live daemon; clients wait for the next one."""
        d, epoch = self.live, self.live_epoch
        assert d is not None
        assert d.proc is not None
        async with self._up:
            self.live = None
        record = KillRecord(epoch, now(), self.rx.in_flight)
        self.kills.append(record)
        self.killed_at[epoch] = record.at
        os.kill(d.proc.pid, signal.SIGKILL)
        record.exit_code = await d.wait()

    async def current(self, after_epoch: int = -1) -> tuple[Daemon, int]:
        """The live daemon (a later one than ``after_epoch``), once there is one."""
        async with self._up:
            await self._up.wait_for(lambda: self.live is not None and self.live_epoch > after_epoch)
            assert self.live is not None
            return self.live, self.live_epoch

    async def failed(self, epoch: int, what: str, exc: BaseException) -> None:
        """A request to ``epoch`` failed: wait for the next daemon if it was killed."""
        if self.live is not None and self.live_epoch == epoch:
            # Not killed by us: pushd failed a request on its own.
            self.problems["api"].append(f"{what} on a live daemon: {type(exc).__name__}: {exc}")
            await asyncio.sleep(0.1)  # then try again, at a bounded pace
            return
        await self.current(after_epoch=epoch)

    async def _call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, int, float]:
        """One API call to the live daemon, again on the next one if refused while down.

        Raises :class:`AnswerLostError` if the request may have been handled but its answer was
        lost (the caller decides what that means); returns (status, body, epoch,
        time the answer came).
        """
        while True:
            d, epoch = await self.current()
            try:
                status, body = await api(
                    self.session, d, method, path, timeout=REQUEST_TIMEOUT, **kw
                )
            except aiohttp.ClientConnectorError as exc:  # never sent
                await self.failed(epoch, f"{method} {path}", exc)
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise AnswerLostError(epoch, exc) from exc
            return status, body, epoch, now()

    # ---------------------------------------------------------------- producers
    async def producer(self, batches: Iterator[Batch]) -> None:
        for batch in batches:
            delay = self.started + batch.offset_s - now()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing: adds are spread over the kills
            await self.add(batch.queue, batch.specs)

    async def add(self, queue: str, specs: list[Spec]) -> None:
        pending = specs
        while pending:
            try:
                status, body, _, at = await self._call(
                    "POST",
                    f"/api/v1/queues/{queue}/tasks",
                    json={"tasks": [s.body() for s in pending]},
                )
            except AnswerLostError as exc:
                # The answer is lost: the tasks may or may not exist. Unnamed ones stay unknown;
                # named ones are asked again, and the answer tells (OK, exists, tombstoned).
                for s in pending:
                    s.state = "resolving" if s.named else "unknown"
                pending = [s for s in pending if s.named]
                await self.failed(exc.epoch, f"add to {queue}", exc)
                continue
            if status != 200:
                self.problems["api"].append(f"add to {queue} answered {status}: {body}")
                for s in pending:
                    s.state = "unknown"
                return
            for s, result in zip(pending, body["tasks"], strict=True):
                self._added(s, result["name"], result["result"], at)
            return

    def _added(self, s: Spec, name: str, result: str, at: float) -> None:
        resolving = s.state == "resolving"
        if resolving:
            self.resolved[result] += 1
        s.name = name
        self.by_name[s.queue, name] = s
        if result == "OK" or (result == "TASK_ALREADY_EXISTS" and resolving):
            s.state, s.acked_at = "acked", at
        elif result == "TOMBSTONED_TASK" and resolving:
            # Added by the lost request and already done (deleted, for a pull task).
            s.state, s.acked_at = "acked", at
            self.success_at.setdefault((s.queue, name), at)
        else:
            s.state = "unknown"
            self.problems["readd"].append(f"new task {s.queue}/{name} answered {result}")

    # ---------------------------------------------------------------- success probes
    async def prober(self) -> None:
        """Learn which delivered push tasks the daemon has recorded as done (GET is 404)."""
        seen = 0
        while True:
            await self.rx.arrived(seen + 25, timeout_s=1.0)
            fresh = self.rx.deliveries[seen:]
            seen += len(fresh)
            names = [
                d.headers.get("X-AppEngine-TaskName", "")
                for d in fresh
                if 200 <= d.status < 300 and delivery_key(d)[1] in self.specs
            ]
            names = [n for n in names if (PUSH_QUEUE, n) not in self.success_at]
            self._probe_pending = (self._probe_pending + names)[-200:]
            sample = self._probe_pending[-8:]
            del self._probe_pending[-8:]
            for name in sample:
                try:
                    status, _, _, at = await self._call(
                        "GET", f"/api/v1/queues/{PUSH_QUEUE}/tasks/{name}"
                    )
                except AnswerLostError:
                    continue
                if status == 404:
                    self.success_at.setdefault((PUSH_QUEUE, name), at)
                elif status == 200:
                    self._probe_pending.insert(0, name)  # not yet recorded: ask again later

    async def readd(self) -> None:
        """After every restart, add used names again: each must be refused as tombstoned."""
        epoch = -1
        while True:
            _, epoch = await self.current(after_epoch=epoch)
            await self.readd_round()

    async def readd_round(self) -> None:
        done = sorted(self.success_at)
        for queue, name in self.readd_rng.sample(done, min(len(done), self.plan.readd_per_round)):
            spec = self._spec_of(queue, name)
            task = {**(spec.body() if spec else {}), "name": name}
            task.pop("countdown", None)
            try:
                status, body, _, _ = await self._call(
                    "POST", f"/api/v1/queues/{queue}/tasks", json=task
                )
            except AnswerLostError:
                continue  # answer lost: nothing learned (if it was taken, it runs: caught later)
            result = body["tasks"][0]["result"] if status == 200 else f"HTTP {status}"
            self.readds[result] += 1
            if result != "TOMBSTONED_TASK":
                self.problems["readd"].append(
                    f"{queue}/{name} (done at t+{self.success_at[queue, name] - self.started:.3f}s)"
                    f" added again answered {result}"
                )

    def _spec_of(self, queue: str, name: str) -> Spec | None:
        if queue == PULL_QUEUE and name in self.pull:
            return self.pull[name].spec
        return self.by_name.get((queue, name))

    # ---------------------------------------------------------------- pull workers
    async def pull_worker(self, stop: asyncio.Event) -> None:
        to_delete: list[str] = []
        while not stop.is_set():
            if to_delete:
                to_delete = await self._delete(to_delete)
                continue
            sent = now()
            try:
                status, body, epoch, _ = await self._call(
                    "POST",
                    f"/api/v1/queues/{PULL_QUEUE}/lease",
                    json={"lease_seconds": LEASE_S, "max_tasks": 20},
                )
            except AnswerLostError as exc:
                await self.failed(exc.epoch, "lease", exc)
                continue
            if status != 200:
                self.problems["api"].append(f"lease answered {status}: {body}")
                await asyncio.sleep(0.1)
                continue
            if not body["tasks"]:
                await asyncio.sleep(0.05)  # nothing due: leases come back by time alone
                continue
            for task in body["tasks"]:
                name = task["name"]
                record = self.pull.get(name)
                if record is None:
                    task_id = int(base64.b64decode(task["payload_base64"]))
                    record = self.pull[name] = PullRecord(self.specs.get(task_id))
                first = not record.leases
                lease = Lease(task["eta_us"], sent, epoch)
                record.leases.append(lease)
                if first and self.pull_rng.random() < self.plan.abandon_share:
                    lease.abandoned = True  # let it run out: the task must come back
                else:
                    to_delete.append(name)

    async def _delete(self, names: list[str]) -> list[str]:
        """Delete ``names``; answers the names still to delete (the answer was lost)."""
        sent = now()
        for name in names:
            record = self.pull[name]
            record.delete_tried_at = record.delete_tried_at or sent
        try:
            status, body, _, at = await self._call(
                "POST", f"/api/v1/queues/{PULL_QUEUE}/delete", json={"names": names}
            )
        except AnswerLostError as exc:
            await self.failed(exc.epoch, "delete", exc)
            return names
        if status != 200:
            self.problems["api"].append(f"delete answered {status}: {body}")
            await asyncio.sleep(0.1)  # then try again, at a bounded pace
            return names
        for answer in body["tasks"]:
            record = self.pull[answer["name"]]
            if record.deleted_at is None:
                record.deleted_at = at
                self.pull_deleted += 1
                self.success_at.setdefault((PULL_QUEUE, answer["name"]), at)
            if not answer["deleted"] and record.delete_tried_at == sent:
                # Nobody asked to delete it before: it vanished by itself.
                self.problems["pull_vanished"].append(
                    f"{answer['name']}: first delete answered false"
                )
        return []

    # ---------------------------------------------------------------- the campaign
    async def run(self) -> None:
        await self.start()
        self.started = now()  # adds are paced from here
        batches = iter(self.batches)
        producers = [
            asyncio.create_task(self.producer(batches)) for _ in range(self.plan.producers)
        ]
        stop_pull = asyncio.Event()
        helpers = [
            asyncio.create_task(self.prober()),
            asyncio.create_task(self.readd()),
            *(
                asyncio.create_task(self.pull_worker(stop_pull))
                for _ in range(self.plan.pull_workers)
            ),
        ]
        try:
            for _ in range(self.plan.kills):
                if self.kill_rng.random() < self.plan.quick_kill_share:
                    wait = self.kill_rng.uniform(*self.plan.quick_kill_s)
                else:
                    wait = self.kill_rng.uniform(*self.plan.kill_interval_s)
                await asyncio.sleep(wait)  # a random moment: nothing to wait for
                await self.kill()
                if self.kill_rng.random() < self.plan.startup_kill_share:
                    await self.startup_kill()
                await self.start()
            await asyncio.gather(*producers)
            await self.drain()
            stop_pull.set()
        finally:
            for t in [*producers, *helpers]:
                t.cancel()
            await asyncio.gather(*producers, *helpers, return_exceptions=True)
        self.ended = now()
        await self.readd_round()
        await self.finish()

    def _undelivered(self) -> list[Spec]:
        fresh = self.rx.deliveries[self._delivered_upto :]
        self._delivered_upto += len(fresh)
        self._delivered.update(
            d.headers.get("X-AppEngine-TaskName", "") for d in fresh if 200 <= d.status < 300
        )
        return [
            s
            for s in self.specs.values()
            if s.queue == PUSH_QUEUE and s.state == "acked" and s.name not in self._delivered
        ]

    def _pull_pending(self) -> list[str]:
        """Pull tasks acknowledged or leased and not yet deleted by a worker."""
        left = [name for name, r in self.pull.items() if r.deleted_at is None]
        left += [
            s.name or ""
            for s in self.specs.values()
            if s.queue == PULL_QUEUE and s.state == "acked" and not self._pull_done(s)
        ]
        return left

    async def _stats(self, queue: str, key: str = "tasks") -> int:
        status, body, _, _ = await self._call("GET", f"/api/v1/queues/{queue}")
        assert status == 200, body
        return int(body["stats"][key])

    async def drain(self) -> None:
        """Wait (bounded) until every acknowledged task is delivered or deleted and the store
        is empty: deliveries are awaited; the store's counts are polled, nothing to await."""
        deadline = now() + self.plan.drain_timeout_s
        while self._undelivered() and await self.rx.arrived(
            len(self.rx.deliveries) + 1, deadline - now()
        ):
            pass
        while now() < deadline:
            if (
                not self._pull_pending()
                and await self._stats(PUSH_QUEUE) == 0
                and await self._stats(PULL_QUEUE) == 0
            ):
                return
            await asyncio.sleep(0.1)  # poll: the daemon's counts have no event to await

    def _pull_done(self, s: Spec) -> bool:
        """Deleted by a worker, or found already done when its lost add was asked again."""
        r = self.pull.get(s.name or "")
        return (r is not None and r.deleted_at is not None) or (
            PULL_QUEUE,
            s.name,
        ) in self.success_at

    async def finish(self) -> None:
        """Stats, a clean stop, the file's soundness, and one more start on it."""
        for queue in (PUSH_QUEUE, PULL_QUEUE):
            self.final_stats[queue] = await self._stats(queue)
            self.final_stats[f"{queue} dead"] = await self._stats(queue, "dead_letters")
        d = self.live
        assert d is not None
        async with self._up:
            self.live = None
        code = await d.stop()
        if code != 0:
            self.problems["exit"].append(f"SIGTERM: exit code {code}\n" + "\n".join(d.log[-20:]))
        self.check_database()
        delivered = len(self.rx.deliveries)
        await self.start()
        for queue in (PUSH_QUEUE, PULL_QUEUE):
            left = await self._stats(queue)
            if left:
                self.problems["stored"].append(f"{queue}: {left} tasks after a clean restart")
        await self.readd_round()
        d = self.live
        assert d is not None
        async with self._up:
            self.live = None
        code = await d.stop()
        if code != 0:
            self.problems["exit"].append(f"SIGTERM after restart: exit code {code}")
        if len(self.rx.deliveries) != delivered:
            self.problems["after_success"].append("deliveries after the last clean restart")

    def check_database(self) -> None:
        con = sqlite3.connect(self.db)
        try:
            check = [row[0] for row in con.execute("PRAGMA integrity_check")]
            if check != ["ok"]:
                self.problems["database"].append(f"integrity_check: {check[:5]}")
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
            if {"tasks", "queue_totals"} <= tables:
                counted = dict(con.execute("SELECT queue, COUNT(*) FROM tasks GROUP BY queue"))
                totals = dict(con.execute("SELECT queue, tasks FROM queue_totals"))
                for queue in set(counted) | set(totals):
                    if counted.get(queue, 0) != totals.get(queue, 0):
                        self.problems["database"].append(
                            f"{queue}: {counted.get(queue, 0)} task rows, "
                            f"queue_totals says {totals.get(queue, 0)}"
                        )
        finally:
            con.close()


# -------------------------------------------------------------------- judging


@dataclass
class Verdict:
    summary: dict[str, Any]
    violations: dict[str, list[str]]
    per_kill: list[dict[str, Any]]

    def line(self) -> str:
        s = self.summary
        return (
            f"crash campaign: seed={s['seed']} acknowledged={s['acknowledged']} "
            f"delivered={s['delivered']} lost={s['lost']} duplicated={s['duplicated']} "
            f"(across kills {s['duplicated_across_kills']}, after a recorded failure "
            f"{s['duplicated_after_failure']}) kills={s['kills']} "
            f"(+{s['startup_kills']} during start-up) unknown={s['unknown']} "
            f"pull acknowledged={s['pull_acknowledged']} leases={s['pull_leases']} "
            f"came back={s['pull_came_back']} deleted={s['pull_deleted']} "
            f"tombstone re-adds refused={s['readds_refused']} "
            f"violations={sum(map(len, self.violations.values()))} "
            f"in {s['seconds']:.1f}s"
        )


def judge(c: Campaign) -> Verdict:
    """Figures and violations (by category, see CHECKS) from what the campaign recorded."""
    v: dict[str, list[str]] = {k: list(c.problems.get(k, [])) for k in CHECKS}
    t0 = c.started
    kill_at = c.killed_at
    by_name: dict[str, list[Delivery]] = defaultdict(list)
    name_of_id: dict[int, str] = {}
    for d in c.rx.deliveries:
        epoch, task_id = delivery_key(d)
        name = d.headers.get("X-AppEngine-TaskName", "")
        spec = c.specs.get(task_id)
        if epoch < 0 or spec is None or spec.queue != PUSH_QUEUE:
            v["phantom"].append(f"{d.method} {d.path} (task {name})")
            continue
        expected = (
            spec.name if spec.named or spec.state == "acked" else name_of_id.get(task_id, name)
        )
        if name != expected:
            v["phantom"].append(f"{d.path}: task {name}, expected {expected}")
            continue
        name_of_id[task_id] = name
        by_name[name].append(d)

    dup_across = dup_failure = 0
    dup_per_epoch: Counter[int] = Counter()
    dup_age: dict[int, float] = {}  # killed epoch -> oldest first delivery it repeated (s)
    duplicated = 0
    for name, ds in by_name.items():
        ds.sort(key=lambda d: d.started_at)
        counts = [retry_count(d) for d in ds]
        if any(b < a for a, b in itertools.pairwise(counts)):
            v["retry_regress"].append(f"{name}: retry counts {counts}")
        ok = [d for d in ds if 200 <= d.status < 300]
        if len(ok) > 1:
            duplicated += 1
        for a, b in itertools.pairwise(ok):
            ea, eb = delivery_key(a)[0], delivery_key(b)[0]
            if eb > ea:
                dup_across += 1
                dup_per_epoch[ea] += 1
                # Its success was not recorded before the kill: it was in flight (claimed)
                # then. A claim lasts CLAIM_S: anything older would have run again before.
                before = kill_at.get(ea, float("inf")) - a.started_at
                dup_age[ea] = max(dup_age.get(ea, 0.0), before)
                if before > CLAIM_S + 1:
                    v["duplicate"].append(
                        f"{name}: delivered by epoch {ea} {before:.1f}s before its kill, "
                        f"again by epoch {eb}"
                    )
            elif retry_count(b) > retry_count(a):
                dup_failure += 1  # the daemon recorded the attempt as failed (deadline)
            else:
                v["duplicate"].append(
                    f"{name}: delivered twice by epoch {ea} (t+{a.started_at - t0:.3f}s, "
                    f"t+{b.started_at - t0:.3f}s), retry count {retry_count(a)} both times"
                )
        done_at = c.success_at.get((PUSH_QUEUE, name))
        if done_at is not None:
            late = [d for d in ds if d.started_at > done_at]
            if late:
                v["after_success"].append(
                    f"{name}: success recorded at t+{done_at - t0:.3f}s, delivered again at "
                    + ", ".join(
                        f"t+{d.started_at - t0:.3f}s (epoch {delivery_key(d)[0]})" for d in late
                    )
                )

    acked = [s for s in c.specs.values() if s.queue == PUSH_QUEUE and s.state == "acked"]
    lost = [
        s for s in acked if not any(200 <= d.status < 300 for d in by_name.get(s.name or "", []))
    ]
    for s in lost[:50]:
        v["lost"].append(
            f"{s.name} (id {s.id}, countdown {s.countdown}, acked t+{(s.acked_at or t0) - t0:.3f}s)"
        )
    if len(lost) > 50:
        v["lost"].append(f"... and {len(lost) - 50} more")
    for queue, left in c.final_stats.items():
        if left:
            what = "dead letters" if queue.endswith(" dead") else "tasks"
            v["stored"].append(f"{queue.split()[0]}: {left} {what} stored at the end")
    unknown = [s for s in c.specs.values() if s.queue == PUSH_QUEUE and s.state == "unknown"]
    ran_ids = {delivery_key(d)[1] for d in c.rx.deliveries if 200 <= d.status < 300}
    unknown_ran = sum(1 for s in unknown if s.id in ran_ids)

    # Pull: leases never overlap, deleted tasks never come back, abandoned ones do.
    came_back = came_back_across_kill = leases = 0
    max_late_s = 0.0
    kill_times = sorted(kill_at.values())
    for name, r in c.pull.items():
        r.leases.sort(key=lambda lease: lease.start_us)
        leases += len(r.leases)
        for a, b in itertools.pairwise(r.leases):
            if b.start_us < a.eta_us:
                v["pull_overlap"].append(
                    f"{name}: leased again {(a.eta_us - b.start_us) / US:.3f}s before its lease ended"
                )
        for i, lease in enumerate(r.leases):
            if r.deleted_at is not None and lease.sent_at > r.deleted_at:
                v["pull_deleted_back"].append(
                    f"{name}: deleted at t+{r.deleted_at - t0:.3f}s, leased again by a request "
                    f"sent at t+{lease.sent_at - t0:.3f}s"
                )
            if lease.abandoned:
                later = r.leases[i + 1 :]
                if not later:
                    v["pull_not_back"].append(f"{name}: left un-deleted, never leased again")
                    continue
                came_back += 1
                max_late_s = max(max_late_s, (later[0].start_us - lease.eta_us) / US)
                if any(lease.sent_at < k < later[0].sent_at for k in kill_times):
                    came_back_across_kill += 1
    pull_acked = [s for s in c.specs.values() if s.queue == PULL_QUEUE and s.state == "acked"]
    not_deleted = [s for s in pull_acked if not c._pull_done(s)]
    for s in not_deleted[:50]:
        v["pull_vanished" if c.final_stats.get(PULL_QUEUE) == 0 else "stored"].append(
            f"pull task {s.name} (id {s.id}) acknowledged, never deleted by a worker"
        )

    per_kill = [
        {
            "epoch": k.epoch,
            "at_s": round(k.at - t0, 3),
            "receiver_in_flight": k.receiver_in_flight,
            "duplicated_across": dup_per_epoch.get(k.epoch, 0),
            "oldest_duplicate_s": round(dup_age.get(k.epoch, 0.0), 3),
            "exit_code": k.exit_code,
            "restart_s": None if k.restart_s is None else round(k.restart_s, 3),
            "startup_kills_after": k.startup_kills,
        }
        for k in c.kills
    ]
    ok_deliveries = sum(1 for d in c.rx.deliveries if 200 <= d.status < 300)
    summary = {
        "seed": c.plan.seed,
        "push_tasks": c.plan.push_tasks,
        "acknowledged": len(acked),
        "unknown": len(unknown),
        "unknown_delivered": unknown_ran,
        "lost_answers_resolved": dict(c.resolved),
        "delivered": len(acked) - len(lost),
        "deliveries_2xx": ok_deliveries,
        "deliveries_all": len(c.rx.deliveries),
        "lost": len(lost),
        "duplicated": duplicated,
        "duplicated_across_kills": dup_across,
        "duplicated_after_failure": dup_failure,
        "kills": len(c.kills),
        "startup_kills": c.startup_kills,
        "startup_kills_before_listening": c.startup_kills_unready,
        "max_receiver_in_flight_at_kill": max((k.receiver_in_flight for k in c.kills), default=0),
        "max_duplicates_per_kill": max(dup_per_epoch.values(), default=0),
        # how long before its kill the oldest repeated delivery was made (bound: CLAIM_S + 1)
        "max_duplicate_age_s": round(max(dup_age.values(), default=0.0), 3),
        "success_confirmed": sum(1 for q, _ in c.success_at if q == PUSH_QUEUE),
        "readds_refused": c.readds.get("TOMBSTONED_TASK", 0),
        "readds_other": sum(n for r, n in c.readds.items() if r != "TOMBSTONED_TASK"),
        "pull_tasks": c.plan.pull_tasks,
        "pull_acknowledged": len(pull_acked),
        "pull_leases": leases,
        "pull_abandoned": sum(1 for r in c.pull.values() for lease in r.leases if lease.abandoned),
        "pull_came_back": came_back,
        "pull_came_back_across_kill": came_back_across_kill,
        "pull_max_late_s": round(max_late_s, 3),
        "pull_deleted": c.pull_deleted,
        "final_stats": c.final_stats,
        "seconds": c.ended - c.started,
        "violations": {k: len(x) for k, x in v.items() if x},
    }
    return Verdict(summary, v, per_kill)
