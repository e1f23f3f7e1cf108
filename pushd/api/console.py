"""The operator's web console: queues, tasks and dead letters in a browser, served at ``/``.

Pages are plain server-rendered HTML (:mod:`pushd.api.console_view`); every action is a form
POST answered with a redirect back to a page, so the console needs no script. The data comes
from the same service as every API (:class:`pushd.service.Service`): a purge here is
``service.queues.purge``, a redrive ``service.dead.redrive``, and so on.

Access is the API's: without ``auth_tokens`` only loopback clients reach the daemon at all
(:func:`auth.loopback_guard`); with tokens, ``/console/login`` takes a token and sets an
HttpOnly, SameSite=Strict cookie holding the id of a server-side session
(:class:`~pushd.api.sessions.Sessions`: it expires after ``console_session_s`` and logging out
ends it), which the auth middleware accepts on these routes only, and each route needs the role the same action needs on the API (reading a
queue's tasks: ``consumer``; pausing or purging: ``admin``). Forms are protected from
cross-site requests by that SameSite cookie and by refusing a POST whose ``Origin`` (or
``Sec-Fetch-Site``) says another site sent it.

Searching a queue's tasks by name prefix and by tag is done by the store
(``Store.list_tasks(prefix=, tag=)``), page by page in name order.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web

from pushd import clock, errors, models, tasks
from pushd.api import auth
from pushd.api import console_view as view
from pushd.api import errors as api_errors
from pushd.api.keys import SESSIONS, TOKENS, service_of

if TYPE_CHECKING:
    from pushd import service
    from pushd.queue_yaml import config
    from pushd.store import base

PAGE_SIZE = 50  # tasks, and dead letters, per page
QUEUES_PAGE_SIZE = 100  # queues per page of the queues page
REFRESH_S = 5  # the queues page reloads itself this often
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 20
CONSOLE = "/console"
QUEUE = f"{CONSOLE}/queues/{{queue}}"
#: The notices a redirect after an action may ask a page to show (``?done=``).
NOTICES = {
    "paused": "The queue is paused: no task is sent (or leased) until it is resumed.",
    "resumed": "The queue is resumed.",
    "purged": "The queue is purged.",
    "ran": "The task is due now.",
    "deleted": "The task is deleted.",
    "redriven": "The dead letter is back in the queue as a new task, due now.",
    "dead_deleted": "The dead letter is deleted.",
}


# ------------------------------------------------------------------ request helpers


def _queue(request: web.Request) -> config.QueueConfig:
    """The queue of queue.yaml the request names (pausing, running, redriving)."""
    return service_of(request).queues.queue(request.match_info["queue"])


def _held(request: web.Request) -> config.QueueConfig:
    """The queue the request names, also one removed from queue.yaml (its page, its tasks and
    dead letters, deleting and purging them), as on the API."""
    return service_of(request).queues.held(request.match_info["queue"])


def _name(request: web.Request) -> str:
    return tasks.check_task_name(request.match_info["name"])


def queue_url(queue: str, **query: str) -> str:
    url = f"{CONSOLE}/queues/{view.path(queue)}"
    return f"{url}?{urllib.parse.urlencode(query)}" if query else url


def _notice(request: web.Request) -> str | None:
    return NOTICES.get(request.query.get("done", ""))


def _name_query(request: web.Request, key: str) -> str:
    """A task name (or the start of one) from the query string; "" if absent."""
    value = request.query.get(key, "")
    if value:
        try:
            tasks.check_task_name(value)
        except errors.InvalidTaskNameError:
            raise errors.InvalidTaskNameError(
                f"{key} {value!r} is not (the start of) a task name: letters, digits, '_' and "
                f"'-', at most {models.MAX_TASK_NAME_LENGTH} of them"
            ) from None
    return value


def _tag_query(request: web.Request) -> bytes | None:
    value = request.query.get("tag", "")
    if not value:
        return None
    try:
        tag = value.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.InvalidTagError("the tag is not valid text") from None
    if len(value) > models.MAX_TAG_LENGTH:
        raise errors.InvalidTagError(f"a tag has at most {models.MAX_TAG_LENGTH} characters")
    return tag


def _same_site(request: web.Request) -> None:
    """Refuse a form another site's page sent (CSRF): its ``Origin`` names another host, or
    the browser says so in ``Sec-Fetch-Site``. Behind a proxy, the origin may also match
    ``X-Forwarded-Host``, a header no cross-site form can set."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "same-origin")
    origin = request.headers.get(hdrs.ORIGIN)
    hosts = {
        request.headers.get(hdrs.HOST, "").lower(),
        request.headers.get(hdrs.X_FORWARDED_HOST, "").split(",")[0].strip().lower(),
    } - {""}
    if origin is not None:
        scheme, _, host = origin.partition("://")
        if scheme not in ("http", "https") or host.lower() not in hosts:
            raise errors.PermissionDeniedError(
                f"this form was sent by a page of {origin!r}, not by the console; open the "
                "console and use its buttons"
            )
    if fetch_site not in ("same-origin", "none"):
        raise errors.PermissionDeniedError(
            f"this form was sent by a page of another site (Sec-Fetch-Site: {fetch_site}); "
            "open the console and use its buttons"
        )


