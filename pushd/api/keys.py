"""The application's keys: the service every API adapter calls, and what authentication needs."""

from __future__ import annotations

from aiohttp import web

from pushd import service, settings
from pushd.api import sessions
from pushd.dispatch import url_policy

#: The domain operations (:class:`pushd.service.Service`); adapters hold nothing else of the domain.
SERVICE = web.AppKey[service.Service]("service")
TOKENS = web.AppKey[tuple[settings.ApiToken, ...]]("tokens")
#: Where Cloud Tasks HTTP tasks may go (``http_targets``), checked when one is created.
URL_POLICY = web.AppKey[url_policy.UrlPolicy]("url_policy")
#: The ``cloud_tasks:`` settings (the projects and locations the Cloud Tasks API answers for).
CLOUD_TASKS = web.AppKey[settings.CloudTasks]("cloud_tasks")
SESSIONS = web.AppKey[sessions.Sessions]("console_sessions")
#: The token a request was authenticated with (see :func:`pushd.api.auth.request_token`).
TOKEN = web.RequestKey[settings.ApiToken]("token")


def service_of(request: web.Request) -> service.Service:
    """The service behind the request's application."""
    return request.app[SERVICE]
