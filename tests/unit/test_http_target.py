"""Cloud Tasks HTTP tasks: how they are built (pushd.tasks.http_target) and what each attempt
sends (pushd.dispatch.http_target), attempt after attempt through the scheduler's outcome.

The per-attempt table is CLOUDTASKS.md 1.5 (aertje ``conformance/golden/dispatch.json``,
recorded from production, a receiver answering 503, then 404, then 200), copied here:

    attempt  HTTP target: RetryCount ExecutionCount PreviousResponse RetryReason
    0 (503)               0          0              -                -
    1 (404)               1          0              503              ""
    2 (200)               2          1              404              ""
    App Engine target:    same RetryCount, ExecutionCount 0, 1, 2, RetryReason "App Error"
"""

from __future__ import annotations

import dataclasses
from typing import Any

import multidict
import pytest

from pushd import dispatch, errors, models, tasks
from pushd.dispatch import url_policy
from pushd.scheduler import outcomes
from pushd.store import base

T0 = 1_700_000_000_000_000
S = 1_000_000
URL = "https://hooks.example.com/run?x=1"
ADDRESS = "93.184.216.34"
RETRY = models.RetryParameters(min_backoff_s=1, max_backoff_s=1)


class Queue:
    name = "q"
    target = None


class FakeTransport:
    """Answers the statuses given in turn and records each request."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[dispatch.Request] = []

    async def send(self, request: dispatch.Request) -> dispatch.Response | dispatch.Failure:
        self.requests.append(request)
        return dispatch.Response(self.statuses.pop(0))

    async def close(self) -> None:
        pass


async def resolve(host: str, port: int) -> list[str]:
    assert (host, port) == ("hooks.example.com", 443)
    return [ADDRESS]


def http_task(**kw: Any) -> models.Task:
    request: dict[str, Any] = {
        "name": "t1",
        "headers": [("X-Mixed-Case", "v"), ("content-type", "application/json")],
        "payload": b"{}",
        "http": tasks.HttpTarget(URL),
        **kw,
    }
    return tasks.build_task(
        tasks.TaskRequest(**request), queue="q", mode=models.QueueMode.PUSH, now_us=T0
    )


async def run_attempts(
    task: models.Task, transport: FakeTransport, deliverer: dispatch.Deliverer, count: int
) -> list[multidict.CIMultiDict[str]]:
    """``count`` attempts, each task updated by the scheduler's outcome as the store would."""
    sent = []
    now = T0
    for _ in range(count):
        attempt = await deliverer(task, Queue(), deadline_s=10, now_us=now)
        sent.append(multidict.CIMultiDict(transport.requests[-1].headers))
        claimed = base.Claimed(task, now + 20 * S)
        outcome = outcomes.decide(claimed, attempt, RETRY, started_us=now, now_us=now)
        if isinstance(outcome, base.Done):
            break
        assert isinstance(outcome, base.Retry)
        task = dataclasses.replace(task, eta_us=outcome.eta_us, **base.counters(outcome))
        now = outcome.eta_us
    return sent


def deliverer(transport: FakeTransport, **kw: Any) -> dispatch.Deliverer:
    return dispatch.Deliverer(
        transport,
        targets={},
        default_target="http://127.0.0.1:9",
        signing_secret=None,
        policy=url_policy.UrlPolicy(("https://hooks.example.com/",), resolve),
        **kw,
    )


def test_stored_headers_keep_their_case_get_the_user_agent_and_no_content_type() -> None:
    task = http_task(headers=[("X-Mixed-Case", "v"), ("User-Agent", "mine")], payload=b"raw")
    assert task.is_http_target
    assert (task.url, task.method, task.payload) == (URL, models.Method.POST, b"raw")
    assert task.headers == (("X-Mixed-Case", "v"), ("User-Agent", "Google-Cloud-Tasks"))


@pytest.mark.parametrize(
    "header",
    [
        *("Host", "content-length", "X-Google-Foo", "x-appengine-queuename"),
        *("X-CloudTasks-TaskName", "Metadata-Flavor", "X-Pushd-Http-Authorization"),
        "Transfer-Encoding",
    ],
)
def test_reserved_headers_are_refused_naming_them(header: str) -> None:
    with pytest.raises(errors.InvalidTaskError, match=f"header '{header}' is reserved"):
        http_task(headers=[(header, "x")])


