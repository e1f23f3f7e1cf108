"""The application's keys: the parts every API module reads from ``request.app``."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from pushd import clock, config, metrics, settings
from pushd.api import engine, pull, sessions
from pushd.store import base

STORE = web.AppKey[base.Store]("store")
CLOCK = web.AppKey[clock.Clock]("clock")
QUEUES = web.AppKey[Callable[[], config.QueuesConfig]]("queues")
ENGINE = web.AppKey[engine.Engine]("engine")
LEASES = web.AppKey[pull.LeaseMeter]("leases")
TOKENS = web.AppKey[tuple[settings.ApiToken, ...]]("tokens")
METRICS = web.AppKey[metrics.Metrics]("metrics")
SESSIONS = web.AppKey[sessions.Sessions]("console_sessions")
#: The token a request was authenticated with (see :func:`pushd.api.auth.request_token`).
TOKEN = web.RequestKey[settings.ApiToken]("token")
