"""pushd's own .proto files speak the App Engine SDK's wire format (SPEC: /rpc_http).

``pushd/proto/*.proto`` re-declare the SDK's ``remote_api_bytes`` and ``apphosting_bytes``
(taskqueue_service_bytes) messages. :mod:`tests.oracle.proto_descriptor_oracle` describes the
SDK's descriptors in the oracle venv; the same function describes pushd's generated modules here,
and the two are compared:

* names map 1:1: every message pushd declares (nested groups too, by path such as
  ``TaskQueueBulkAddResponse.TaskResult``) is the SDK message of the same path in the
  corresponding file (``pushd.appengine.TaskQueueBulkAddRequest`` is
  ``apphosting_bytes.TaskQueueBulkAddRequest``, ``pushd.appengine.Request`` is
  ``google.appengine.ext.remote_api_bytes.Request``);
* every field pushd declares exists in the SDK's message with the same number, name, label,
  packing, default (the value a reader sees when the field is absent) and a wire-compatible type:
  equal, or pushd ``bytes`` for an SDK ``message`` (both length-delimited); a group only for a
  group, a message or enum field only for the SDK type of the same path;
* every field the SDK declares on a message pushd declares is declared by pushd, unless listed
  in :data:`OMITTED_SDK_FIELDS` (so nothing the SDK's client sends is silently dropped);
* every enum pushd declares exists in the SDK with pushd's values a subset (equal numbers), and
  holds all of the SDK's values but those :data:`OMITTED_ENUM_VALUES` leaves out on purpose.

Then fully populated messages serialized by the SDK parse with pushd's classes without unknown
fields, re-serialize to the same bytes, print the same text format and hold the values set.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from google.protobuf import text_format
from google.protobuf.unknown_fields import UnknownFieldSet

from pushd.proto import remote_api_pb2, taskqueue_service_pb2
from tests.oracle.proto_descriptor_oracle import describe_file
from tests.oracle.runner import ROOT, run_oracle

if TYPE_CHECKING:
    from google.protobuf.message import Message

pytestmark = pytest.mark.oracle

#: stem of pushd's .proto file -> (pushd's generated module, the SDK's package for it).
FILES: dict[str, tuple[ModuleType, str]] = {
    "remote_api": (remote_api_pb2, "google.appengine.ext.remote_api_bytes"),
    "taskqueue_service": (taskqueue_service_pb2, "apphosting_bytes"),
}

#: (file stem, message path, field number) -> why pushd leaves out this SDK field on purpose.
#: Empty: pushd declares every field of every message it declares.
OMITTED_SDK_FIELDS: dict[tuple[str, str, int], str] = {}

#: (file stem, enum path) -> (which SDK values pushd need not declare, why).
OMITTED_ENUM_VALUES: dict[tuple[str, str], tuple[Callable[[str, int], bool], str]] = {
    ("taskqueue_service", "TaskQueueServiceError.ErrorCode"): (
        lambda name, number: name.startswith("DATASTORE_") and number > 10000,
        "DATASTORE_ERROR (10000) + a datastore error code: pushd has no datastore and answers "
        "at most DATASTORE_ERROR itself; the SDK only ever reads these codes, never sends them",
    ),
}


@cache
def _oracle() -> dict[str, Any]:
    answer: dict[str, Any] = run_oracle("proto_descriptor_oracle.py", {})
    return answer


def _pushd(stem: str) -> dict[str, Any]:
    described: dict[str, Any] = describe_file(FILES[stem][0].DESCRIPTOR)
    return described


def test_every_proto_file_has_an_sdk_counterpart() -> None:
    stems = {path.stem for path in (ROOT / "pushd" / "proto").glob("*.proto")}
    assert stems == set(FILES), "map each pushd/proto/*.proto to its SDK module in FILES"
    for stem, (module, package) in FILES.items():
        assert module.DESCRIPTOR.name == f"pushd/proto/{stem}.proto"
        assert module.DESCRIPTOR.package == "pushd.appengine"
        assert _oracle()["files"][stem]["package"] == package


def _field_problems(where: str, ours: dict[str, Any], sdk: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("name", "label", "packed"):
        if ours[key] != sdk[key]:
            problems.append(f"{where}: {key} {ours[key]!r}, SDK {sdk[key]!r}")
    if ours["type"] == "bytes" and sdk["type"] == "message":
        return problems  # length-delimited either way; pushd keeps the message's bytes
    if ours["type"] != sdk["type"] or ours.get("type_name") != sdk.get("type_name"):
        problems.append(
            f"{where}: type {ours['type']} {ours.get('type_name', '')}, "
            f"SDK {sdk['type']} {sdk.get('type_name', '')}"
        )
    elif ours.get("default") != sdk.get("default"):
        problems.append(f"{where}: default {ours.get('default')!r}, SDK {sdk.get('default')!r}")
    return problems


@pytest.mark.parametrize("stem", sorted(FILES))
def test_messages_and_fields_match_the_sdk(stem: str) -> None:
    ours = _pushd(stem)["messages"]
    sdk = _oracle()["files"][stem]["messages"]
    problems: list[str] = []
    omitted_seen = set()
    for path, message in ours.items():
        where = f"{stem}: {path}"
        if path not in sdk:
            problems.append(f"{where}: no such message in the SDK")
            continue
        if message["message_set_wire_format"] != sdk[path]["message_set_wire_format"]:
            problems.append(f"{where}: message_set_wire_format differs")
        our_fields = {field["number"]: field for field in message["fields"]}
        sdk_fields = {field["number"]: field for field in sdk[path]["fields"]}
        for number, field in sorted(our_fields.items()):
            if number not in sdk_fields:
                problems.append(f"{where}.{field['name']} = {number}: not in the SDK")
            else:
                problems += _field_problems(
                    f"{where}.{field['name']} = {number}", field, sdk_fields[number]
                )
        for number, field in sorted(sdk_fields.items()):
            if number in our_fields:
                continue
            if (stem, path, number) in OMITTED_SDK_FIELDS:
                omitted_seen.add((stem, path, number))
                continue
            problems.append(
                f"{where}: SDK field {field['label']} {field['type']} {field['name']} = {number} "
                "is not declared (its values would land in unknown fields)"
            )
    stale = {key for key in OMITTED_SDK_FIELDS if key[0] == stem} - omitted_seen
    problems += [
        f"OMITTED_SDK_FIELDS lists {key}, which pushd declares or the SDK lacks" for key in stale
    ]
    assert not problems, "\n".join(problems)


def test_every_sdk_message_pushd_refers_to_is_declared() -> None:
    """A message field pushd types (rather than keeping as bytes) names a message pushd declares
    at the same path, so no SDK message is half-declared."""
    for stem in FILES:
        ours = _pushd(stem)
        for path, message in ours["messages"].items():
            for field in message["fields"]:
                if field["type"] in ("message", "group"):
                    assert field["type_name"] in ours["messages"], (stem, path, field)
                elif field["type"] == "enum":
                    assert field["type_name"] in ours["enums"], (stem, path, field)


@pytest.mark.parametrize("stem", sorted(FILES))
def test_enums_match_the_sdk(stem: str) -> None:
    ours = _pushd(stem)["enums"]
    sdk = _oracle()["files"][stem]["enums"]
    problems: list[str] = []
    for path, values in ours.items():
        if path not in sdk:
            problems.append(f"{stem}: enum {path} not in the SDK")
            continue
        for name, number in values.items():
            if sdk[path].get(name) != number:
                problems.append(f"{stem}: {path}.{name} = {number}, SDK {sdk[path].get(name)}")
        omitted = OMITTED_ENUM_VALUES.get((stem, path), (lambda name, number: False, ""))[0]
        for name, number in sdk[path].items():
            if name not in values and not omitted(name, number):
                problems.append(f"{stem}: SDK value {path}.{name} = {number} not declared")
    assert not problems, "\n".join(problems)
    for (omitted_stem, path), (omitted, _) in OMITTED_ENUM_VALUES.items():
        if omitted_stem == stem:
            left_out = {name for name, number in sdk[path].items() if omitted(name, number)}
            assert left_out - set(ours[path]), f"OMITTED_ENUM_VALUES: pushd declares all of {path}"


# ---------------------------------------------------------------- SDK bytes through pushd


def _assert_no_unknown_fields(message: Message, where: str) -> None:
    assert len(UnknownFieldSet(message)) == 0, f"{where}: fields pushd does not declare"
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        items = value if field.is_repeated else [value]
        for i, item in enumerate(items):
            _assert_no_unknown_fields(item, f"{where}.{field.name}[{i}]")


def _resolve(message: Message, path: list[str | int]) -> tuple[Message, str]:
    holder: Any = message
    for step in path[:-1]:
        holder = holder[step] if isinstance(step, int) else getattr(holder, step)
    name = path[-1]
    assert isinstance(name, str)
    return holder, name


def _parsed(label: str) -> Message:
    """The SDK's sample ``label`` parsed by pushd's class of the same name; checks the bytes
    round-trip and the text format (with the fields pushd keeps as bytes checked and cleared)."""
    sample = _oracle()["samples"][label]
    cls = getattr(taskqueue_service_pb2, sample["message"], None) or getattr(
        remote_api_pb2, sample["message"]
    )
    wire = base64.b64decode(sample["base64"])
    message: Message = cls.FromString(wire)
    _assert_no_unknown_fields(message, label)
    assert message.SerializeToString() == wire
    assert message.SerializeToString(deterministic=True) == wire
    text_copy = cls.FromString(wire)
    for opaque in sample["opaque"]:
        holder, name = _resolve(text_copy, opaque["path"])
        assert holder.HasField(name)
        assert getattr(holder, name) == base64.b64decode(opaque["base64"])
        holder.ClearField(name)
    assert text_format.MessageToString(text_copy) == sample["text"]
    return message


def test_bulk_add_request_from_the_sdk() -> None:
    pb = taskqueue_service_pb2
    bulk = _parsed("TaskQueueBulkAddRequest")
    assert isinstance(bulk, pb.TaskQueueBulkAddRequest)
    push, pull = bulk.add_request
    assert push.queue_name == b"default"
    assert push.task_name == b"push-1"
    assert push.eta_usec == 1_700_000_000_123_456
    assert push.method == pb.TaskQueueAddRequest.PUT
    assert push.url == b"/work?x=1"
    assert [(h.key, h.value) for h in push.header] == [
        (b"Content-Type", b"application/json"),
        (b"X-Custom", b"\xff\x00v"),
    ]
    assert push.body == b'{"n": 1}\x00\xff'
    assert push.HasField("transaction")
    assert push.datastore_transaction == b"\x01cloud-datastore-tx"
    assert push.app_id == b"s~app"
    assert (push.crontimetable.schedule, push.crontimetable.timezone) == (
        b"every 1 hours",
        b"Europe/Zurich",
    )
    assert push.description == b"described"
    assert push.HasField("payload")
    assert push.payload == b""
    retry = push.retry_parameters
    assert (retry.retry_limit, retry.age_limit_sec) == (7, 86_400)
    assert (retry.min_backoff_sec, retry.max_backoff_sec, retry.max_doublings) == (0.5, 120.0, 3)
    assert push.HasField("mode")
    assert push.mode == pb.TaskQueueMode.PUSH
    assert push.cron_retry_parameters.min_backoff_sec == 2.0
    assert push.dispatch_deadline_usec == 600_000_000
    assert not push.HasField("tag")

    assert pull.queue_name == b"pull-queue"
    assert pull.HasField("task_name")
    assert pull.task_name == b""
    assert pull.eta_usec == 1_700_000_100_000_000
    assert pull.body == b"payload"
    assert pull.mode == pb.TaskQueueMode.PULL
    assert pull.tag == "tag-€".encode()
    assert pull.retry_parameters.HasField("retry_limit")
    assert pull.retry_parameters.retry_limit == 0
    assert not pull.retry_parameters.HasField("min_backoff_sec")
    assert pull.retry_parameters.min_backoff_sec == 0.1  # the declared default
    assert not pull.HasField("method")
    assert pull.method == pb.TaskQueueAddRequest.POST
    assert not pull.header
    assert not pull.HasField("dispatch_deadline_usec")


def test_query_and_own_tasks_response_from_the_sdk() -> None:
    own = _parsed("TaskQueueQueryAndOwnTasksResponse")
    assert [
        (t.task_name, t.eta_usec, t.retry_count, t.body, t.HasField("tag"), t.tag) for t in own.task
    ] == [
        (b"leased-0", 1_700_000_200_000_000, 1, b"body-0", True, b"red"),
        (b"leased-1", 1_700_000_200_000_001, 3, b"body-1", False, b""),
    ]


def test_fetch_queue_stats_response_from_the_sdk() -> None:
    stats = _parsed("TaskQueueFetchQueueStatsResponse")
    busy, empty = stats.queuestats
    assert (busy.num_tasks, busy.oldest_eta_usec) == (42, 1_700_000_300_000_000)
    info = busy.scanner_info
    assert (info.executed_last_minute, info.executed_last_hour) == (5, 300)
    assert info.sampling_duration_seconds == 59.5
    assert (info.requests_in_flight, info.enforced_rate) == (3, 4.25)
    assert (empty.num_tasks, empty.oldest_eta_usec) == (0, -1)
    assert not empty.HasField("scanner_info")


def test_fetch_queues_response_from_the_sdk() -> None:
    pb = taskqueue_service_pb2
    (queue,) = _parsed("TaskQueueFetchQueuesResponse").queue
    assert queue.queue_name == b"pull-queue"
    assert (queue.bucket_refill_per_second, queue.bucket_capacity) == (5.0, 10.0)
    assert queue.user_specified_rate == "5/s"
    assert queue.paused
    assert queue.retry_parameters.retry_limit == 3
    assert queue.max_concurrent_requests == 8
    assert queue.mode == pb.TaskQueueMode.PULL
    assert list(queue.acl.user_email) == [b"a@example.com"]
    assert list(queue.acl.writer_email) == [b"w@example.com"]
    assert [(h.key, h.value) for h in queue.header_override] == [(b"Host", b"example.com")]
    assert queue.creator_name == "pushd"


def test_query_tasks_response_from_the_sdk() -> None:
    pb = taskqueue_service_pb2
    (task,) = _parsed("TaskQueueQueryTasksResponse").task
    assert (task.task_name, task.eta_usec, task.url) == (b"t-1", 1_700_000_400_000_000, b"/run")
    assert task.method == pb.TaskQueueQueryTasksResponse.Task.DELETE
    assert task.retry_count == 4
    assert [(h.key, h.value) for h in task.header] == [(b"X-A", b"1")]
    assert (task.body_size, task.body) == (3, b"abc")
    assert task.creation_time_usec == 1_700_000_000_000_000
    assert task.crontimetable.schedule == b"every 5 minutes"
    assert task.crontimetable.timezone == b"UTC"
    log = task.runlog
    assert (log.dispatched_usec, log.lag_usec, log.elapsed_usec) == (1_700_000_410_000_000, 10, 20)
    assert (log.response_code, log.retry_reason) == (503, "HTTP 503")
    assert task.description == b"d"
    assert task.retry_parameters.max_doublings == 2
    assert task.first_try_usec == 1_700_000_401_000_000
    assert task.tag == b"t"
    assert task.execution_count == 5
    assert task.dispatch_deadline_usec == 30_000_000


def test_remote_api_envelope_from_the_sdk() -> None:
    response = _parsed("Response")
    assert isinstance(response, remote_api_pb2.Response)
    assert response.HasField("application_error")
    assert (
        response.application_error.code == taskqueue_service_pb2.TaskQueueServiceError.UNKNOWN_QUEUE
    )
    assert response.application_error.detail == "no such queue: nope"
    for name in ("response", "exception", "java_exception", "rpc_error"):
        assert not response.HasField(name)

    request = _parsed("Request")
    assert isinstance(request, remote_api_pb2.Request)
    assert (request.service_name, request.method) == ("taskqueue", "BulkAdd")
    assert (request.request_id, request.trace_context) == ("ticket-1", b"\x0a\x02ab")
    inner = base64.b64decode(_oracle()["samples"]["TaskQueueBulkAddRequest"]["base64"])
    assert request.request == inner