async def _form(request: web.Request) -> dict[str, str]:
    """The fields of a console form, once :func:`_same_site` has accepted where it came from."""
    _same_site(request)
    size = request.content_length
    if size is not None and size > MAX_FORM_BYTES:
        raise errors.Error(f"a console form has at most {MAX_FORM_BYTES} bytes")
    body = await request.read()
    if len(body) > MAX_FORM_BYTES:  # sent chunked, without a Content-Length
        raise errors.Error(f"a console form has at most {MAX_FORM_BYTES} bytes")
    if not body:
        return {}
    if request.content_type != "application/x-www-form-urlencoded":
        raise errors.Error("console forms are sent as application/x-www-form-urlencoded")
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise errors.Error("the form could not be read (not UTF-8, or too many fields)") from None
    return dict(pairs)


async def _confirmed(request: web.Request, what: str) -> None:
    if (await _form(request)).get("confirm") != "yes":
        raise errors.Error(f"nothing was done: tick the box to confirm that you want to {what}")


def _page(request: web.Request, name: str, **context: Any) -> web.Response:
    return view.html(name, who=auth.request_token(request), notice=_notice(request), **context)


# ------------------------------------------------------------------ pages


async def queues_page(request: web.Request) -> web.Response:
    """A page of ``QUEUES_PAGE_SIZE`` queues in name order (``?after=`` the last one shown)."""
    svc = service_of(request)
    after = request.query.get("after") or None
    page = auth.visible_queues(request, limit=QUEUES_PAGE_SIZE, after=after)
    found = await svc.queues.stats_of(page.items)
    rows = [
        view.queue_row(cfg, stats, svc.queues.history(cfg.name))
        for cfg, stats in zip(page.items, found, strict=True)
    ]
    next_queues = f"/?{urllib.parse.urlencode({'after': page.next})}" if page.next else None
    return _page(
        request,
        "queues.html",
        title="Queues",
        rows=rows,
        now_us=svc.now_us(),
        refresh_s=REFRESH_S,
        next_queues=next_queues,
        paged=after is not None,
    )


async def _dead_page(
    request: web.Request, cfg: config.QueueConfig
) -> tuple[list[base.DeadTask] | None, str | None]:
    """A page of the queue's dead letters, for the admin only (as on the API)."""
    if not auth.allows(request, auth.Action.ADMIN):
        return None, None
    after = _name_query(request, "dead_after")
    page = await service_of(request).dead.page(cfg.name, limit=PAGE_SIZE, after=after or None)
    next_dead = queue_url(cfg.name, dead_after=page.next) + "#dead" if page.next else None
    return page.items, next_dead


