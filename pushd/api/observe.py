"""``GET /metrics``: the daemon's Prometheus metrics (see :mod:`pushd.metrics`).

Counters and histograms come from what the scheduler and the APIs recorded; the gauges (tasks
waiting, in flight, enforced rate, oldest ETA age, paused, dead letters) are read from the
store and the scheduler at each scrape, for every queue of the current queue.yaml and every
queue removed from it that still holds tasks (``pushd_queue_removed`` 1, paused).

A pull queue whose ``acl`` hides it from the scraping token (see :func:`auth.visible`, the
listings' rule) shows nothing of itself, neither its gauges nor its counters. The statistics are
read one queue at a time, each read awaited, and the text is built a slice of queues at a time
(:meth:`metrics.Metrics.render_async`), so a scrape of thousands of queues never holds the event loop for long.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from aiohttp import web

from pushd import clock, config, metrics, models
from pushd.api import auth, native


async def queue_gauges(
    app: web.Application, queues: Iterable[config.QueueConfig]
) -> dict[str, metrics.QueueGauges]:
    """The gauges of ``queues``, as their statistics say now."""
    now = app[native.CLOCK].now_us()
    paused = await app[native.STORE].paused_queues()
    found = {}
    for cfg in queues:
        stats = await native.queue_stats(app, cfg, paused)
        oldest = stats.oldest_eta_us
        found[cfg.name] = metrics.QueueGauges(
            waiting=stats.tasks,
            in_flight=stats.in_flight,
            enforced_rate=stats.enforced_rate if cfg.mode is models.QueueMode.PUSH else 0.0,
            oldest_eta_age_s=0.0 if oldest is None else max(0, now - oldest) / clock.US_PER_SECOND,
            paused=stats.paused,
            dead_letters=stats.dead_letters,
            removed=stats.removed,
        )
    return found


async def get_metrics(request: web.Request) -> web.Response:
    shown, hidden = [], set()
    queues = request.app[native.QUEUES]()
    for cfg in itertools.chain(queues.queues.values(), queues.removed.values()):
        if auth.visible(request, cfg):
            shown.append(cfg)
        else:
            hidden.add(cfg.name)
    gauges = await queue_gauges(request.app, shown)
    body = await request.app[native.METRICS].render_async(gauges, hidden)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


ROUTES: tuple[auth.Route, ...] = (("GET", "/metrics", get_metrics, auth.Action.READ_QUEUES),)
