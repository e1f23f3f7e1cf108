"""pushd's own HTTP API, ``/api/v1``: add tasks; inspect and manage queues, tasks, dead letters.

Every answer is JSON (shapes in :mod:`pushd.wire`); every error is the envelope of
:mod:`pushd.api.errors`. Adding follows App Engine (SPEC 1.13-1.15): the whole batch is
validated first and nothing is stored if any task is invalid; then each task is inserted on its
own, so a name clash fails only that task and is reported in its ``result``.

Each route declares the :class:`Action` it performs; a token's role allows a set of actions
(:data:`ROLE_ACTIONS`), checked by :func:`auth_middleware`, which :mod:`pushd.api` installs
when tokens are configured.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Callable, Sequence
from typing import TypeVar

from aiohttp import hdrs, web

from pushd import clock, config, errors, logs, metrics, models, settings, tasks, wire
from pushd.api import engine, pull
from pushd.api import errors as api_errors
from pushd.store import base

T = TypeVar("T")

STORE = web.AppKey[base.Store]("store")
CLOCK = web.AppKey[clock.Clock]("clock")
QUEUES = web.AppKey[Callable[[], config.QueuesConfig]]("queues")
ENGINE = web.AppKey[engine.Engine]("engine")
LEASES = web.AppKey[pull.LeaseMeter]("leases")
TOKENS = web.AppKey[tuple[settings.ApiToken, ...]]("tokens")
METRICS = web.AppKey[metrics.Metrics]("metrics")
#: The token a request was authenticated with (see :func:`request_token`).
TOKEN = web.RequestKey[settings.ApiToken]("token")

#: The web console's login cookie (:func:`console_session`) and the form that sets it.
CONSOLE_COOKIE = "pushd_console"
CONSOLE_LOGIN = "/console/login"
_SESSION_LABEL = b"pushd console session v1"

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_PAGE_SIZE = re.compile(r"[0-9]{1,7}")

Handler = api_errors.Handler


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


# ------------------------------------------------------------------ helpers


def _queue(request: web.Request) -> config.QueueConfig:
    return request.app[QUEUES]().queue(request.match_info["queue"])


def _task_name(request: web.Request) -> str:
    return tasks.check_task_name(request.match_info["name"])


def _page(request: web.Request) -> tuple[int, str | None]:
    """``?limit=`` (1 to 1000, default 100) and ``?after=`` (a name cursor)."""
    raw = request.query.get("limit")
    limit = DEFAULT_PAGE_SIZE
    if raw is not None:
        if not _PAGE_SIZE.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise errors.Error(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
        limit = int(raw)
    return limit, request.query.get("after") or None


def _notify(app: web.Application, task: models.Task) -> None:
    if not task.is_pull:
        app[ENGINE].notify(task.queue, task.eta_us)


async def queue_stats(
    app: web.Application, cfg: config.QueueConfig, paused: set[str]
) -> models.QueueStats:
    """The statistics of ``cfg``; ``paused`` holds the queues paused in the store."""
    counts = await app[STORE].counts(cfg.name)
    live = app[ENGINE].live(cfg.name)
    executed = live.executed_last_minute
    if cfg.mode is models.QueueMode.PULL:  # App Engine counts leases for pull queues
        executed = app[LEASES].last_minute(cfg.name, app[CLOCK].now_us())
    return models.QueueStats(
        queue=cfg.name,
        tasks=counts.tasks,
        oldest_eta_us=counts.oldest_eta_us,
        executed_last_minute=executed,
        in_flight=live.in_flight,
        enforced_rate=live.enforced_rate,
        paused=live.paused or cfg.paused or cfg.name in paused,
        dead_letters=counts.dead_letters,
    )


async def _queue_json(
    request: web.Request, cfg: config.QueueConfig, paused: set[str]
) -> wire.QueueJSON:
    return wire.encode_queue(cfg, await queue_stats(request.app, cfg, paused))


async def _one_queue(request: web.Request, cfg: config.QueueConfig) -> web.Response:
    paused = await request.app[STORE].paused_queues()
    return api_errors.json_response(await _queue_json(request, cfg, paused))


# ------------------------------------------------------------------ handlers


async def healthz(request: web.Request) -> web.Response:
    return api_errors.json_response({"status": "ok"})


async def list_queues(request: web.Request) -> web.Response:
    paused = await request.app[STORE].paused_queues()
    queues = [cfg for cfg in request.app[QUEUES]().queues.values() if visible(request, cfg)]
    return api_errors.json_response(
        {"queues": [await _queue_json(request, cfg, paused) for cfg in queues]}
    )


async def get_queue(request: web.Request) -> web.Response:
    return await _one_queue(request, _queue(request))


async def pause_queue(request: web.Request) -> web.Response:
    cfg = _queue(request)
    await request.app[ENGINE].pause(cfg.name)
    return await _one_queue(request, cfg)


async def resume_queue(request: web.Request) -> web.Response:
    cfg = _queue(request)
    await request.app[ENGINE].resume(cfg.name)
    return await _one_queue(request, cfg)


async def purge(app: web.Application, queue: str, *, now_us: int) -> int:
    """Drop every task of ``queue``; those already claimed and waiting to go are not sent.
    Every API purges through here."""
    purged = await app[STORE].purge(queue, now_us=now_us)
    app[ENGINE].forget(queue)
    logs.event("queue_purged", queue=queue, tasks=purged)
    return purged


async def delete_names(
    app: web.Application, queue: str, names: Sequence[str], *, now_us: int
) -> list[bool]:
    """Delete tasks by name (whether each was live); claimed ones waiting to go are not sent.
    Every API deletes through here."""
    deleted = await app[STORE].delete(queue, names, now_us=now_us)
    app[ENGINE].forget(queue, [n for n, gone in zip(names, deleted, strict=True) if gone])
    return deleted


async def purge_queue(request: web.Request) -> web.Response:
    cfg = _queue(request)
    purged = await purge(request.app, cfg.name, now_us=request.app[CLOCK].now_us())
    return api_errors.json_response({"queue": cfg.name, "purged": purged})


async def check_storage_limit(
    store: base.Store, queues: config.QueuesConfig, batch: Sequence[models.Task]
) -> None:
    """Refuse tasks that would take the store past queue.yaml's ``total_storage_limit``."""
    limit = queues.total_storage_limit_bytes
    if limit is None:
        return
    used, adding = await store.total_bytes(), sum(task.size for task in batch)
    if used + adding > limit:
        raise errors.StorageLimitExceededError(
            f"total_storage_limit is {limit} bytes; {used} are stored and "
            f"this request adds {adding}"
        )


