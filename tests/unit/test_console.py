"""The web console: its pages, forms, errors and access control, over aiohttp's test client."""

from __future__ import annotations

import dataclasses
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from pushd import models, settings
from pushd.api import auth, console, console_view, keys, sessions
from pushd.store import memory
from tests.unit.test_api import (
    ADMIN,
    CONSUMER,
    PRODUCER,
    QUEUE_YAML,
    T0,
    TOKENS,
    Env,
    S,
    kill,
    running,
)

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy

CONFIRM = {"confirm": "yes"}
Q = "/console/queues"


@dataclasses.dataclass
class Page:
    status: int
    text: str
    headers: CIMultiDictProxy[str]

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


async def fetch(
    env: Env,
    method: str,
    path: str,
    *,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> Page:
    """One request, redirects not followed; the console's cookie sent if given (and no other:
    the test client's cookie jar is emptied first)."""
    env.client.session.cookie_jar.clear()
    sent = dict(headers or {})
    if cookie is not None:
        sent["Cookie"] = f"{auth.CONSOLE_COOKIE}={cookie}"
    async with env.client.request(
        method, path, headers=sent, allow_redirects=False, **kw
    ) as response:
        return Page(response.status, await response.text(), response.headers)


async def get(env: Env, path: str, **kw: Any) -> Page:
    page = await fetch(env, "GET", path, **kw)
    if page.status == 200:
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    return page


async def post(env: Env, path: str, form: dict[str, str] | None = None, **kw: Any) -> Page:
    return await fetch(env, "POST", path, data=form or {}, **kw)


def assert_error_page(page: Page, status: int, text: str = "") -> None:
    """An HTML page naming the status and the message: never JSON, never a traceback."""
    assert page.status == status, page.text
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert f"<h1>{status} " in page.text
    assert text in page.text, page.text
    assert "Traceback" not in page.text


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running() as started:
        yield started


# ------------------------------------------------------------------ the queues page


async def test_the_queues_page_shows_every_queue_its_stats_and_a_chart(env: Env) -> None:
    await env.add("fast", {"name": "a", "countdown": 60})
    await env.add("fast", {"name": "d"})
    await kill(env, "fast", "d")
    recorder = env.client.app[keys.SERVICE].metrics
    for ok in (True, True, False):
        recorder.record_attempt(
            "fast", status=200 if ok else 503, ok=ok, latency_s=0.1, lateness_s=0
        )
    page = await get(env, "/")
    assert page.status == 200
    assert '<meta http-equiv="refresh" content="5">' in page.text
    for name in ("fast", "work", "default"):
        assert f'<a href="{Q}/{name}">{name}</a>' in page.text
    row = page.text[page.text.index('id="queue-fast"') : page.text.index('id="queue-work"')]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    # rate, bucket, enforced rate, state, waiting, (oldest ETA), executed, in flight, dead
    assert cells[1:7] == ["push", "10/s", "3", "2.5/s", "running", "1"]
    assert cells[8:11] == ["7", "1", "1"]
    assert "in 1 min" in cells[7]
    assert 'aria-label="last 10 min: 2 delivered, 1 failed"' in row
    assert row.count('class="ok"') == 1
    assert row.count('class="bad"') == 1
    # a pull queue has no rate and no delivery chart
    assert (
        "<svg"
        not in page.text[page.text.index('id="queue-work"') : page.text.index('id="queue-default"')]
    )


async def test_pages_forbid_framing_scripts_and_caching(env: Env) -> None:
    page = await get(env, "/")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src" not in csp  # nothing may run
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script" not in page.text


# ------------------------------------------------------------------ the queue page


async def test_the_queue_page_lists_tasks_a_page_at_a_time(env: Env) -> None:
    names = [f"t{i:03d}" for i in range(console.PAGE_SIZE + 5)]
    for start in range(0, len(names), 50):
        await env.add("fast", {"tasks": [{"name": n} for n in names[start : start + 50]]})
    page = await get(env, f"{Q}/fast")
    listed = re.findall(r'href="/console/queues/fast/tasks/([^"]+)"', page.text)
    assert listed == names[: console.PAGE_SIZE]
    [more] = re.findall(r'<a href="([^"]+)" id="next-tasks"', page.text)
    assert more == f"{Q}/fast?after={names[console.PAGE_SIZE - 1]}"
    page = await get(env, more)
    assert re.findall(r'href="/console/queues/fast/tasks/([^"]+)"', page.text) == names[-5:]
    assert 'id="next-tasks"' not in page.text


async def test_the_queue_page_searches_by_name_prefix_and_by_tag(env: Env) -> None:
    await env.add("fast", {"tasks": [{"name": n} for n in ("job-1", "job-2", "other", "Job-3")]})
    await env.add(
        "work",
        {
            "tasks": [
                {"name": "p1", "payload": "x", "tag": "red"},
                {"name": "p2", "payload": "x", "tag": "blue"},
                {"name": "q3", "payload": "x", "tag": "red"},
            ]
        },
    )

    async def listed(path: str) -> list[str]:
        page = await get(env, path)
        assert page.status == 200, page.text
        return re.findall(r'href="/console/queues/\w+/tasks/([^"]+)"', page.text)

    assert await listed(f"{Q}/fast?prefix=job") == ["job-1", "job-2"]
    assert await listed(f"{Q}/fast?prefix=nothing") == []
    assert await listed(f"{Q}/work?tag=red") == ["p1", "q3"]
    assert await listed(f"{Q}/work?tag=red&prefix=q") == ["q3"]
    page = await get(env, f"{Q}/work?tag=red")
    assert 'value="red"' in page.text  # the search form keeps what was asked
    assert "all tasks</a>" in page.text
    assert_error_page(await get(env, f"{Q}/fast?prefix=a%20b"), 400, "not (the start of) a task")


async def test_the_queue_page_shows_dead_letters_with_their_actions(env: Env) -> None:
    await env.add("fast", {"name": "d1"})
    await kill(env, "fast", "d1", status=503)
    page = await get(env, f"{Q}/fast")
    dead = page.text[page.text.index('id="dead-d1"') :]
    assert "task_retry_limit reached" in dead
    assert f'action="{Q}/fast/dead/d1/redrive"' in dead
    assert f'action="{Q}/fast/dead/d1/delete"' in dead
    assert '<td class="n">503</td>' in dead


# ------------------------------------------------------------------ the task page


async def test_the_task_page_shows_every_field_and_the_payload_as_text(env: Env) -> None:
    await env.add(
        "fast",
        {
            "name": "t",
            "url": "/work?x=1",
            "method": "PUT",
            "headers": {"X-Trace": "abc"},
            "payload": "héllo\nworld",
            "countdown": 3600,
        },
    )
    page = await get(env, f"{Q}/fast/tasks/t")
    assert page.status == 200
    for shown in ("PUT", "/work?x=1", "X-Trace", "abc", "héllo\nworld", "in 1 h", "none yet"):
        assert shown in page.text, shown
    assert f'action="{Q}/fast/tasks/t/run"' in page.text
    assert f'action="{Q}/fast/tasks/t/delete"' in page.text
    assert "as text" in page.text


async def test_the_task_page_shows_the_last_status_and_counts(env: Env) -> None:
    task = models.Task(
        queue="fast",
        name="tried",
        url="/x",
        eta_us=T0 + 60 * S,
        created_us=T0,
        retry_count=2,
        execution_count=1,
        first_try_us=T0,
        last_status=503,
        last_attempt=models.LastAttempt(
            time_us=T0 - 30 * S,
            status=503,
            error=None,
            message="HTTP 503",
            url="http://127.0.0.1:9/x",
        ),
    )
    await env.store.add([task], now_us=T0)
    page = await get(env, f"{Q}/fast/tasks/tried")
    fields = dict(re.findall(r"<tr><th>([^<]+)</th><td[^>]*>(.*?)</td></tr>", page.text))
    assert fields["retry count"] == "2"
    assert fields["execution count"] == "1"
    assert fields["last attempt"] == "2023-11-14 22:12:50 UTC (30 s ago): <strong>HTTP 503</strong>"
    assert fields["message"] == "HTTP 503"
    assert fields["sent to"] == "<code>http://127.0.0.1:9/x</code>"
    assert fields["first try"] == "2023-11-14 22:13:20 UTC"


async def test_a_refused_attempt_shows_its_error_in_the_task_list_and_page(env: Env) -> None:
    refused = models.LastAttempt(
        time_us=T0,
        status=None,
        error="refused",
        message="ClientConnectorError: Cannot connect to host 127.0.0.1:9",
        url="http://127.0.0.1:9/x",
    )
    task = models.Task(
        queue="fast",
        name="refused",
        url="/x",
        eta_us=T0 + 60 * S,
        created_us=T0,
        retry_count=1,
        first_try_us=T0,
        last_attempt=refused,
    )
    await env.store.add([task], now_us=T0)
    listing = await get(env, f"{Q}/fast")
    row = re.search(r"<tr>\s*<td><a [^>]*>refused</a>.*?</tr>", listing.text, re.S)
    assert row is not None
    assert re.findall(r'<td class="n">([^<]*)</td>', row.group(0)) == ["1", "0", "refused"]
    page = await get(env, f"{Q}/fast/tasks/refused")
    fields = dict(re.findall(r"<tr><th>([^<]+)</th><td[^>]*>(.*?)</td></tr>", page.text))
    assert fields["last attempt"].endswith(": <strong>refused</strong>")
    assert fields["message"] == "ClientConnectorError: Cannot connect to host 127.0.0.1:9"


async def test_a_binary_payload_is_shown_in_hex_and_a_long_one_cut(env: Env) -> None:
    await env.add("work", {"name": "bin", "payload_base64": "AAEC/w==", "tag": "t"})
    page = await get(env, f"{Q}/work/tasks/bin")
    assert '<pre id="payload">00 01 02 ff</pre>' in page.text
    assert "4 bytes, in hex" in page.text
    await env.add("work", {"name": "long", "payload": "é" * 5000})
    page = await get(env, f"{Q}/work/tasks/long")
    shown = re.search(r'<pre id="payload">(.*?)</pre>', page.text, re.S)
    assert shown is not None
    assert shown.group(1) == "é" * 2048  # 4096 bytes: whole characters only
    assert "10000 bytes, as text; the first 4096 shown" in page.text


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"", "text"),
        ("tab\tand\r\nlines, \u00e9, \u00a0 and \U0001f469\u200d\U0001f4bb".encode(), "text"),
        (b"nul\x00inside", "hex"),
        (b"escape\x1b[31m", "hex"),
        (b"\xff\xfe", "hex"),
    ],
)
def test_a_payload_is_text_only_without_control_characters(payload: bytes, kind: str) -> None:
    shown = console_view.preview(payload)
    assert shown["kind"] == kind
    assert shown["size"] == len(payload)
    if kind == "text":
        assert shown["text"].encode() == payload


