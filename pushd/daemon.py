"""The composition root: build every part from the settings and run them together.

``run`` loads queue.yaml, opens the store, starts the HTTP API, then runs the scheduler until
SIGTERM or SIGINT. Shutdown is a designed path: the API stops taking requests, the scheduler
stops claiming, in-flight deliveries get ``shutdown_grace_s`` to finish, and whatever was cut
off is simply due again at the next start (its claim expires). SIGHUP reloads queue.yaml; an
invalid file is reported and the old configuration stays.

The scheduler, the API and the signal handling share one anyio task group, so a crash in any
of them stops the daemon loudly instead of leaving it half alive.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio

from pushd import (
    api,
    clock,
    cluster,
    config,
    dispatch,
    errors,
    logs,
    metrics,
    scheduler,
    settings,
    tickets,
)
from pushd.api import server
from pushd.store import base, describe_url, open_store


class Daemon:
    """One running pushd: holds the current queue.yaml and the parts built from it."""

    def __init__(
        self,
        cfg: settings.Settings,
        queue_yaml: str | Path,
        *,
        clock_: clock.Clock | None = None,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = cfg
        self.queue_yaml = Path(queue_yaml)
        self.clock = clock_ or clock.SystemClock()
        self.on_ready = on_ready
        self.queues = config.load_file(self.queue_yaml)
        self._stop = asyncio.Event()

    def current_queues(self) -> config.QueuesConfig:
        return self.queues

    def request_stop(self) -> None:
        self._stop.set()

    def reload(self, sched: scheduler.Scheduler) -> None:
        try:
            new = config.load_file(self.queue_yaml)
        except errors.ConfigError as exc:
            logs.event(
                "config_rejected",
                logging.ERROR,
                file=str(self.queue_yaml),
                problems=len(exc.issues),
                first=str(exc.issues[0]) if exc.issues else "",
            )
            return
        self.queues = new
        sched.reconfigure(new)
        logs.event("config_reloaded", file=str(self.queue_yaml), queues=len(new.queues))

    async def run(self) -> None:
        s = self.settings
        us = clock.US_PER_SECOND
        store = await open_store(
            s.database,
            durability=s.durability,
            tombstone_retention_us=round(s.tombstone_retention_s * us),
            dead_letter_retention_us=round(s.dead_letter_retention_s * us),
        )
        try:
            await self._give_back_claims(store)
            paused = await store.paused_queues()
            shared = store if isinstance(store, base.Shared) else None
            me = cluster.daemon_id()
            if shared is None:
                key = None  # one random key for deliveries and /rpc_http, never stored
                ownership = None
            else:  # a ticket minted by one daemon must be good at all of them
                key = await shared.secret("api_tickets", lambda: secrets.token_bytes(32))
                ownership = await cluster.Cluster.join(shared, me, self.queues)
            api_tickets = tickets.Tickets(key)
            counters = metrics.Metrics(self.clock)
            session = dispatch.make_session(s.max_connections)
            try:
                deliverer = dispatch.Deliverer(
                    session,
                    targets=s.targets,
                    default_target=s.default_target,
                    signing_secret=s.signing_secret,
                    api_tickets=api_tickets,
                )
                sched = scheduler.Scheduler(
                    store=store,
                    clock=self.clock,
                    queues=self.queues,
                    deliver=deliverer,
                    default_deadline_us=round(s.default_dispatch_deadline_s * us),
                    max_connections=s.max_connections,
                    paused=paused,
                    grace_us=round(s.shutdown_grace_s * us),
                    owned=None if ownership is None else ownership.owned,
                    metrics_=counters,
                )
                peers = None
                if shared is not None and ownership is not None:
                    peers = cluster.Cluster(
                        shared,
                        sched,
                        self.current_queues,
                        self.clock,
                        daemon=me,
                        initial=ownership,
                    )
                app = api.create_app(
                    store=store,
                    clock=self.clock,
                    queues=self.current_queues,
                    engine=sched,
                    settings=s,
                    api_tickets=api_tickets,
                    metrics_=counters,
                )
                await self._serve(sched, app, peers)
            finally:
                await session.close()
        finally:
            await store.close()

    async def _give_back_claims(self, store: base.Store) -> None:
        """A store this daemon holds alone (the SQLite file under its lock): the previous
        daemon is gone, and its claims are due now rather than when they end (after a kill -9
        in mid-delivery that was two dispatch deadlines: 20 minutes with the defaults)."""
        if isinstance(store, base.Exclusive):
            given = await store.give_back_claims(now_us=self.clock.now_us())
            if given:
                logs.event("claims_given_back", tasks=given)

    async def _serve(
        self, sched: scheduler.Scheduler, app: object, peers: cluster.Cluster | None
    ) -> None:
        srv = await server.Server.start(app, self.settings.host, self.settings.port)  # type: ignore[arg-type]
        logs.event(
            "listening",
            always=True,  # with --port 0 this line is the only way to learn the port
            url=srv.url,
            queues=len(self.queues.queues),
            db=describe_url(self.settings.database),
        )
        if self.on_ready is not None:
            self.on_ready(srv.url)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload, sched)
        try:
            async with anyio.create_task_group() as tg:

                async def deliver() -> None:
                    await sched.run()
                    if peers is not None:
                        peers.stop()  # only now: its queues go to the others when it is done

                tg.start_soon(deliver, name="pushd-scheduler")
                if peers is not None:
                    tg.start_soon(peers.run, name="pushd-cluster")
                await self._stop.wait()
                logs.event("shutdown", in_flight=sched.in_flight)
                if peers is not None:
                    peers.drain()
                await srv.stop()
                sched.stop()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await srv.stop()


def run_event_loop(main: Coroutine[Any, Any, None], event_loop: str = "auto") -> None:
    """Run ``main`` to completion on uvloop (``uvloop``, or ``auto`` when it is installed),
    else on asyncio's own loop. uvloop cut the daemon's CPU per delivery by about a tenth in
    the delivery benchmark (benchmarks/README.md)."""
    if event_loop != "asyncio":
        try:
            import uvloop  # optional: asyncio's loop works as well
        except ImportError:
            if event_loop == "uvloop":
                main.close()
                raise errors.PushdError("event_loop: uvloop is not installed") from None
        else:
            uvloop.run(main)
            return
    asyncio.run(main)
