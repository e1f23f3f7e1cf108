"""Who may call what: route actions, API tokens and roles, queue acls, the console's login
cookie, and the loopback guard of a daemon without tokens.

Each route declares the :class:`Action` it performs when it is added (:func:`add_routes`); a
token's role allows a set of actions (:data:`ROLE_ACTIONS`), checked by
:func:`auth_middleware`, which :mod:`pushd.api` installs when tokens are configured, else
:func:`loopback_guard`.
"""

from __future__ import annotations

import enum
import functools
import hmac
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

from pushd import clock, errors, models, service, settings
from pushd.api import errors as api_errors
from pushd.api.keys import SERVICE, SESSIONS, TOKEN, TOKENS

if TYPE_CHECKING:
    from pushd.queue_yaml import config

Handler = api_errors.Handler

#: The web console's login cookie (a :class:`~pushd.api.sessions.Sessions` id) and its form.
CONSOLE_COOKIE = "pushd_console"
CONSOLE_LOGIN = "/console/login"


class Action(enum.Enum):
    """What a route does, as far as tokens are concerned."""

    OPEN = "open"  # needs no token
    READ_QUEUES = "read queue statistics"
    ADD_TASKS = "add tasks"
    READ_TASKS = "read tasks"
    LEASE_TASKS = "lease tasks"
    DELETE_TASKS = "delete tasks"
    ADMIN = "administer queues"


#: What each role of ``settings.ApiToken.role`` may do.
ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    "admin": frozenset(Action),
    "producer": frozenset({Action.OPEN, Action.READ_QUEUES, Action.ADD_TASKS}),
    "consumer": frozenset(
        {
            Action.OPEN,
            Action.READ_QUEUES,
            Action.READ_TASKS,
            Action.LEASE_TASKS,
            Action.DELETE_TASKS,
        }
    ),
}
#: The pull-queue ``acl`` list (SPEC 5.2) an action needs: writers insert, users do the rest.
ACL_WRITER_ACTIONS = frozenset({Action.ADD_TASKS})
ACL_USER_ACTIONS = frozenset(
    {Action.READ_QUEUES, Action.READ_TASKS, Action.LEASE_TASKS, Action.DELETE_TASKS}
)


Route = tuple[str, str, Handler, Action]
_ACTIONS: dict[Handler, Action] = {}
_COOKIE_HANDLERS: set[Handler] = set()


def add_routes(app: web.Application, routes: Sequence[Route], *, cookie: bool = False) -> None:
    """Serve ``routes`` (method, path, handler, action); any API module registers this way, so
    :func:`auth_middleware` knows every route's action. ``cookie``: the routes are the web
    console's pages, which also accept its login cookie (browsers cannot send a header)."""
    for method, path, handler, action in routes:
        _ACTIONS[handler] = action
        if cookie:
            _COOKIE_HANDLERS.add(handler)
        app.router.add_route(method, path, handler, expect_handler=api_errors.expect_handler)


def action_of(request: web.Request) -> Action | None:
    """The action of the route ``request`` matched; None when it matched none (404/405)."""
    if request.match_info.http_exception is not None:
        return None
    return _ACTIONS.get(request.match_info.handler)


def _takes_cookie(request: web.Request) -> bool:
    return (
        request.match_info.http_exception is None and request.match_info.handler in _COOKIE_HANDLERS
    )


# ------------------------------------------------------------------ tokens


def _bearer(header: str) -> bytes | None:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip().encode("utf-8", "surrogatepass")


def find_token(tokens: Sequence[settings.ApiToken], header: str | None) -> settings.ApiToken | None:
    """The token an ``Authorization: Bearer ...`` header presents, compared in constant time."""
    presented = _bearer(header or "")
    return None if presented is None else token_for(tokens, presented)


def token_for(tokens: Sequence[settings.ApiToken], presented: bytes) -> settings.ApiToken | None:
    """The token whose value is ``presented``, compared in constant time."""
    found = None
    for token in tokens:  # no early exit: every token is compared
        if hmac.compare_digest(presented, token.token.encode("utf-8")):
            found = token
    return found


def session_token(request: web.Request) -> settings.ApiToken | None:
    """The token of the console session the request's cookie names, if it is live."""
    sessions = request.app[SESSIONS]
    return sessions.find(request.cookies.get(CONSOLE_COOKIE), request.app[SERVICE].now_us())


def session_lifetime_us(value: settings.Settings) -> int:
    return clock.seconds_to_us(value.console_session_s)


def request_token(request: web.Request) -> settings.ApiToken | None:
    """The token :func:`auth_middleware` authenticated the request with (None without tokens)."""
    return request.get(TOKEN)


def role_allows(token: settings.ApiToken | None, action: Action) -> bool:
    """Whether ``token``'s role may do ``action`` (no token: nothing)."""
    return token is not None and action in ROLE_ACTIONS.get(token.role, frozenset())


def allows(request: web.Request, action: Action) -> bool:
    """Whether the request's token (any request, without tokens) may do ``action``."""
    return not request.app[TOKENS] or role_allows(request_token(request), action)