async def test_names_payloads_and_headers_are_escaped(env: Env) -> None:
    # A name the API would refuse, as an older or foreign store might still hold.
    evil = "<script>alert(1)</script>"
    task = models.Task(
        queue="fast",
        name=evil,
        url=f"/x?{evil}",
        headers=(("X-Evil", evil),),
        payload=evil.encode(),
        eta_us=T0,
        created_us=T0,
    )
    await env.store.add([task], now_us=T0)
    page = await get(env, f"{Q}/fast")
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "/tasks/%3Cscript%3Ealert%281%29%3C%2Fscript%3E" in page.text  # a path segment
    # the task page refuses the name (not a task name) in an escaped error page
    page = await get(env, f"{Q}/fast/tasks/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert_error_page(page, 400, "&lt;script&gt;")
    assert "<script>" not in page.text
    # payload and headers of a task with a valid name
    await env.store.add([dataclasses.replace(task, name="ok")], now_us=T0)
    page = await get(env, f"{Q}/fast/tasks/ok")
    assert page.status == 200
    assert "<script>" not in page.text
    assert page.text.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3  # url, header, payload


# ------------------------------------------------------------------ actions


async def test_pause_and_resume_need_the_box_ticked(env: Env) -> None:
    page = await post(env, f"{Q}/fast/pause")
    assert_error_page(page, 400, "tick the box to confirm that you want to pause the queue")
    assert env.engine.calls == []
    page = await post(env, f"{Q}/fast/pause", CONFIRM)
    assert (page.status, page.location) == (303, f"{Q}/fast?done=paused")
    assert env.engine.calls == [("pause", "fast")]
    page = await get(env, page.location)
    assert 'id="state">paused' in page.text
    assert console.NOTICES["paused"] in page.text
    assert 'id="resume"' in page.text
    page = await post(env, f"{Q}/fast/resume", CONFIRM)
    assert (page.status, page.location) == (303, f"{Q}/fast?done=resumed")
    assert env.engine.calls[-1] == ("resume", "fast")
    assert 'id="pause"' in (await get(env, page.location)).text


async def test_purge_deletes_every_task_once_confirmed(env: Env) -> None:
    await env.add("fast", {"tasks": [{"name": "a"}, {"name": "b"}]})
    assert_error_page(await post(env, f"{Q}/fast/purge", {"confirm": "no"}), 400, "tick")
    assert len(await env.store.list_tasks("fast")) == 2
    page = await post(env, f"{Q}/fast/purge", CONFIRM)
    assert (page.status, page.location) == (303, f"{Q}/fast?done=purged")
    assert await env.store.list_tasks("fast") == []
    assert ("forget", "fast") in env.engine.calls


async def test_run_now_makes_a_future_task_due_and_wakes_the_scheduler(env: Env) -> None:
    await env.add("fast", {"name": "later", "countdown": 3600})
    env.clock.advance(5 * S)
    page = await post(env, f"{Q}/fast/tasks/later/run")
    assert (page.status, page.location) == (303, f"{Q}/fast?done=ran")
    task = await env.store.get("fast", "later")
    assert task is not None
    assert task.eta_us == T0 + 5 * S
    assert env.engine.notified[-1] == ("fast", T0 + 5 * S)


async def test_delete_a_task(env: Env) -> None:
    await env.add("fast", {"name": "t"})
    assert_error_page(await post(env, f"{Q}/fast/tasks/t/delete"), 400, "tick")
    page = await post(env, f"{Q}/fast/tasks/t/delete", CONFIRM)
    assert (page.status, page.location) == (303, f"{Q}/fast?done=deleted")
    assert await env.store.get("fast", "t") is None
    assert_error_page(await post(env, f"{Q}/fast/tasks/t/delete", CONFIRM), 404, "no task")


async def test_redrive_and_delete_dead_letters(env: Env) -> None:
    await env.add("fast", {"tasks": [{"name": "d1"}, {"name": "d2"}]})
    await kill(env, "fast", "d1")
    await kill(env, "fast", "d2")
    page = await get(env, f"{Q}/fast/dead/d1")
    assert page.status == 200
    assert "task_retry_limit reached" in page.text
    assert 'id="redrive"' in page.text
    page = await post(env, f"{Q}/fast/dead/d1/redrive")
    assert (page.status, page.location) == (303, f"{Q}/fast?done=redriven")
    task = await env.store.get("fast", "d1")
    assert task is not None
    assert task.retry_count == 0
    assert env.engine.notified[-1] == ("fast", T0)
    assert_error_page(await post(env, f"{Q}/fast/dead/d1/redrive"), 404, "no dead letter")
    page = await post(env, f"{Q}/fast/dead/d2/delete", CONFIRM)
    assert (page.status, page.location) == (303, f"{Q}/fast?done=dead_deleted#dead")
    assert await env.store.get_dead("fast", "d2") is None


async def test_redrive_onto_a_live_name_is_a_409_page() -> None:
    class Stubborn(memory.MemoryStore):
        async def redrive(self, queue: str, name: str, *, now_us: int) -> models.Task | None:
            return None

    async with running(store=Stubborn()) as env:
        await env.add("fast", {"name": "d"})
        await kill(env, "fast", "d")
        assert_error_page(await post(env, f"{Q}/fast/dead/d/redrive"), 409, "live task")


async def test_run_now_of_a_leased_pull_task_is_refused_in_a_page(env: Env) -> None:
    await env.add("work", {"name": "p", "payload": "x"})
    await env.call("POST", "/api/v1/queues/work/lease", json={"lease_seconds": 60, "max_tasks": 1})
    assert_error_page(await post(env, f"{Q}/work/tasks/p/run"), 400, "leased by a worker")


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("GET", f"{Q}/nope", 404, "queue &#39;nope&#39; is not configured"),
        ("GET", f"{Q}/fast/tasks/missing", 404, "has no task &#39;missing&#39;"),
        ("GET", f"{Q}/fast/dead/missing", 404, "has no dead letter"),
        ("POST", f"{Q}/nope/purge", 404, "nope"),
        ("POST", f"{Q}/fast/tasks/missing/run", 404, "has no task"),
        ("GET", "/console/nothing-here", 404, "no such page"),
        ("PUT", "/", 405, "method PUT is not allowed"),
        ("GET", f"{Q}/fast/tasks/bad%20name", 400, "task name"),
        ("GET", f"{Q}/work?tag=" + "x" * 501, 400, "at most 500"),
    ],
)
async def test_errors_are_html_pages(
    env: Env, method: str, path: str, status: int, text: str
) -> None:
    assert_error_page(await fetch(env, method, path), status, text)