async def store_batch(
    app: web.Application, batch: Sequence[models.Task], *, now_us: int
) -> list[models.AddResult]:
    """Insert validated tasks within the storage limit, then wake the scheduler for each push
    task stored: every API adds through here."""
    store = app[STORE]
    await check_storage_limit(store, app[QUEUES](), batch)
    results = await store.add(batch, now_us=now_us)
    added: dict[str, int] = {}
    for result in results:
        if result.ok:
            added[result.task.queue] = added.get(result.task.queue, 0) + 1
            if not result.task.is_pull:
                app[ENGINE].notify(result.task.queue, result.task.eta_us)
    for queue, count in added.items():
        app[METRICS].record_added(queue, count)
    return results


async def add_tasks(request: web.Request) -> web.Response:
    """Validate the whole batch, check the storage limit, insert, then wake the scheduler."""
    cfg = _queue(request)
    body = wire.loads(await request.read())
    pull = cfg.mode is models.QueueMode.PULL
    default_method = models.Method.PULL if pull else models.Method.POST
    requests = wire.decode_add(body, default_method=default_method.value)
    now_us = request.app[CLOCK].now_us()
    batch = tasks.validate_batch(requests, queue=cfg.name, mode=cfg.mode, now_us=now_us)
    results = await store_batch(request.app, batch, now_us=now_us)
    return api_errors.json_response({"tasks": [wire.encode_add_result(r) for r in results]})


