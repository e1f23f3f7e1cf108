"""Campaign 4, bad input on ``POST /rpc_http``: whatever arrives, an rpc answer and never a crash.

The App Engine SDK treats any HTTP status but 200 as a broken connection, so every answer of
``/rpc_http`` must be HTTP 200 with a ``remote_api`` ``Response`` holding exactly one of
``response``, ``application_error`` or ``rpc_error``. Against a real daemon subprocess this
file sends random bytes, truncated and bit-flipped envelopes, valid envelopes around random
bytes, structurally valid requests of every taskqueue method with hostile field values (built
from the protocol-buffer descriptors: huge and negative integers, NaN, unknown queues, bytes
that are not UTF-8...), unknown services and methods, lengths declared far beyond the body,
nesting beyond protobuf's recursion limit, huge repeated fields and a body over 32 MiB.

Every answer is checked; an ``application_error`` with ``INTERNAL_ERROR`` counts as a crash (a
Python exception inside a handler: the error middleware renders it so, and logs
``api_internal_error``). At the end the daemon must be up, healthy, and its log free of
tracebacks.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message as pb_message
from google.protobuf import message_factory
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pushd.api import rpc_taskqueue
from pushd.errors import ErrorCode
from pushd.proto import remote_api_pb2 as remote
from pushd.proto import taskqueue_service_pb2 as pb
from tests.reliability.conftest import scale
from tests.reliability.test_fuzz_api import (
    HUGE,
    LIMIT,
    MIB,
    PULL_QUEUES,
    PUSH_QUEUES,
    QUEUE_YAML,
    LiveDaemon,
    _upload,
)

PATH = "/rpc_http"
RpcCode = remote.RpcError.ErrorCode
METHODS = tuple(sorted(rpc_taskqueue.METHODS))
SEED_NAMES = ("rpc-0", "rpc-1")
#: (answer kind, code) -> count, for the summary.
SEEN: collections.Counter[tuple[str, int]] = collections.Counter()

FAST = settings(
    max_examples=scale(150, 3000), deadline=None, suppress_health_check=list(HealthCheck)
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    live = LiveDaemon.start(
        tmp_path_factory.mktemp("rpc"),
        QUEUE_YAML,
        PUSHD_TOMBSTONE_RETENTION_S="0",
        PUSHD_DURABILITY="normal",
    )
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def seeded(daemon: LiveDaemon) -> LiveDaemon:
    """Tasks under known names, so that generated requests find some of them."""
    for queue in PUSH_QUEUES:
        batch = [{"name": n, "url": "/x", "countdown": 86400} for n in SEED_NAMES]
        daemon.call("POST", f"/api/v1/queues/{queue}/tasks", json={"tasks": batch})
    for queue in PULL_QUEUES:
        batch = [{"name": n, "payload": "p", "tag": "t"} for n in SEED_NAMES]
        daemon.call("POST", f"/api/v1/queues/{queue}/tasks", json={"tasks": batch})
    return daemon


def post(daemon: LiveDaemon, body: bytes, method: str = "POST") -> remote.Response:
    """One exchange: it must be HTTP 200 with exactly one kind of answer and no crash."""
    try:
        response = daemon.session.request(
            method,
            daemon.url + PATH,
            data=body,
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
    except requests.ConnectionError as exc:
        raise AssertionError(f"the connection dropped on {body[:80]!r}: {exc}") from exc
    assert response.status_code == 200, (response.status_code, response.content[:300])
    assert response.headers["Content-Type"].startswith("application/octet-stream")
    answer = remote.Response()
    answer.ParseFromString(response.content)
    assert answer.IsInitialized(), answer
    kinds = [f for f in ("response", "application_error", "rpc_error") if answer.HasField(f)]
    assert len(kinds) == 1, answer
    if answer.HasField("application_error"):
        code = answer.application_error.code
        assert code != ErrorCode.INTERNAL_ERROR, f"a crash inside pushd: {answer}"
        SEEN[("application_error", code)] += 1
    elif answer.HasField("rpc_error"):
        SEEN[("rpc_error", answer.rpc_error.code)] += 1
    else:
        SEEN[("response", 0)] += 1
    return answer


def envelope(service: str, method: str, request: bytes, ticket: str | None = None) -> bytes:
    wrapped = remote.Request(service_name=service, method=method, request=request)
    if ticket is not None:
        wrapped.request_id = ticket
    return wrapped.SerializeToString()


def rpc_error(answer: remote.Response) -> int | None:
    return answer.rpc_error.code if answer.HasField("rpc_error") else None


# ------------------------------------------------------------------ messages from descriptors

_F = pb_descriptor.FieldDescriptor
_KNOWN_BYTES = [
    *(q.encode() for q in (*PUSH_QUEUES, *PULL_QUEUES)),
    *(n.encode() for n in SEED_NAMES),
    b"",
    b"t",
    b"/x",
    b"/x?a=1",
    b"\xff\xfe",
    b"a" * 600,
    "é".encode(),
    b"nope",
]
_bytes = st.one_of(st.sampled_from(_KNOWN_BYTES), st.binary(max_size=40))
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_int64 = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, -1, 1, 2**63 - 1, -(2**63), 1_700_000_000_000_000, 30 * 86400 * 10**6]),
)
_int32 = st.one_of(
    st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, -1, 1, 100, 1000, 2**31 - 1])
)
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    _F.TYPE_INT64: _int64,
    _F.TYPE_SINT64: _int64,
    _F.TYPE_SFIXED64: _int64,
    _F.TYPE_UINT64: st.integers(0, 2**64 - 1),
    _F.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    _F.TYPE_INT32: _int32,
    _F.TYPE_SINT32: _int32,
    _F.TYPE_SFIXED32: _int32,
    _F.TYPE_UINT32: st.integers(0, 2**32 - 1),
    _F.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    _F.TYPE_BOOL: st.booleans(),
    _F.TYPE_DOUBLE: st.one_of(
        st.floats(), st.sampled_from([0.0, -1.0, 30.0, 604800.0, 1e300, float("nan")])
    ),
    _F.TYPE_FLOAT: st.floats(width=32),
    _F.TYPE_STRING: _text,
    _F.TYPE_BYTES: _bytes,
}


#: Optional fields that make any request a refusal (cron, datastore transactions): set rarely,
#: so that most generated requests reach the handlers' other rules.
_RARE = frozenset(
    {"crontimetable", "cron_retry_parameters", "transaction", "datastore_transaction", "payload"}
)


def _value(field: pb_descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type in (_F.TYPE_MESSAGE, _F.TYPE_GROUP):
        return messages(message_factory.GetMessageClass(field.message_type), depth + 1)
    if field.name == "queue_name":
        return st.one_of(
            st.sampled_from([q.encode() for q in (*PUSH_QUEUES, *PULL_QUEUES)]), _bytes
        )
    if field.name in ("task_name", "start_task_name"):
        return st.one_of(st.sampled_from([n.encode() for n in SEED_NAMES]), _bytes)
    if field.type == _F.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values])
    return _SCALARS[field.type]


def messages(
    cls: type[pb_message.Message], depth: int = 0
) -> st.SearchStrategy[pb_message.Message]:
    """Messages of ``cls`` with any values; required fields are usually, not always, set."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in cls.DESCRIPTOR.fields:
        value = _value(field, depth) if depth < 3 else st.nothing()
        if field.is_repeated:
            fields[field.name] = st.lists(value, max_size=3 if depth == 0 else 2)
        elif field.is_required:  # missing one time in ten
            fields[field.name] = st.integers(0, 9).flatmap(
                lambda k, v=value: st.none() if k == 0 else v
            )
        elif field.name in _RARE:
            fields[field.name] = st.integers(0, 9).flatmap(
                lambda k, v=value: v if k == 0 else st.none()
            )
        else:
            fields[field.name] = st.one_of(st.none(), value)

    def build(values: dict[str, Any]) -> pb_message.Message:
        message = cls()
        for name, value in values.items():
            field = cls.DESCRIPTOR.fields_by_name[name]
            composite = field.type in (_F.TYPE_MESSAGE, _F.TYPE_GROUP)
            if field.is_repeated:
                for item in value:
                    if composite:
                        getattr(message, name).add().CopyFrom(item)
                    else:
                        getattr(message, name).append(item)
            elif value is None:
                continue
            elif composite:
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries(fields).map(build)