async def test_a_form_that_is_not_a_form_is_a_400_page(env: Env) -> None:
    page = await fetch(env, "POST", f"{Q}/fast/pause", json={"confirm": "yes"})
    assert_error_page(page, 400, "application/x-www-form-urlencoded")
    page = await fetch(
        env,
        "POST",
        f"{Q}/fast/pause",
        data=b"confirm=%ff",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert page.status == 400  # not "yes" once decoded
    page = await fetch(
        env,
        "POST",
        f"{Q}/fast/pause",
        data=b"\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error_page(page, 400, "could not be read")
    assert env.engine.calls == []


async def test_a_bug_is_a_500_page_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenStore(memory.MemoryStore):
        async def paused_queues(self) -> set[str]:
            raise RuntimeError("disk on fire")

    async with running(store=BrokenStore()) as env:
        with caplog.at_level(logging.ERROR, logger="pushd"):
            page = await get(env, "/")
    assert_error_page(page, 500, "internal server error")
    assert "disk on fire" not in page.text


# ------------------------------------------------------------------ cross-site forms, loopback


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),
        ({"Origin": "http://127.0.0.1:{port}"}, True),
        ({"Origin": "http://localhost:3000"}, False),  # another local page: same site, not origin
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "null"}, False),
        ({"Sec-Fetch-Site": "same-origin"}, True),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, False),
    ],
)
async def test_forms_from_other_pages_are_refused(
    env: Env, headers: dict[str, str], allowed: bool
) -> None:
    await env.add("fast", {"name": "a"})
    port = env.client.port
    sent = {k: v.format(port=port) for k, v in headers.items()}
    page = await post(env, f"{Q}/fast/purge", CONFIRM, headers=sent)
    if allowed:
        assert page.status == 303
        assert await env.store.list_tasks("fast") == []
    else:
        assert_error_page(page, 403)
        [message] = re.findall(r'<p class="error" id="error">(.*?)</p>', page.text)
        assert re.search(r"not by the console|another site|other origins", message), message
        assert len(await env.store.list_tasks("fast")) == 1