def _page_of(found: list[T], limit: int, name_of: Callable[[T], str]) -> tuple[list[T], str | None]:
    """The first ``limit`` of ``limit + 1`` fetched items, and the cursor if more remain."""
    return found[:limit], (name_of(found[limit - 1]) if len(found) > limit else None)


async def list_tasks(request: web.Request) -> web.Response:
    cfg = _queue(request)
    limit, after = _page(request)
    found = await request.app[STORE].list_tasks(cfg.name, limit=limit + 1, after_name=after)
    page, cursor = _page_of(found, limit, lambda t: t.name)
    return api_errors.json_response(
        {"tasks": [wire.encode_task(task, payload=False) for task in page], "next": cursor}
    )


async def stored_task(app: web.Application, queue: str, name: str) -> models.Task:
    """The live task ``name`` of ``queue``, or UnknownTaskError."""
    task = await app[STORE].get(queue, name)
    if task is None:
        raise errors.UnknownTaskError(f"queue {queue!r} has no task {name!r}")
    return task


async def get_task(request: web.Request) -> web.Response:
    cfg, name = _queue(request), _task_name(request)
    return api_errors.json_response(
        wire.encode_task(await stored_task(request.app, cfg.name, name))
    )


async def delete_task_named(app: web.Application, queue: str, name: str, *, now_us: int) -> None:
    """Delete one live task (UnknownTaskError if there is none), as :func:`delete_names` does."""
    [deleted] = await delete_names(app, queue, [name], now_us=now_us)
    if not deleted:
        raise errors.UnknownTaskError(f"queue {queue!r} has no task {name!r}")


async def delete_task(request: web.Request) -> web.Response:
    cfg, name = _queue(request), _task_name(request)
    await delete_task_named(request.app, cfg.name, name, now_us=request.app[CLOCK].now_us())
    return api_errors.json_response({"queue": cfg.name, "name": name, "deleted": True})


async def delete_tasks(request: web.Request) -> web.Response:
    """Delete several tasks by name; each answers whether it was live (App Engine's
    ``was_deleted``): unknown and tombstoned names are not errors (SPEC 6)."""
    cfg = _queue(request)
    names = wire.decode_delete(wire.loads(await request.read()))
    now_us = request.app[CLOCK].now_us()
    deleted = await delete_names(request.app, cfg.name, names, now_us=now_us)
    return api_errors.json_response(
        {"tasks": [{"name": n, "deleted": d} for n, d in zip(names, deleted, strict=True)]}
    )


async def lease_tasks(request: web.Request) -> web.Response:
    """Lease pull tasks: ``{"lease_seconds", "max_tasks", "group_by_tag", "tag"}``."""
    cfg = _queue(request)
    lease = wire.decode_lease(wire.loads(await request.read()))
    now_us = request.app[CLOCK].now_us()
    leased = await pull.lease(request.app[STORE], request.app[LEASES], cfg, lease, now_us=now_us)
    return api_errors.json_response({"tasks": [wire.encode_task(task) for task in leased]})


async def modify_task_lease(request: web.Request) -> web.Response:
    """Renew or release a lease: ``{"eta_us": <ETA the lease gave>, "lease_seconds": 30}``."""
    cfg, name = _queue(request), _task_name(request)
    eta_us, lease_us = wire.decode_modify_lease(wire.loads(await request.read()))
    task = await pull.modify_lease(
        request.app[STORE],
        cfg,
        name,
        current_eta_us=eta_us,
        lease_us=lease_us,
        now_us=request.app[CLOCK].now_us(),
    )
    return api_errors.json_response(wire.encode_task(task))


