"""/openapi.json is a valid OpenAPI 3.1 document that matches the routes and answers served."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from pushd.api import openapi
from tests.unit.test_api import ADMIN, TOKENS, Env, kill, running

QUEUE_YAML = """
queue:
- name: fast
  rate: 10/s
- name: work
  mode: pull
"""


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running(QUEUE_YAML) as started:
        yield started


async def fetch_document(env: Env, token: str | None = None) -> dict[str, Any]:
    status, doc = await env.call("GET", "/openapi.json", token=token)
    assert status == 200
    assert isinstance(doc, dict)
    return doc


async def test_the_document_is_valid_openapi(env: Env) -> None:
    doc = await fetch_document(env)
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema
    assert doc["openapi"] == "3.1.0"


async def test_every_served_route_is_documented_and_nothing_else(env: Env) -> None:
    doc = await fetch_document(env)
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {
        (r.method, r.resource.canonical)
        for r in env.client.app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert documented == served
    assert ("POST", "/api/v1/queues/{queue}/lease") in documented


async def test_a_route_without_an_operation_breaks_the_document(env: Env) -> None:
    app = env.client.app
    app.router._frozen = False  # a route added behind the document's back
    try:
        app.router.add_get("/api/v1/undocumented", openapi.serve_openapi)
        with pytest.raises(KeyError, match="GET /api/v1/undocumented"):
            openapi.document(app)
    finally:
        app.router._frozen = True


async def test_the_document_is_open_even_with_tokens() -> None:
    async with running(QUEUE_YAML, tokens=TOKENS) as secured:
        assert (await secured.call("GET", "/openapi.json"))[0] == 200
        assert (await secured.call("GET", "/api/v1/queues"))[0] == 401


def _validator(doc: dict[str, Any], path: str, method: str, status: int) -> Any:
    answer = doc["paths"][path][method.lower()]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


async def test_real_answers_match_their_documented_schemas(env: Env) -> None:
    """Drive a workload through the API and validate every answer against the document."""
    doc = await fetch_document(env)
    q = "/api/v1/queues/{queue}"
    calls: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("GET", "/healthz", "/healthz", {}, 200),
        ("POST", f"{q}/tasks", "/api/v1/queues/fast/tasks", {"json": {"name": "a"}}, 200),
        (
            "POST",
            f"{q}/tasks",
            "/api/v1/queues/work/tasks",
            {"json": {"tasks": [{"name": "p", "payload": "x", "tag": "t"}]}},
            200,
        ),
        ("GET", "/api/v1/queues", "/api/v1/queues", {}, 200),
        ("GET", q, "/api/v1/queues/fast", {}, 200),
        ("GET", f"{q}/tasks", "/api/v1/queues/fast/tasks", {}, 200),
        ("GET", f"{q}/tasks/{{name}}", "/api/v1/queues/fast/tasks/a", {}, 200),
        ("POST", f"{q}/tasks/{{name}}/run", "/api/v1/queues/fast/tasks/a/run", {}, 200),
        (
            "POST",
            f"{q}/lease",
            "/api/v1/queues/work/lease",
            {"json": {"lease_seconds": 60, "max_tasks": 5}},
            200,
        ),
        ("POST", f"{q}/pause", "/api/v1/queues/fast/pause", {}, 200),
        ("POST", f"{q}/resume", "/api/v1/queues/fast/resume", {}, 200),
        ("DELETE", f"{q}/tasks/{{name}}", "/api/v1/queues/fast/tasks/a", {}, 200),
        ("POST", f"{q}/delete", "/api/v1/queues/work/delete", {"json": {"names": ["p"]}}, 200),
        ("POST", f"{q}/purge", "/api/v1/queues/fast/purge", {}, 200),
        ("GET", f"{q}/tasks/{{name}}", "/api/v1/queues/fast/tasks/zz", {}, 404),
        ("POST", f"{q}/lease", "/api/v1/queues/fast/lease", {"json": {}}, 400),
    ]
    for method, template, url, kw, status in calls:
        got_status, body = await env.call(method, url, token=ADMIN, **kw)
        assert got_status == status, (url, body)
        _validator(doc, template, method, status).validate(body)
    # the lease changes and dead letters
    await env.add("work", {"name": "m", "payload": "x"})
    _, leased = await env.call(
        "POST", "/api/v1/queues/work/lease", json={"lease_seconds": 60, "max_tasks": 1}
    )
    [task] = leased["tasks"]
    status, body = await env.call(
        "POST",
        "/api/v1/queues/work/tasks/m/lease",
        json={"eta_us": task["eta_us"], "lease_seconds": 5},
    )
    _validator(doc, f"{q}/tasks/{{name}}/lease", "POST", status).validate(body)
    await env.add("fast", {"name": "d"})
    await kill(env, "fast", "d")
    for method, template, url in [
        ("GET", f"{q}/dead", "/api/v1/queues/fast/dead"),
        ("GET", f"{q}/dead/{{name}}", "/api/v1/queues/fast/dead/d"),
        ("POST", f"{q}/dead/{{name}}/redrive", "/api/v1/queues/fast/dead/d/redrive"),
    ]:
        status, body = await env.call(method, url)
        assert status == 200, body
        _validator(doc, template, method, 200).validate(body)