async def test_without_tokens_a_page_for_another_host_is_refused(env: Env) -> None:
    page = await get(env, "/", headers={"Host": "evil.example"})
    assert_error_page(page, 403, "addressed to localhost")


async def test_without_tokens_the_login_page_says_none_is_needed(env: Env) -> None:
    page = await get(env, "/console/login")
    assert "needs no login" in page.text
    page = await post(env, "/console/login", {"token": "x", "next": f"{Q}/fast"})
    assert (page.status, page.location) == (303, f"{Q}/fast")
    assert "Set-Cookie" not in page.headers


# ------------------------------------------------------------------ tokens


@pytest.fixture
async def secured() -> AsyncIterator[Env]:
    async with running(tokens=TOKENS) as started:
        yield started


async def log_in(env: Env, token: str) -> str:
    page = await post(env, "/console/login", {"token": token, "next": "/"})
    assert (page.status, page.location) == (303, "/")
    set_cookie = page.headers["Set-Cookie"]
    match = re.match(rf"{auth.CONSOLE_COOKIE}=([0-9a-f]+);", set_cookie)
    assert match is not None, set_cookie
    return match.group(1)


async def test_with_tokens_pages_send_the_browser_to_the_login_form(secured: Env) -> None:
    page = await get(secured, f"{Q}/fast?prefix=a")
    assert page.status == 303
    login, _, query = page.location.partition("?")
    assert (login, urllib.parse.parse_qs(query)) == (
        "/console/login",
        {"next": [f"{Q}/fast?prefix=a"]},
    )
    page = await get(secured, page.location)
    assert page.status == 200
    assert '<input type="hidden" name="next" value="/console/queues/fast?prefix=a">' in page.text
    # a form posted without a login is a 401 page, and nothing is done
    assert_error_page(await post(secured, f"{Q}/fast/purge", CONFIRM), 401, "Authorization")