async def queue_page(request: web.Request) -> web.Response:
    svc, cfg = service_of(request), _held(request)
    prefix, after = _name_query(request, "prefix"), _name_query(request, "after")
    tag = _tag_query(request)
    [stats] = await svc.queues.stats_of([cfg])
    page = await svc.tasks.page(
        cfg.name, limit=PAGE_SIZE, after=after or None, prefix=prefix, tag=tag
    )
    search = {k: v for k, v in (("prefix", prefix), ("tag", request.query.get("tag", ""))) if v}
    next_tasks = queue_url(cfg.name, **search, after=page.next) if page.next else None
    dead, next_dead = await _dead_page(request, cfg)
    row = view.queue_row(cfg, stats, svc.queues.history(cfg.name))
    return _page(
        request,
        "queue.html",
        title=f"Queue {cfg.name}",
        q=row,
        push=cfg.mode is models.QueueMode.PUSH,
        search=search,
        prefix=prefix,
        tag=request.query.get("tag", ""),
        filtered=bool(search or after),
        tasks=page.items,
        next_tasks=next_tasks,
        dead=dead,
        next_dead=next_dead,
        now_us=svc.now_us(),
    )


async def task_page(request: web.Request) -> web.Response:
    cfg, name = _held(request), _name(request)
    task = await service_of(request).tasks.get(cfg.name, name)
    return _task_view(request, task, dead=None)


async def dead_page(request: web.Request) -> web.Response:
    cfg, name = _held(request), _name(request)
    dead = await service_of(request).dead.get(cfg.name, name)
    return _task_view(request, dead.task, dead=dead)


def _task_view(
    request: web.Request, task: models.Task, *, dead: base.DeadTask | None
) -> web.Response:
    kind = "Dead letter" if dead is not None else "Task"
    return _page(
        request,
        "task.html",
        title=f"{kind} {task.name}",
        task=task,
        dead=dead,
        payload=view.preview(task.payload),
        now_us=service_of(request).now_us(),
    )


# ------------------------------------------------------------------ actions


def _done(queue: str, notice: str, anchor: str = "") -> web.Response:
    """Back to the queue's page, showing what was done."""
    return view.redirect(queue_url(queue, done=notice) + anchor)


async def _ask(request: web.Request, confirm: str | None) -> None:
    """The button's form, ticked to confirm ``confirm`` when it says what to confirm."""
    if confirm is None:
        await _form(request)
    else:
        await _confirmed(request, confirm)


def _on_queue(
    pick: Callable[[web.Request], config.QueueConfig],
    confirm: str,
    call: Callable[[service.Service], Callable[[str], Awaitable[object]]],
    notice: str,
) -> auth.Handler:
    """A button on a queue's page: ask, call the service on the queue, say what was done."""

    async def handler(request: web.Request) -> web.Response:
        cfg = pick(request)
        await _ask(request, confirm)
        await call(service_of(request))(cfg.name)
        return _done(cfg.name, notice)

    return handler


def _on_task(
    pick: Callable[[web.Request], config.QueueConfig],
    confirm: str | None,
    call: Callable[[service.Service], Callable[[str, str], Awaitable[object]]],
    notice: str,
    anchor: str = "",
) -> auth.Handler:
    """A button on a task or dead letter: the same, on the task the path names."""

    async def handler(request: web.Request) -> web.Response:
        cfg, name = pick(request), _name(request)
        await _ask(request, confirm)
        await call(service_of(request))(cfg.name, name)
        return _done(cfg.name, notice, anchor)

    return handler