def test_hop_by_hop_headers_are_refused() -> None:
    with pytest.raises(errors.InvalidTaskError, match="hop-by-hop"):
        http_task(headers=[("Connection", "close")])


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://hooks.example.com/", "must start with http:// or https://"),
        ("https:///nohost", "must start with http:// or https://"),
        ("https://u:p@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com/#frag", "#fragment"),
        ("https://hooks.example.com/a b", "whitespace"),
        ("https://hooks.example.com:99999/", "cannot be parsed"),
        ("https://hooks.example.com/" + "a" * 2100, "at most 2083 characters"),
    ],
)
def test_bad_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(errors.InvalidUrlError, match=problem):
        http_task(http=tasks.HttpTarget(url))


def test_a_body_only_with_post_and_put() -> None:
    with pytest.raises(errors.InvalidTaskError, match="only be sent with POST or PUT, not GET"):
        http_task(method="GET")
    assert http_task(method="GET", payload=None).method is models.Method.GET


def test_an_http_task_may_be_a_mebibyte_and_no_more() -> None:
    assert http_task(payload=b"x" * 200_000).size > models.MAX_PUSH_TASK_SIZE_BYTES
    with pytest.raises(errors.TaskTooLargeError, match="at most 1048576 bytes"):
        http_task(payload=b"x" * (1024 * 1024))


def test_a_token_replaces_the_authorization_header_and_is_read_back() -> None:
    auth = tasks.Authorization("oidc", "sa@p.iam.gserviceaccount.com", audience="aud")
    task = http_task(
        headers=[("Authorization", "Basic x")], http=tasks.HttpTarget(URL, authorization=auth)
    )
    assert "Authorization" not in dict(task.headers)
    assert tasks.authorization_of(task) == auth


async def test_each_attempt_sends_the_real_services_headers_for_503_404_200() -> None:
    transport = FakeTransport(503, 404, 200)
    sent = await run_attempts(http_task(), transport, deliverer(transport), 3)
    assert len(sent) == 3
    table = [
        (
            h["X-CloudTasks-TaskRetryCount"],
            h["X-CloudTasks-TaskExecutionCount"],
            h.get("X-CloudTasks-TaskPreviousResponse"),
            h.get("X-CloudTasks-TaskRetryReason"),
        )
        for h in sent
    ]
    assert table == [("0", "0", None, None), ("1", "0", "503", ""), ("2", "1", "404", "")]
    for h, request in zip(sent, transport.requests, strict=True):
        assert (request.method, request.url, request.body) == ("POST", URL, b"{}")
        assert request.connect_to == ADDRESS  # the address checked, never resolved again
        assert h["X-CloudTasks-QueueName"] == "q"
        assert h["X-CloudTasks-TaskName"] == "t1"
        assert h["User-Agent"] == "Google-Cloud-Tasks"
        assert [k for k in h if k.lower() in ("x-mixed-case", "content-type")] == [
            "X-Mixed-Case",
            "content-type",
        ]
        assert not [k for k in h if k.lower().startswith(("x-appengine-", "x-pushd-"))]
    etas = [float(h["X-CloudTasks-TaskETA"]) for h in sent]
    assert etas == [T0 / S, T0 / S + 1, T0 / S + 2]


async def test_no_content_type_is_ever_added() -> None:
    transport = FakeTransport(200)
    [h] = await run_attempts(http_task(headers=[]), transport, deliverer(transport), 1)
    assert "Content-Type" not in h


async def test_app_engine_tasks_count_every_answer_and_say_app_error() -> None:
    transport = FakeTransport(503, 404, 200)
    task = tasks.build_task(
        tasks.TaskRequest(name="t1", url="/run", payload=b"{}"),
        queue="q",
        mode=models.QueueMode.PUSH,
        now_us=T0,
    )
    sent = await run_attempts(task, transport, deliverer(transport), 3)
    table = [
        (
            h["X-AppEngine-TaskRetryCount"],
            h["X-AppEngine-TaskExecutionCount"],
            h.get("X-AppEngine-TaskPreviousResponse"),
            h.get("X-AppEngine-TaskRetryReason"),
        )
        for h in sent
    ]
    assert table == [
        ("0", "0", None, None),
        ("1", "1", "503", "App Error"),
        ("2", "2", "404", "App Error"),
    ]
    assert not [k for k in sent[1] if k.lower().startswith("x-cloudtasks-")]