async def test_logging_in_sets_a_strict_http_only_cookie_that_is_not_the_token(
    secured: Env,
) -> None:
    page = await post(secured, "/console/login", {"token": ADMIN, "next": f"{Q}/fast"})
    assert (page.status, page.location) == (303, f"{Q}/fast")
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert ADMIN not in cookie
    value = await log_in(secured, ADMIN)
    page = await get(secured, "/", cookie=value)
    assert page.status == 200
    assert "ops (admin)" in page.text
    # the cookie opens the console only: the API still wants the header
    async with secured.client.get(
        "/api/v1/queues", headers={"Cookie": f"{auth.CONSOLE_COOKIE}={value}"}
    ) as response:
        assert response.status == 401
        assert response.content_type == "application/json"
    # and the header opens the console too
    page = await get(secured, "/", headers={"Authorization": f"Bearer {ADMIN}"})
    assert page.status == 200


async def test_a_wrong_token_or_cookie_gets_no_further(secured: Env) -> None:
    page = await post(secured, "/console/login", {"token": "not-a-token-at-all"})
    assert page.status == 401
    assert "not a token of this daemon" in page.text
    assert "Set-Cookie" not in page.headers
    assert (await get(secured, "/", cookie="0" * 64)).status == 303
    assert (await post(secured, f"{Q}/fast/pause", CONFIRM, cookie="0" * 64)).status == 401