def _request_class(method: str) -> type[pb_message.Message]:
    cls = rpc_taskqueue.METHODS[method].request
    return cls if cls is not None else pb.TaskQueuePurgeQueueRequest  # any bytes will do


@st.composite
def calls(draw: st.DrawFn) -> bytes:
    """A well-formed envelope around a (possibly incomplete) request of a real method."""
    method = draw(st.sampled_from(METHODS))
    inner = draw(messages(_request_class(method)))
    ticket = draw(st.one_of(st.none(), _text))
    return envelope("taskqueue", method, inner.SerializePartialToString(), ticket)


# ------------------------------------------------------------------ properties


@FAST
@example(body=b"")
@example(body=b"\x00")
@example(body=b"\xff" * 11)
@given(body=st.binary(max_size=2048))
def test_random_bytes_get_an_rpc_answer(daemon: LiveDaemon, body: bytes) -> None:
    post(daemon, body)


@FAST
@given(body=calls(), data=st.data())
def test_truncated_or_bit_flipped_envelopes_get_an_rpc_answer(
    daemon: LiveDaemon, body: bytes, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, max(0, len(body) - 1)), label="cut")
    post(daemon, body[:cut])
    if body:
        at = data.draw(st.integers(0, len(body) - 1), label="flip at")
        bit = data.draw(st.integers(0, 7), label="bit")
        flipped = bytearray(body)
        flipped[at] ^= 1 << bit
        post(daemon, bytes(flipped))