async def test_a_refused_address_is_a_failed_attempt_never_sent() -> None:
    async def metadata(host: str, port: int) -> list[str]:
        return ["169.254.169.254"]

    transport = FakeTransport()
    d = dataclasses.replace(
        deliverer(transport), policy=url_policy.UrlPolicy(("https://hooks.example.com/",), metadata)
    )
    attempt = await d(http_task(), Queue(), deadline_s=10, now_us=T0)
    assert transport.requests == []
    assert (attempt.status, attempt.kind, attempt.url) == (None, "forbidden", URL)
    assert attempt.error is not None
    assert "metadata address" in attempt.error
    assert attempt.last(T0).message.startswith("hooks.example.com is 169.254.169.254")


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (tasks.Authorization("oauth", "sa@x", scope="s"), "Bearer static-token"),
        (tasks.Authorization("oidc", "sa@x", audience="aud"), "Bearer id:aud:sa@x"),
        (tasks.Authorization("oidc", "sa@x"), f"Bearer id:{URL}:sa@x"),  # audience: the URL
        (None, None),
    ],
)
async def test_tokens_are_sent_as_authorization(
    auth: tasks.Authorization | None, expected: str | None
) -> None:
    async def mint(audience: str, email: str) -> str:
        return f"id:{audience}:{email}"

    transport = FakeTransport(200)
    d = deliverer(transport, oauth_token="static-token", oidc_minter=mint)
    task = http_task(
        headers=[("Authorization", "Basic mine")], http=tasks.HttpTarget(URL, authorization=auth)
    )
    [h] = await run_attempts(task, transport, d, 1)
    assert h.get("Authorization") == (expected or "Basic mine")
    assert "X-Pushd-Http-Authorization" not in h


async def test_an_oauth_token_without_a_configured_one_sends_no_authorization() -> None:
    transport = FakeTransport(200)
    auth = tasks.Authorization("oauth", "sa@x", scope="s")
    task = http_task(http=tasks.HttpTarget(URL, authorization=auth))
    [h] = await run_attempts(task, transport, deliverer(transport), 1)
    assert "Authorization" not in h


async def test_dns_rebinding_each_attempt_resolves_and_connects_where_it_checked() -> None:
    """The name answers a public address, then a private one, then another public one: the
    delivery resolves at every attempt, sends to the address it checked (``connect_to``, so
    the transport never resolves the name itself), and refuses the private one unsent."""
    answers = [["93.184.216.34"], ["10.0.0.1"], ["93.184.216.35"]]

    async def rebinding(host: str, port: int) -> list[str]:
        return answers.pop(0)

    transport = FakeTransport(503, 200)
    d = dataclasses.replace(
        deliverer(transport),
        policy=url_policy.UrlPolicy(("https://hooks.example.com/",), rebinding),
    )
    task = http_task()
    first = await d(task, Queue(), deadline_s=10, now_us=T0)
    second = await d(task, Queue(), deadline_s=10, now_us=T0)
    third = await d(task, Queue(), deadline_s=10, now_us=T0)
    assert [r.connect_to for r in transport.requests] == ["93.184.216.34", "93.184.216.35"]
    assert [r.url for r in transport.requests] == [URL, URL]
    assert (first.status, second.status, second.kind, third.status) == (503, None, "forbidden", 200)
    assert second.error is not None
    assert "10.0.0.1, a private address" in second.error
    assert answers == []


async def test_a_minter_failure_is_not_an_attempt_of_the_task() -> None:
    """Minting is this machine's work (its key store): a failure gives the task back
    uncounted (``local``), as running out of files does, never a crashed delivery."""

    async def broken(audience: str, email: str) -> str:
        raise OSError("key store unavailable")

    transport = FakeTransport()
    auth = tasks.Authorization("oidc", "sa@x")
    attempt = await deliverer(transport, oidc_minter=broken)(
        http_task(http=tasks.HttpTarget(URL, authorization=auth)), Queue(), deadline_s=10, now_us=T0
    )
    assert transport.requests == []
    assert (attempt.status, attempt.local) == (None, True)
    assert attempt.error is not None
    assert "key store unavailable" in attempt.error
