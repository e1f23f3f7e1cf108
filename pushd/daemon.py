"""The composition root: build every part from the settings and run them together.

``run`` loads queue.yaml, opens the store, starts the HTTP API, then runs the scheduler until
SIGTERM or SIGINT. Shutdown is a designed path: the API stops taking requests, the scheduler
stops claiming, in-flight deliveries get ``shutdown_grace_s`` to finish (the daemon logs
``shutdown in_flight=N remaining_s=S`` every ``shutdown_report_s`` meanwhile), and whatever was
cut off is simply due again at the next start (its claim expires). A second SIGTERM or SIGINT
stops at once: every claim is given back, due again at once, and the exit code is 128 plus the
signal's number (143, 130) so a supervisor can tell. SIGHUP reloads queue.yaml; an invalid
file is reported and the old configuration stays.

A queue removed from queue.yaml keeps its tasks, as on App Engine: at start and after each
reload the store names the queues it holds tasks of that the file lacks, and they are shown
everywhere as removed and paused, their tasks listable, deletable and purgeable
(``QueuesConfig.removed``); each removal is logged with its task count (``queue_removed``).

The scheduler, the API and the signal handling share one anyio task group, so a crash in any
of them stops the daemon loudly instead of leaving it half alive.

Queues created through the Cloud Tasks API are stored; the daemon runs them beside queue.yaml's
(:mod:`pushd.service.api_queues`): read at start, applied again after each API change (and,
on PostgreSQL, each change another daemon announces), kept by every reload.

A reload is all or nothing: the SIGHUP handler only raises a flag; a task of the daemon reads
and validates the file in a thread (thousands of queues take most of a second to parse),
refuses a mode change that would strand stored tasks, then applies the whole file (scheduler
in chunks, cluster ownership, API view) and logs ``config_reloaded`` or ``config_rejected``
once. SIGHUPs that arrive during a reload make one more reload after it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio

from pushd import (
    __version__,
    api,
    clock,
    cluster,
    daemon_queues,
    dispatch,
    errors,
    logs,
    metrics,
    models,
    reports,
    scheduler,
    service,
    settings,
    tickets,
)
from pushd.api import server
from pushd.cloudtasks import backend as cloudtasks_backend
from pushd.cloudtasks import grpc_server
from pushd.cloudtasks import rest as cloudtasks_rest
from pushd.dispatch import url_policy
from pushd.queue_yaml import config
from pushd.service import api_queues
from pushd.store import base, describe_url, open_store, server_versions

#: The exit code of a forced stop is this plus the signal's number (the shell's convention).
SIGNAL_EXIT_BASE = 128


class Daemon(daemon_queues.Reloading):
    """One running pushd: holds the current queue.yaml and the parts built from it."""

    def __init__(
        self,
        cfg: settings.Settings,
        queue_yaml: str | Path,
        *,
        clock_: clock.Clock | None = None,
        on_ready: Callable[[str], None] | None = None,
        queues: config.QueuesConfig | None = None,
    ) -> None:
        self.settings = cfg
        self.queue_yaml = Path(queue_yaml)
        self.clock = clock_ or clock.SystemClock()
        self.on_ready = on_ready
        # ``queues`` given: queue.yaml does not exist yet (the implicit default queue); SIGHUP
        # loads it once it does.
        self.queues = config.load_file(self.queue_yaml) if queues is None else queues
        self._file = self.queues  # queue.yaml alone; self.queues adds the API's queues
        self._api: list[models.ApiQueue] = []
        self._applying = asyncio.Lock()  # a reload and an API queue change, one at a time
        self._api_wanted = asyncio.Event()  # another daemon changed the API queues
        self._stop = asyncio.Event()
        self._reload_wanted = asyncio.Event()
        self.versions: dict[str, Any] = {}  # log fields: python=, sqlite=, postgresql=
        self.forced_by: int | None = None  # the signal that forced the stop, if one did

    @property
    def exit_code(self) -> int:
        """0 after a clean stop; 128 + the signal's number after a forced one."""
        return 0 if self.forced_by is None else SIGNAL_EXIT_BASE + self.forced_by

    def current_queues(self) -> config.QueuesConfig:
        return self.queues

    def request_stop(self) -> None:
        self._stop.set()

    def _on_stop_signal(self, signum: int, sched: scheduler.Scheduler) -> None:
        """SIGTERM or SIGINT: the first stops cleanly, a second one stops at once."""
        if not self._stop.is_set():
            self.request_stop()
            return
        if self.forced_by is None:
            self.forced_by = signum
            logs.event(
                "shutdown_forced",
                logging.WARNING,
                signal=signal.Signals(signum).name,
                in_flight=sched.in_flight,
                exit_code=self.exit_code,
            )
            sched.abandon()  # only sets events: safe from a signal handler

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
            self._api = await store.api_queues()
            self.queues = api_queues.merged(self._file, self._api)
            await self._find_removed(store)
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
            transport = dispatch.make_transport(s.max_connections, s.transport)
            if s.transport == "pyreqwest":  # docs/RELIABILITY.md, "Transport seam"
                logs.event("transport_experimental", logging.WARNING, transport=s.transport)
            try:
                deliverer = dispatch.Deliverer(
                    transport,
                    targets=s.targets,
                    default_target=s.default_target,
                    signing_secret=s.signing_secret,
                    api_tickets=api_tickets,
                    policy=url_policy.UrlPolicy(s.http_targets),
                    oauth_token=s.cloud_tasks.oauth_token,
                )
                owned = None if ownership is None else ownership.owned
                sched = self._scheduler(store, deliverer, paused, owned, counters)
                peers = None
                if shared is not None and ownership is not None:
                    peers = cluster.Cluster(
                        shared,
                        sched,
                        self.current_queues,
                        self.clock,
                        daemon=me,
                        initial=ownership,
                        on_queues=self._api_wanted.set,
                    )
                domain = service.Service(
                    store=store,
                    clock=self.clock,
                    queues=self.current_queues,
                    engine=sched,
                    metrics_=counters,
                    apply_api_queues=lambda: self.apply_api_queues(sched, store, peers),
                    oidc_issuer=s.cloud_tasks.oidc_issuer,
                )
                # An HTTP task's oidc_token: an ID token minted at each attempt (the service
                # holds the keys, so the deliverer, made first, gets its minter now).
                deliverer.oidc_minter = domain.oidc.mint
                app = api.create_app(service=domain, settings=s, api_tickets=api_tickets)
                cloudtasks_rest.add_routes(app)  # the Cloud Tasks API under /v2/, /v2beta3/
                self.versions = await server_versions(store)  # for the `listening` line
                await self._serve(sched, store, app, peers, domain)
            finally:
                await transport.close()
        finally:
            await store.close()

    def _scheduler(
        self,
        store: base.Store,
        deliver: dispatch.Deliverer,
        paused: set[str],
        owned: frozenset[str] | None,
        counters: metrics.Metrics,
    ) -> scheduler.Scheduler:
        """The push scheduler under the daemon's settings (deadline, connections, grace)."""
        s, us = self.settings, clock.US_PER_SECOND
        return scheduler.Scheduler(
            store=store,
            clock=self.clock,
            queues=self.queues,
            deliver=deliver,
            default_deadline_us=round(s.default_dispatch_deadline_s * us),
            max_connections=s.max_connections,
            paused=paused,
            grace_us=round(s.shutdown_grace_s * us),
            owned=owned,
            metrics_=counters,
        )

    async def _find_removed(self, store: base.Store) -> None:
        """At start: the queues the store holds tasks of that queue.yaml lacks (removed while
        pushd was stopped, or by a reload before it stopped) are shown and logged as removed."""
        held = await store.unlisted(self.queues.queues)
        self.queues = reports.with_removed(self.queues, held)
        await reports.log_removed(list(held), held)

    async def _give_back_claims(self, store: base.Store) -> None:
        """A store this daemon holds alone (the SQLite file under its lock): the previous
        daemon is gone, and its claims are due now rather than when they end (after a kill -9
        in mid-delivery that was two dispatch deadlines: 20 minutes with the defaults)."""
        if isinstance(store, base.Exclusive):
            given = await store.give_back_claims(now_us=self.clock.now_us())
            if given:
                logs.event("claims_given_back", tasks=given)

    async def _serve(
        self,
        sched: scheduler.Scheduler,
        store: base.Store,
        app: object,
        peers: cluster.Cluster | None,
        domain: service.Service,
    ) -> None:
        # The handlers come before the ``listening`` line: a SIGHUP sent as soon as it shows
        # (a deploy script, a test) killed the daemon, SIGHUP's default action.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig, sched)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            s = self.settings
            limits = server.Limits(
                read_timeout_s=s.api_read_timeout_s,
                max_connections=s.max_api_connections,
                delivery_files=s.max_connections,
            )
            srv = await server.Server.start(app, s.host, s.port, limits=limits)  # type: ignore[arg-type]
            if s.cloud_tasks.oidc_issuer is None:  # tokens name the daemon that signed them
                domain.oidc.issuer = srv.url
            try:
                grpc_srv = await self._start_grpc(app)
                try:
                    await self._serve_with(srv, sched, store, peers, grpc_srv)
                finally:
                    if grpc_srv is not None:
                        await grpc_srv.stop()
            finally:
                await srv.stop()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _start_grpc(self, app: object) -> grpc_server.GrpcServer | None:
        """The Cloud Tasks gRPC listener, when ``cloud_tasks.grpc_port`` is set."""
        port = self.settings.cloud_tasks.grpc_port
        if port is None:
            return None
        ops = cloudtasks_backend.Backend(app)  # type: ignore[arg-type]
        return await grpc_server.GrpcServer.start(ops, self.settings.host, port)

    async def _serve_with(
        self,
        srv: server.Server,
        sched: scheduler.Scheduler,
        store: base.Store,
        peers: cluster.Cluster | None,
        grpc_srv: grpc_server.GrpcServer | None = None,
    ) -> None:
        extra: dict[str, Any] = {} if grpc_srv is None else {"grpc": grpc_srv.address}
        logs.event(
            "listening",
            always=True,  # with --port 0 this line is the only way to learn the port
            url=srv.url,
            **extra,
            queues=len(self.queues.queues),
            db=describe_url(self.settings.database),
            version=__version__,
            **self.versions,
        )
        reports.log_routes(self.queues, self.settings)
        if self.on_ready is not None:
            self.on_ready(srv.url)
        background = anyio.CancelScope()  # reloads and the start-up report end at shutdown

        async def in_background() -> None:
            with background:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._reloader, sched, store, peers, name="pushd-reloader")
                    tg.start_soon(
                        self._api_queue_refresher, sched, store, peers, name="pushd-api-queues"
                    )
                    tg.start_soon(
                        reports.report_stranded, store, self.queues, name="pushd-stranded-report"
                    )

        reporting = anyio.CancelScope()  # the progress lines of a stop, until delivery ends

        async with anyio.create_task_group() as tg:

            async def deliver() -> None:
                await sched.run()
                reporting.cancel()
                if peers is not None:
                    peers.stop()  # only now: its queues go to the others when it is done

            tg.start_soon(deliver, name="pushd-scheduler")
            if peers is not None:
                tg.start_soon(peers.run, name="pushd-cluster")
            tg.start_soon(in_background, name="pushd-background")
            await self._stop.wait()
            background.cancel()
            tg.start_soon(self._report_stop, sched, reporting, name="pushd-stop-report")
            if peers is not None:
                peers.drain()
            await srv.stop()
            sched.stop()

    async def _report_stop(self, sched: scheduler.Scheduler, scope: anyio.CancelScope) -> None:
        """``shutdown in_flight=N remaining_s=S`` at once, then every ``shutdown_report_s``
        while deliveries are in flight, so a stop that seems to hang says what it waits for."""
        us = clock.US_PER_SECOND
        every_us = max(1, round(self.settings.shutdown_report_s * us))
        deadline = self.clock.monotonic_us() + round(self.settings.shutdown_grace_s * us)
        with scope:
            while True:
                now = self.clock.monotonic_us()
                remaining_s = math.ceil(max(0, deadline - now) / us)
                logs.event("shutdown", in_flight=sched.in_flight, remaining_s=remaining_s)
                if sched.in_flight == 0 or now >= deadline:
                    return
                await self.clock.sleep_until_monotonic(min(deadline, now + every_us))


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