@FAST
@given(method=st.sampled_from(METHODS), inner=st.binary(max_size=512))
def test_a_valid_envelope_around_garbage_gets_an_rpc_answer(
    daemon: LiveDaemon, method: str, inner: bytes
) -> None:
    answer = post(daemon, envelope("taskqueue", method, inner))
    if rpc_taskqueue.METHODS[method].request is None:
        assert answer.HasField("application_error"), answer  # refused whatever the request
    elif answer.HasField("rpc_error"):
        assert answer.rpc_error.code == RpcCode.PARSE_ERROR, answer


@FAST
@given(body=calls())
def test_hostile_field_values_in_every_method_get_an_answer_not_a_crash(
    seeded: LiveDaemon, body: bytes
) -> None:
    answer = post(seeded, body)
    if answer.HasField("rpc_error"):  # only an incomplete request may miss the service
        assert answer.rpc_error.code == RpcCode.PARSE_ERROR, answer
        assert "lacks the required field" in answer.rpc_error.detail, answer


@FAST
@example(service="taskqueue", method="Bogus")
@example(service="datastore_v3", method="Get")
@example(service="", method="")
@example(service="taskqueue", method="add")  # methods are case-sensitive
@given(
    service=st.one_of(st.just("taskqueue"), _text),
    method=st.one_of(st.sampled_from(METHODS), _text),
)
def test_unknown_services_and_methods_are_call_not_found(
    daemon: LiveDaemon, service: str, method: str
) -> None:
    answer = post(daemon, envelope(service, method, b""))
    if service == "taskqueue" and method in rpc_taskqueue.METHODS:
        assert rpc_error(answer) in (None, RpcCode.PARSE_ERROR), answer
    else:
        assert rpc_error(answer) == RpcCode.CALL_NOT_FOUND, answer
        assert service in answer.rpc_error.detail


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


_HEAD = _field_bytes(2, b"taskqueue") + _field_bytes(3, b"BulkAdd")
_MALFORMED: dict[str, bytes] = {
    # the request field declares 2 GiB and holds 3 bytes
    "declared 2 GiB": _HEAD + _varint(4 << 3 | 2) + _varint(2**31 - 1) + b"abc",
    "declared 2**63": _HEAD + _varint(4 << 3 | 2) + _varint(2**63 - 1) + b"abc",
    "declared 2**64 - 1": _HEAD + _varint(4 << 3 | 2) + _varint(2**64 - 1) + b"abc",
    "overlong varint": _HEAD + b"\x22" + b"\xff" * 10 + b"\x01",
    "unterminated varint": _HEAD + b"\x22" + b"\xff" * 5,
    "groups nested 100000 deep": _HEAD + _field_bytes(4, b"") + b"\x7b" * 100_000,
    "end group without start": _HEAD + _field_bytes(4, b"") + b"\x7c",
    "wire type 7": _HEAD + _field_bytes(4, b"") + _varint(9 << 3 | 7),
    "field number 0": _HEAD + _field_bytes(4, b"") + b"\x00\x00",
    "inner declared 2 GiB": _HEAD + _field_bytes(4, b"\x0a" + _varint(2**31 - 1) + b"x"),
    "inner nested 100000 deep": _HEAD + _field_bytes(4, b"\x0b" * 100_000),
}


@pytest.mark.parametrize("body", list(_MALFORMED.values()), ids=list(_MALFORMED))
def test_lengths_and_nesting_beyond_reason_are_parse_errors(
    daemon: LiveDaemon, body: bytes
) -> None:
    answer = post(daemon, body)
    assert rpc_error(answer) == RpcCode.PARSE_ERROR, answer