async def test_logging_in_never_redirects_to_another_site(secured: Env) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "queues"):
        page = await post(secured, "/console/login", {"token": ADMIN, "next": target})
        assert (page.status, page.location) == (303, "/"), target


async def test_logging_out_clears_the_cookie(secured: Env) -> None:
    value = await log_in(secured, ADMIN)
    page = await post(secured, "/console/logout", cookie=value)
    assert (page.status, page.location) == (303, "/console/login")
    assert re.match(rf'{auth.CONSOLE_COOKIE}=(""|);', page.headers["Set-Cookie"])


async def test_logging_out_ends_the_session_on_the_server(secured: Env) -> None:
    """A copy of the cookie taken before logging out opens nothing afterwards."""
    value = await log_in(secured, ADMIN)
    other = await log_in(secured, ADMIN)
    assert (await get(secured, "/", cookie=value)).status == 200
    await post(secured, "/console/logout", cookie=value)
    assert (await get(secured, "/", cookie=value)).status == 303
    assert (await post(secured, f"{Q}/fast/pause", CONFIRM, cookie=value)).status == 401
    assert (await get(secured, "/", cookie=other)).status == 200  # another login is its own


async def test_a_session_expires_after_console_session_s(secured: Env) -> None:
    page = await post(secured, "/console/login", {"token": ADMIN, "next": "/"})
    assert "Max-Age=43200" in page.headers["Set-Cookie"]  # the default 12 h
    value = await log_in(secured, ADMIN)
    secured.clock.advance(12 * 3600 * S - 1)
    assert (await get(secured, "/", cookie=value)).status == 200
    secured.clock.advance(1)
    page = await get(secured, "/", cookie=value)
    assert (page.status, page.location.partition("?")[0]) == (303, "/console/login")
    assert len(secured.client.app[keys.SESSIONS]) == 1  # the first login, not yet swept


async def test_the_old_hmac_cookie_no_longer_opens_the_console(secured: Env) -> None:
    """Before sessions the cookie was HMAC(token, label): a value anyone holding the token could
    compute and no logout could revoke. It is now an unknown session id like any other."""
    import hashlib
    import hmac

    old = hmac.new(ADMIN.encode(), b"pushd console session v1", hashlib.sha256).hexdigest()
    assert (await get(secured, "/", cookie=old)).status == 303


def test_sessions_keep_at_most_max_sessions_dropping_the_oldest() -> None:
    kept = sessions.Sessions(lifetime_us=60 * S)
    token = settings.ApiToken(name="ops", token="t" * 20)
    first = kept.open(token, T0)
    for _ in range(sessions.MAX_SESSIONS):
        kept.open(token, T0)
    assert len(kept) == sessions.MAX_SESSIONS
    assert kept.find(first, T0) is None
    assert kept.close(first) is False
    later = kept.open(token, T0 + 60 * S)  # every earlier one has expired: swept
    assert len(kept) == 1
    assert kept.find(later, T0 + 60 * S) == token