def acl_refusal(cfg: config.QueueConfig, token: settings.ApiToken, action: Action) -> str | None:
    """Why ``token`` may not do ``action`` on ``cfg`` under its ``acl``, or None if it may.

    A pull queue with an ``acl`` (SPEC 5.2) admits only the identities it lists:
    ``writer_email`` to add tasks, ``user_email`` to read, lease and delete them. Admin tokens,
    push queues and pull queues without an ``acl`` are not restricted further.
    """
    if token.role == "admin" or cfg.mode is not models.QueueMode.PULL or not cfg.acl:
        return None
    if action in ACL_WRITER_ACTIONS:
        key, allowed = "writer_email", {e.writer_email for e in cfg.acl}
    elif action in ACL_USER_ACTIONS:
        key, allowed = "user_email", {e.user_email for e in cfg.acl}
    else:
        return None
    if token.identity is not None and token.identity in allowed:
        return None
    who = f"identity {token.identity!r}" if token.identity else "no identity"
    return (
        f"token {token.name!r} has {who}, which is not a {key} in the acl of pull queue "
        f"{cfg.name!r} in queue.yaml; add it there, or give the token that identity"
    )


def check_acl(request: web.Request, token: settings.ApiToken, action: Action) -> None:
    """Apply the ``acl`` of the queue the request names, if any."""
    queue = request.match_info.get("queue")
    if queue is None:
        return
    try:
        cfg = request.app[SERVICE].queues.queue(queue)
    except errors.UnknownQueueError:
        return  # the handler answers 404
    if (refusal := acl_refusal(cfg, token, action)) is not None:
        raise errors.PermissionDeniedError(refusal)


def visible(request: web.Request, cfg: config.QueueConfig) -> bool:
    """Whether a listing shows ``cfg`` to the request's token (its acl may hide it)."""
    token = request_token(request)
    return token is None or acl_refusal(cfg, token, Action.READ_QUEUES) is None


def visible_queues(
    request: web.Request, *, limit: int, after: str | None
) -> service.Page[config.QueueConfig]:
    """A page of the queues the request's token may see (their acls may hide some), in name
    order: every listing of queues (API, console) shows this."""
    return request.app[SERVICE].queues.page(
        limit=limit, after=after, visible=lambda cfg: visible(request, cfg)
    )


@functools.lru_cache(maxsize=64)
def _loopback_host(value: str) -> bool:
    """A Host header (``name``, ``name:port``, ``[v6]:port``) naming a loopback address.

    Cached: every request asks, nearly always with the same few values, and parsing the
    address was ~5 % of a single add's CPU."""
    host = value.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return settings.is_loopback(host)


def _same_origin(origin: str, host: str) -> bool:
    """Whether a page of ``origin`` is pushd's own (the console), addressed as ``host``: a page
    of any other origin, even another port of localhost, is another site."""
    scheme, _, rest = origin.partition("://")
    return scheme in ("http", "https") and rest.split("/", 1)[0].lower() == host.lower()


@web.middleware
async def loopback_guard(request: web.Request, handler: api_errors.Handler) -> web.StreamResponse:
    """Without tokens the API trusts whoever reaches the loopback address, so it must not be
    reachable *through* a browser: requests addressed to another host name (DNS rebinding) or
    sent by a page of another origin (cross-site requests) are refused."""
    host = request.headers.get(hdrs.HOST, "")
    origin = request.headers.get(hdrs.ORIGIN)
    if not _loopback_host(host):
        raise errors.PermissionDeniedError(
            f"without auth_tokens pushd only answers requests addressed to localhost or a "
            f"loopback address; this one was addressed to {host!r}"
        )
    if origin is not None and not _same_origin(origin, host):
        raise errors.PermissionDeniedError(
            f"without auth_tokens pushd refuses requests from web pages of other origins "
            f"({origin!r}, even on this machine); configure auth_tokens to call it from a "
            "browser"
        )
    return await handler(request)


def auth_middleware(tokens: Sequence[settings.ApiToken]) -> api_errors.Middleware:
    """401 without a known bearer token, 403 when its role does not allow the route.

    The console's pages (routes added with ``cookie=True``) also accept the cookie its login
    form sets (:data:`CONSOLE_COOKIE`); a page asked for without either redirects to the login
    form. Every other route takes the ``Authorization`` header only.
    """

    @web.middleware
    async def authenticate(request: web.Request, handler: api_errors.Handler) -> web.StreamResponse:
        action = action_of(request)
        if action is Action.OPEN:
            return await handler(request)
        token = find_token(tokens, request.headers.get(hdrs.AUTHORIZATION))
        if token is None and _takes_cookie(request):
            token = session_token(request)
            if token is None and request.method in (hdrs.METH_GET, hdrs.METH_HEAD):
                query = urllib.parse.urlencode({"next": request.path_qs})
                raise web.HTTPSeeOther(f"{CONSOLE_LOGIN}?{query}")
        if token is None:
            raise web.HTTPUnauthorized(
                headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="pushd"'},
                text="this API needs an 'Authorization: Bearer <token>' header with a known token",
            )
        if action is not None and not role_allows(token, action):
            raise errors.PermissionDeniedError(
                f"token {token.name!r} has role {token.role!r}, which may not {action.value}"
            )
        if action is not None:
            check_acl(request, token, action)
        request[TOKEN] = token
        return await handler(request)

    return authenticate