async def run_now(app: web.Application, queue: str, name: str, *, now_us: int) -> models.Task:
    """Make a stored task due now and wake the scheduler; every API runs tasks through here."""
    task = await app[STORE].run_now(queue, name, now_us=now_us)
    if task is None:
        raise errors.UnknownTaskError(f"queue {queue!r} has no task {name!r}")
    _notify(app, task)
    return task


async def run_task(request: web.Request) -> web.Response:
    cfg, name = _queue(request), _task_name(request)
    task = await run_now(request.app, cfg.name, name, now_us=request.app[CLOCK].now_us())
    return api_errors.json_response(wire.encode_task(task))


async def list_dead(request: web.Request) -> web.Response:
    cfg = _queue(request)
    limit, after = _page(request)
    found = await request.app[STORE].list_dead(cfg.name, limit=limit + 1, after_name=after)
    page, cursor = _page_of(found, limit, lambda d: d.task.name)
    return api_errors.json_response(
        {
            "tasks": [
                wire.encode_dead(d.task, dead_us=d.dead_us, reason=d.reason, payload=False)
                for d in page
            ],
            "next": cursor,
        }
    )


async def dead_letter(app: web.Application, queue: str, name: str) -> base.DeadTask:
    """The dead letter ``name`` of ``queue``, or UnknownTaskError."""
    dead = await app[STORE].get_dead(queue, name)
    if dead is None:
        raise errors.UnknownTaskError(f"queue {queue!r} has no dead letter {name!r}")
    return dead


async def get_dead(request: web.Request) -> web.Response:
    dead = await dead_letter(request.app, _queue(request).name, _task_name(request))
    encoded = wire.encode_dead(dead.task, dead_us=dead.dead_us, reason=dead.reason)
    return api_errors.json_response(encoded)


async def redrive(app: web.Application, queue: str, name: str, *, now_us: int) -> models.Task:
    """Put a dead letter back as a fresh task due now; every API redrives through here."""
    await dead_letter(app, queue, name)
    task = await app[STORE].redrive(queue, name, now_us=now_us)
    if task is None:  # a live task took the name meanwhile
        raise errors.TaskAlreadyExistsError(f"queue {queue!r} already has a live task {name!r}")
    _notify(app, task)
    return task


async def redrive_dead(request: web.Request) -> web.Response:
    cfg, name = _queue(request), _task_name(request)
    task = await redrive(request.app, cfg.name, name, now_us=request.app[CLOCK].now_us())
    return api_errors.json_response(wire.encode_task(task))


async def forget_dead(app: web.Application, queue: str, name: str) -> None:
    """Delete a dead letter (UnknownTaskError if there is none)."""
    if not await app[STORE].delete_dead(queue, name):
        raise errors.UnknownTaskError(f"queue {queue!r} has no dead letter {name!r}")


async def delete_dead(request: web.Request) -> web.Response:
    cfg, name = _queue(request), _task_name(request)
    await forget_dead(request.app, cfg.name, name)
    return api_errors.json_response({"queue": cfg.name, "name": name, "deleted": True})


# ------------------------------------------------------------------ routes