async def test_roles_apply_to_the_console_as_to_the_api(secured: Env) -> None:
    await secured.add("fast", {"name": "t"}, token=ADMIN)
    await secured.add("fast", {"name": "d"}, token=ADMIN)
    await kill(secured, "fast", "d")
    producer, consumer, admin = [await log_in(secured, t) for t in (PRODUCER, CONSUMER, ADMIN)]
    # a producer sees the queues, not their tasks, and cannot purge
    assert (await get(secured, "/", cookie=producer)).status == 200
    page = await get(secured, f"{Q}/fast", cookie=producer)
    assert_error_page(page, 403, "role &#39;producer&#39;, which may not read tasks")
    assert 'href="/console/login"' in page.text
    page = await post(secured, f"{Q}/fast/purge", CONFIRM, cookie=producer)
    assert_error_page(page, 403, "may not administer queues")
    assert await secured.store.get("fast", "t") is not None
    # a consumer reads and deletes tasks, but dead letters and running tasks are the admin's
    page = await get(secured, f"{Q}/fast", cookie=consumer)
    assert page.status == 200
    assert "Dead letters are shown to admin tokens only" in page.text
    assert (await get(secured, f"{Q}/fast/dead/d", cookie=consumer)).status == 403
    assert (await post(secured, f"{Q}/fast/tasks/t/run", cookie=consumer)).status == 403
    assert (await post(secured, f"{Q}/fast/pause", CONFIRM, cookie=consumer)).status == 403
    assert secured.engine.calls == []  # nothing was paused, purged or deleted
    # the admin does everything
    assert 'id="dead-d"' in (await get(secured, f"{Q}/fast", cookie=admin)).text
    assert (await post(secured, f"{Q}/fast/purge", CONFIRM, cookie=admin)).status == 303
    assert await secured.store.get("fast", "t") is None
    page = await post(secured, f"{Q}/fast/tasks/zz/delete", CONFIRM, cookie=consumer)
    assert_error_page(page, 404, "no task")  # allowed: consumers delete tasks


async def test_a_cookie_cannot_carry_a_form_from_another_site(secured: Env) -> None:
    await secured.add("fast", {"name": "t"}, token=ADMIN)
    admin = await log_in(secured, ADMIN)
    page = await post(
        secured,
        f"{Q}/fast/purge",
        CONFIRM,
        cookie=admin,
        headers={"Origin": "https://evil.example"},
    )
    assert_error_page(page, 403, "not by the console")
    assert await secured.store.get("fast", "t") is not None


async def test_the_queues_page_hides_queues_whose_acl_excludes_the_token() -> None:
    yaml = QUEUE_YAML + "- name: guarded\n  mode: pull\n  acl:\n  - user_email: w@example.com\n"
    stranger = "stranger-token-0123456789"
    tokens = (
        *TOKENS,
        settings.ApiToken(name="s", token=stranger, role="consumer", identity="s@example.com"),
    )
    async with running(yaml, tokens=tokens) as env:
        cookie = await log_in(env, stranger)
        page = await get(env, "/", cookie=cookie)
        assert 'id="queue-work"' in page.text
        assert 'id="queue-guarded"' not in page.text
        assert (await get(env, f"{Q}/guarded", cookie=cookie)).status == 403
        admin = await log_in(env, ADMIN)
        assert 'id="queue-guarded"' in (await get(env, "/", cookie=admin)).text


async def test_the_openapi_document_describes_pages_forms_and_html_errors(env: Env) -> None:
    _, doc = await env.call("GET", "/openapi.json")
    page = doc["paths"]["/"]["get"]
    assert set(page["responses"]["200"]["content"]) == {"text/html"}
    assert set(page["responses"]["404"]["content"]) == {"text/html"}
    purge = doc["paths"]["/console/queues/{queue}/purge"]["post"]
    assert set(purge["requestBody"]["content"]) == {"application/x-www-form-urlencoded"}
    assert "303" in purge["responses"]
    assert "content" not in purge["responses"]["303"]
    # the native API keeps its JSON errors
    native_errors = doc["paths"]["/api/v1/queues/{queue}/purge"]["post"]["responses"]["404"]
    assert set(native_errors["content"]) == {"application/json"}
