"""The web console's operations: HTML pages, and forms answered with a redirect."""

from __future__ import annotations

import functools
from typing import Any

from pushd.api import auth, console
from pushd.api.openapi import schema


def operations(s: schema.SchemaSet) -> dict[tuple[str, str], schema.Operation]:
    """The web console (pushd.api.console): HTML pages, and forms answered with a redirect
    (303) to the page to show next; its errors are HTML pages too."""
    html = ("text/html",)
    errors = (400, 401, 403, 404)
    page = functools.partial(
        schema.Operation,
        tag="console",
        answer=str,
        answer_types=html,
        error_schema=str,
        error_types=html,
        errors=(400, 403, 404),
    )

    def form(summary: str, body: str | None = "ConsoleConfirm", **kw: Any) -> schema.Operation:
        types = ("application/x-www-form-urlencoded",)
        return page(summary=summary, body=body, body_types=types, answer=None, status=303, **kw)

    text = {"type": "string"}
    s.add(
        "ConsoleConfirm",
        {
            "type": "object",
            "properties": {"confirm": {"type": "string", "enum": ["yes"]}},
            "required": ["confirm"],
        },
    )
    s.add(
        "ConsoleLogin",
        {"type": "object", "properties": {"token": text, "next": text}, "required": ["token"]},
    )
    name = {"type": "string", "pattern": "^[a-zA-Z0-9_-]{0,500}$"}
    search = (
        schema.Query(name="prefix", schema=name, description="tasks whose name starts with this"),
        schema.Query(name="tag", schema=text, description="tasks with this tag (pull queues)"),
        schema.Query(name="after", schema=name, description="the page of tasks after this name"),
        schema.Query(name="dead_after", schema=name, description="dead letters after this name"),
        schema.Query(name="done", schema=text, description="the action just done, for its notice"),
    )
    q, t, d = console.QUEUE, f"{console.QUEUE}/tasks/{{name}}", f"{console.QUEUE}/dead/{{name}}"
    return {
        ("GET", "/"): page(summary="Console: every queue, its statistics and recent deliveries"),
        ("GET", auth.CONSOLE_LOGIN): page(
            summary="Console: the login form (with auth_tokens)",
            query=(schema.Query(name="next", schema=text, description="the page to go to after"),),
            errors=(400,),
        ),
        ("POST", auth.CONSOLE_LOGIN): form(
            "Console: log in with a token (sets the console's cookie)",
            "ConsoleLogin",
            errors=(400, 401, 403),
        ),
        ("POST", f"{console.CONSOLE}/logout"): form("Console: log out", None, errors=(400, 403)),
        ("GET", q): page(summary="Console: a queue, its tasks and dead letters", query=search),
        ("POST", f"{q}/pause"): form("Console: pause a queue", errors=errors),
        ("POST", f"{q}/resume"): form("Console: resume a queue", errors=errors),
        ("POST", f"{q}/purge"): form("Console: purge a queue", errors=errors),
        ("GET", t): page(summary="Console: a task"),
        ("POST", f"{t}/run"): form("Console: run a task now", None, errors=errors),
        ("POST", f"{t}/delete"): form("Console: delete a task", errors=errors),
        ("GET", d): page(summary="Console: a dead letter"),
        ("POST", f"{d}/redrive"): form(
            "Console: redrive a dead letter", None, errors=(*errors, 409)
        ),
        ("POST", f"{d}/delete"): form("Console: delete a dead letter", errors=errors),
    }