_Q = "/api/v1/queues/{queue}"
ROUTES: tuple[tuple[str, str, Handler, Action], ...] = (
    ("GET", "/healthz", healthz, Action.OPEN),
    ("GET", "/api/v1/queues", list_queues, Action.READ_QUEUES),
    ("GET", _Q, get_queue, Action.READ_QUEUES),
    ("POST", f"{_Q}/pause", pause_queue, Action.ADMIN),
    ("POST", f"{_Q}/resume", resume_queue, Action.ADMIN),
    ("POST", f"{_Q}/purge", purge_queue, Action.ADMIN),
    ("POST", f"{_Q}/tasks", add_tasks, Action.ADD_TASKS),
    ("GET", f"{_Q}/tasks", list_tasks, Action.READ_TASKS),
    ("GET", f"{_Q}/tasks/{{name}}", get_task, Action.READ_TASKS),
    ("DELETE", f"{_Q}/tasks/{{name}}", delete_task, Action.DELETE_TASKS),
    ("POST", f"{_Q}/delete", delete_tasks, Action.DELETE_TASKS),
    ("POST", f"{_Q}/lease", lease_tasks, Action.LEASE_TASKS),
    ("POST", f"{_Q}/tasks/{{name}}/lease", modify_task_lease, Action.LEASE_TASKS),
    ("POST", f"{_Q}/tasks/{{name}}/run", run_task, Action.ADMIN),
    ("GET", f"{_Q}/dead", list_dead, Action.ADMIN),
    ("GET", f"{_Q}/dead/{{name}}", get_dead, Action.ADMIN),
    ("POST", f"{_Q}/dead/{{name}}/redrive", redrive_dead, Action.ADMIN),
    ("DELETE", f"{_Q}/dead/{{name}}", delete_dead, Action.ADMIN),
)
Route = tuple[str, str, Handler, Action]
_ACTIONS: dict[Handler, Action] = {}
_COOKIE_HANDLERS: set[Handler] = set()


def add_routes(
    app: web.Application, routes: Sequence[Route] = ROUTES, *, cookie: bool = False
) -> None:
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


def console_session(token: settings.ApiToken) -> str:
    """The value of the console's login cookie for ``token``: an HMAC keyed by the token, so
    the cookie opens the console pages only and never stands in for the token on the API."""
    return hmac.new(token.token.encode("utf-8"), _SESSION_LABEL, hashlib.sha256).hexdigest()


def session_token(
    tokens: Sequence[settings.ApiToken], cookie: str | None
) -> settings.ApiToken | None:
    """The token whose :func:`console_session` is ``cookie``, compared in constant time."""
    presented = (cookie or "").encode("ascii", "replace")
    found = None
    for token in tokens:  # no early exit: every token is compared
        if hmac.compare_digest(presented, console_session(token).encode("ascii")):
            found = token
    return found


def request_token(request: web.Request) -> settings.ApiToken | None:
    """The token :func:`auth_middleware` authenticated the request with (None without tokens)."""
    return request.get(TOKEN)


def allows(request: web.Request, action: Action) -> bool:
    """Whether the request's token (any request, without tokens) may do ``action``."""
    if not request.app[TOKENS]:
        return True
    token = request_token(request)
    return token is not None and action in ROLE_ACTIONS.get(token.role, frozenset())


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
        cfg = request.app[QUEUES]().queue(queue)
    except errors.UnknownQueueError:
        return  # the handler answers 404
    if (refusal := acl_refusal(cfg, token, action)) is not None:
        raise errors.PermissionDeniedError(refusal)


def visible(request: web.Request, cfg: config.QueueConfig) -> bool:
    """Whether a listing shows ``cfg`` to the request's token (its acl may hide it)."""
    token = request_token(request)
    return token is None or acl_refusal(cfg, token, Action.READ_QUEUES) is None


def _loopback_host(value: str) -> bool:
    """A Host header (``name``, ``name:port``, ``[v6]:port``) naming a loopback address."""
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
            token = session_token(tokens, request.cookies.get(CONSOLE_COOKIE))
            if token is None and request.method in (hdrs.METH_GET, hdrs.METH_HEAD):
                query = urllib.parse.urlencode({"next": request.path_qs})
                raise web.HTTPSeeOther(f"{CONSOLE_LOGIN}?{query}")
        if token is None:
            raise web.HTTPUnauthorized(
                headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="pushd"'},
                text="this API needs an 'Authorization: Bearer <token>' header with a known token",
            )
        if action is not None and action not in ROLE_ACTIONS.get(token.role, frozenset()):
            raise errors.PermissionDeniedError(
                f"token {token.name!r} has role {token.role!r}, which may not {action.value}"
            )
        if action is not None:
            check_acl(request, token, action)
        request[TOKEN] = token
        return await handler(request)

    return authenticate
