"""``GET /metrics``: the daemon's Prometheus metrics (see :mod:`pushd.metrics`).

Counters and histograms come from what the scheduler and the APIs recorded; the gauges (tasks
waiting, in flight, enforced rate, oldest ETA age, paused, dead letters) are read from the
store and the scheduler at each scrape (:meth:`pushd.service.queues.Queues.gauges`), for every queue of the current queue.yaml and every
queue removed from it that still holds tasks (``pushd_queue_removed`` 1, paused).

A pull queue whose ``acl`` hides it from the scraping token (see :func:`auth.visible`, the
listings' rule) shows nothing of itself, neither its gauges nor its counters. The statistics are
read one queue at a time, each read awaited, and the text is built a slice of queues at a time
(:meth:`metrics.Metrics.render_async`), so a scrape of thousands of queues never holds the event loop for long.
"""

from __future__ import annotations

import itertools

from aiohttp import web

from pushd import metrics
from pushd.api import auth
from pushd.api.keys import service_of


async def get_metrics(request: web.Request) -> web.Response:
    svc = service_of(request)
    shown, hidden = [], set()
    queues = svc.queues.current()
    for cfg in itertools.chain(queues.queues.values(), queues.removed.values()):
        if auth.visible(request, cfg):
            shown.append(cfg)
        else:
            hidden.add(cfg.name)
    gauges = await svc.queues.gauges(shown)
    body = await svc.metrics.render_async(gauges, hidden)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


ROUTES: tuple[auth.Route, ...] = (("GET", "/metrics", get_metrics, auth.Action.READ_QUEUES),)