# Removed queues (_held) can still be purged and their tasks deleted, not paused or run.
pause = _on_queue(_queue, "pause the queue", lambda s: s.queues.pause, "paused")
resume = _on_queue(_queue, "resume the queue", lambda s: s.queues.resume, "resumed")
purge = _on_queue(_held, "delete every task of the queue", lambda s: s.queues.purge, "purged")
run_task = _on_task(_queue, None, lambda s: s.tasks.run_now, "ran")
delete_task = _on_task(_held, "delete the task", lambda s: s.tasks.delete_one, "deleted")
redrive = _on_task(_queue, None, lambda s: s.dead.redrive, "redriven")
delete_dead = _on_task(
    _held, "delete the dead letter", lambda s: s.dead.forget, "dead_deleted", "#dead"
)


# ------------------------------------------------------------------ login


def _next(value: str | None) -> str:
    """Where to go after logging in: a path of this site, else the queues page."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 0x21 for c in value):
        return "/"
    return value


async def login_page(request: web.Request) -> web.Response:
    tokens = request.app[TOKENS]
    who = auth.session_token(request)
    return view.html(
        "login.html",
        title="Log in",
        tokens=bool(tokens),
        who=who,
        next=_next(request.query.get("next")),
        error=None,
    )


async def login(request: web.Request) -> web.Response:
    form = await _form(request)
    tokens, target = request.app[TOKENS], _next(form.get("next"))
    if not tokens:
        return view.redirect(target)
    token = auth.token_for(tokens, form.get("token", "").strip().encode("utf-8", "replace"))
    if token is None:
        error = "That is not a token of this daemon (see auth_tokens in its settings)."
        return view.html(
            "login.html", status=401, title="Log in", tokens=True, next=target, error=error
        )
    sessions = request.app[SESSIONS]
    response = view.redirect(target)
    response.set_cookie(
        auth.CONSOLE_COOKIE,
        sessions.open(token, service_of(request).now_us()),
        path="/",
        max_age=sessions.lifetime_us // clock.US_PER_SECOND,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session server-side, so its cookie opens nothing even if it was copied."""
    await _form(request)
    request.app[SESSIONS].close(request.cookies.get(auth.CONSOLE_COOKIE))
    response = view.redirect(auth.CONSOLE_LOGIN)
    response.del_cookie(auth.CONSOLE_COOKIE, path="/", httponly=True, samesite="Strict")
    return response


# ------------------------------------------------------------------ routes

A = auth.Action
ROUTES: tuple[auth.Route, ...] = (
    ("GET", "/", queues_page, A.READ_QUEUES),
    ("GET", auth.CONSOLE_LOGIN, login_page, A.OPEN),
    ("POST", auth.CONSOLE_LOGIN, login, A.OPEN),
    ("POST", f"{CONSOLE}/logout", logout, A.OPEN),
    ("GET", QUEUE, queue_page, A.READ_TASKS),
    ("POST", f"{QUEUE}/pause", pause, A.ADMIN),
    ("POST", f"{QUEUE}/resume", resume, A.ADMIN),
    ("POST", f"{QUEUE}/purge", purge, A.ADMIN),
    ("GET", f"{QUEUE}/tasks/{{name}}", task_page, A.READ_TASKS),
    ("POST", f"{QUEUE}/tasks/{{name}}/run", run_task, A.ADMIN),
    ("POST", f"{QUEUE}/tasks/{{name}}/delete", delete_task, A.DELETE_TASKS),
    ("GET", f"{QUEUE}/dead/{{name}}", dead_page, A.ADMIN),
    ("POST", f"{QUEUE}/dead/{{name}}/redrive", redrive, A.ADMIN),
    ("POST", f"{QUEUE}/dead/{{name}}/delete", delete_dead, A.ADMIN),
)


def add_routes(app: web.Application) -> None:
    """Serve the console; its failures are HTML pages, whatever raised them."""
    auth.add_routes(app, ROUTES, cookie=True)
    api_errors.add_renderer(app, "/", view.render_failure, exact=True)
    api_errors.add_renderer(app, f"{CONSOLE}/", view.render_failure)
