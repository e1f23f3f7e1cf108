"""Several daemons on one PostgreSQL database: changes announced with ``NOTIFY``, queue
ownership (:meth:`Cluster.own_queues`, see :mod:`pushd.cluster`), shared secrets.

Changes another daemon must act on (a task added or made due, a pause, a delete or purge) are
announced in the transaction that makes them, so they arrive only once committed;
:meth:`Cluster.watch` turns them into :class:`~pushd.store.base.Change` calls.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg
import orjson

from pushd import errors, models
from pushd.store import base
from pushd.store.postgres_schema import TRANSIENT, Q, transaction

CHANNEL = "pushd_changes"
#: pg_notify refuses payloads of 8,000 bytes or more: names to forget go in chunks below that.
NOTIFY_MAX_BYTES = 7000
LOCK_OWNERS = 0x70757369  # advisory lock key ("pushd_owners")


def notify_payloads(change: base.Change) -> list[str]:
    """``change`` as NOTIFY payloads (several when it names many tasks)."""
    head: dict[str, Any] = {"k": change.kind, "q": change.queue}
    if change.eta_us is not None:
        head["e"] = change.eta_us
    if change.paused is not None:
        head["p"] = change.paused
    if change.names is None:
        return [orjson.dumps(head).decode()]
    payloads: list[str] = []
    chunk: list[str] = []
    size = len(change.queue) + 40
    for name in change.names:
        if chunk and size + len(name) + 3 > NOTIFY_MAX_BYTES:
            payloads.append(orjson.dumps({**head, "n": chunk}).decode())
            chunk, size = [], len(change.queue) + 40
        chunk.append(name)
        size += len(name.encode()) + 3
    if chunk:
        payloads.append(orjson.dumps({**head, "n": chunk}).decode())
    return payloads


def parse_change(payload: str) -> base.Change | None:
    try:
        data = orjson.loads(payload)
        names = data.get("n")
        return base.Change(
            kind=data["k"],
            queue=data["q"],
            eta_us=data.get("e"),
            paused=data.get("p"),
            names=None if names is None else tuple(names),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None  # not ours (someone else NOTIFYing on the channel)


def _live_blob(stats: models.LiveStats) -> bytes:
    return orjson.dumps(dataclasses.asdict(stats))


def _live_from(blob: bytes | None) -> models.LiveStats:
    if blob is None:
        return models.LiveStats()
    return models.LiveStats(**orjson.loads(blob))


async def announce(conn: asyncpg.Connection, change: base.Change) -> None:
    for payload in notify_payloads(change):
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)


async def announce_due(conn: asyncpg.Connection, etas: Sequence[tuple[str, int]]) -> None:
    """Announce each queue of ``etas`` due at its earliest ETA there."""
    due: dict[str, int] = {}
    for queue, eta in etas:
        due[queue] = min(eta, due.get(queue, eta))
    for queue, eta in due.items():
        await announce(conn, base.Change("due", queue, eta_us=eta))


def _fair_share(
    daemon: str, queues: Sequence[str], ranks: list[str], owners: Mapping[str, Any], now: int
) -> tuple[list[str], list[str], list[str]]:
    """(the queues ``daemon`` keeps, those it gives back, those nobody holds) given its share."""
    daemons = len(ranks)
    # Shares that add up to the queues: n // d each, one more for the first n % d
    # daemons in id order, so every daemon converges on its share and no queue is left.
    share = len(queues) // daemons + (ranks.index(daemon) < len(queues) % daemons)
    mine = sorted(q for q in queues if (r := owners.get(q)) is not None and r["owner"] == daemon)
    free = sorted(
        q
        for q in queues
        if (r := owners.get(q)) is None or (r["owner"] != daemon and r["until_us"] <= now)
    )
    return mine[:share], mine[share:], free[: max(0, share - len(mine[:share]))]


class Cluster:
    """:class:`~pushd.store.base.Shared`, for :class:`~pushd.store.postgres.PostgresStore`."""

    _pool: asyncpg.Pool
    _dsn: str
    _listener: asyncpg.Connection | None
    _on_change: Callable[[base.Change], None] | None

    # ---- several daemons (base.Shared)
    async def watch(self, on_change: Callable[[base.Change], None]) -> None:
        """Call ``on_change`` for every change committed by any daemon (this one included)."""
        self._on_change = on_change
        await self._listen()

    async def rewatch(self) -> bool:
        """Listen again if the listening connection was lost (the server restarted, a network
        cut); True when it was, as changes may have been missed meanwhile."""
        if self._on_change is None or (
            self._listener is not None and not self._listener.is_closed()
        ):
            return False
        await self._listen()
        return True

    async def _listen(self) -> None:
        def received(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            if self._on_change is not None and (change := parse_change(payload)) is not None:
                self._on_change(change)

        try:
            conn = await asyncpg.connect(self._dsn)
        except TRANSIENT as exc:
            raise errors.TransientError(f"cannot listen for changes: {exc}") from None
        try:
            await conn.add_listener(CHANNEL, received)
        except TRANSIENT as exc:
            await conn.close()
            raise errors.TransientError(f"cannot listen for changes: {exc}") from None
        self._listener = conn

    async def own_queues(
        self,
        daemon: str,
        queues: Sequence[str],
        live: Mapping[str, models.LiveStats],
        *,
        ttl_us: int,
        take: bool = True,
    ) -> base.Ownership:
        """Heartbeat, then hold this daemon's fair share of ``queues`` for ``ttl_us`` more
        (without ``take``, only renew what it holds: it is stopping).

        Serialised between daemons by an advisory lock. A daemon keeps the queues it holds up to
        its share (``queues // live daemons``, plus one for the first ``queues % live daemons``
        daemons by id), gives back the rest, and takes queues nobody holds (never held, given
        back, or whose owner stopped renewing) up to its share.
        Times are the database's clock, so the daemons' clocks need not agree.
        """
        async with transaction(self._pool) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_OWNERS)
            now = int(await conn.fetchval(Q["db_now_us"]))
            about = f"{socket.gethostname()} pid {os.getpid()}"
            await conn.execute(Q["heartbeat"], daemon, now, about)
            await conn.execute(Q["forget_daemons"], now - ttl_us, [])
            ranks = [r[0] for r in await conn.fetch(Q["live_daemons"])]
            owners = {r["queue"]: r for r in await conn.fetch(Q["owners"])}
            keep, give_back, free = _fair_share(daemon, queues, ranks, owners, now)
            held = keep + (free if take else [])
            for q in held:
                blob = _live_blob(live.get(q, _IDLE))
                await conn.execute(Q["set_owner"], q, daemon, now + ttl_us, blob)
            for q in give_back:
                await conn.execute(Q["release_owner"], q, daemon)
        others = {
            q: _live_from(r["live"])
            for q, r in owners.items()
            if r["owner"] != daemon and r["until_us"] > now
        }
        return base.Ownership(owned=frozenset(held), others=others, daemons=len(ranks))

    async def leave(self, daemon: str) -> None:
        """This daemon stops: its queues are free for the others at once."""
        async with transaction(self._pool) as conn:
            await conn.execute(Q["release_all"], daemon)
            await conn.execute(Q["forget_daemons"], 0, [daemon])

    async def secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        """A secret shared by every daemon of this database (made by the first to ask)."""
        async with transaction(self._pool) as conn:
            await conn.execute(Q["put_secret"], name, make())
            return bytes(await conn.fetchval(Q["get_secret"], name))


_IDLE = models.LiveStats()