def test_a_service_name_that_is_not_utf8_is_call_not_found(daemon: LiveDaemon) -> None:
    """protobuf hands a proto2 string that is not UTF-8 over as bytes: still no such service."""
    body = _field_bytes(2, b"\xff\xfe") + _field_bytes(3, b"BulkAdd") + _field_bytes(4, b"")
    assert rpc_error(post(daemon, body)) == RpcCode.CALL_NOT_FOUND


def test_a_ticket_that_is_not_utf8_is_ignored_without_tokens(daemon: LiveDaemon) -> None:
    answer = post(daemon, _HEAD + _field_bytes(4, b"") + _field_bytes(5, b"\xc3\x28"))
    assert answer.HasField("application_error"), answer  # an empty BulkAdd, judged as such
    assert answer.application_error.code == ErrorCode.INVALID_REQUEST


def _bulk_add(count: int) -> bytes:
    request = pb.TaskQueueBulkAddRequest()
    for i in range(count):
        request.add_request.add(
            queue_name=b"push-a", task_name=f"bulk-{i}".encode(), eta_usec=0, url=b"/x"
        )
    return request.SerializeToString()


def _many(cls: type[pb_message.Message], field: str, count: int, **kw: Any) -> bytes:
    request = cls(**kw)
    getattr(request, field).extend(f"n-{i}".encode() for i in range(count))
    return request.SerializePartialToString()


_HUGE_REPEATS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "BulkAdd of 20000 tasks": ("BulkAdd", lambda: _bulk_add(20_000)),
    "Delete of 100000 names": (
        "Delete",
        lambda: _many(pb.TaskQueueDeleteRequest, "task_name", 100_000, queue_name=b"pull-a"),
    ),
    "FetchQueueStats of 100000 queues": (
        "FetchQueueStats",
        lambda: _many(pb.TaskQueueFetchQueueStatsRequest, "queue_name", 100_000),
    ),
    "FetchQueues of 2**31 - 1 rows": (
        "FetchQueues",
        lambda: pb.TaskQueueFetchQueuesRequest(max_rows=2**31 - 1).SerializeToString(),
    ),
    "QueryTasks of 2**31 - 1 rows": (
        "QueryTasks",
        lambda: pb.TaskQueueQueryTasksRequest(
            queue_name=b"pull-a", max_rows=2**31 - 1
        ).SerializeToString(),
    ),
    "QueryAndOwnTasks of 2**63 - 1 tasks": (
        "QueryAndOwnTasks",
        lambda: pb.TaskQueueQueryAndOwnTasksRequest(
            queue_name=b"pull-a", lease_seconds=60, max_tasks=2**63 - 1
        ).SerializeToString(),
    ),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", list(_HUGE_REPEATS), ids=list(_HUGE_REPEATS))
def test_huge_repeated_fields_and_counts_get_an_answer(seeded: LiveDaemon, case: str) -> None:
    method, build = _HUGE_REPEATS[case]
    answer = post(seeded, envelope("taskqueue", method, build()))
    assert rpc_error(answer) is None, answer


@pytest.mark.parametrize("verb", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_http_methods_get_an_rpc_answer(daemon: LiveDaemon, verb: str) -> None:
    answer = post(daemon, _HEAD + _field_bytes(4, b""), method=verb)
    assert rpc_error(answer) == RpcCode.CALL_NOT_FOUND, answer


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_32_mib_is_request_too_large_before_it_is_all_sent(
    daemon: LiveDaemon, chunked: bool
) -> None:
    upload = _upload(
        daemon, PATH, chunked=chunked, total=HUGE, content_type="application/octet-stream"
    )
    assert upload.status == 200, upload.head
    answer = remote.Response()
    answer.ParseFromString(upload.body)
    assert rpc_error(answer) == RpcCode.REQUEST_TOO_LARGE, answer
    assert upload.sent <= LIMIT + 8 * MIB, upload.sent


def test_the_daemon_survived_the_garbage(daemon: LiveDaemon) -> None:
    """Runs last (file order): still up, healthy, nothing logged as broken."""
    assert daemon.alive()
    assert daemon.call("GET", "/healthz") == (200, {"status": "ok"})
    assert daemon.broken_lines() == []
    print(f"\nrpc_http: {sum(SEEN.values())} answers; {dict(sorted(SEEN.items()))}")
