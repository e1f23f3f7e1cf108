"""Runs under the oracle venv: the App Engine SDK's own descriptors and encodings of the messages
pushd re-declares in ``pushd/proto/*.proto``.

stdin: ``{}`` (read, ignored)
stdout: ``{"files": {stem: FILE}, "samples": {label: SAMPLE}}`` where ``stem`` is the name of
pushd's .proto file the SDK module corresponds to (``remote_api``, ``taskqueue_service``), FILE
is :func:`describe_file` of the SDK module's file descriptor and SAMPLE is
``{"message": name, "base64": serialized bytes, "opaque": [{"path": [...], "base64": ...}],
"text": text format}`` of a fully populated SDK message (:func:`samples`); ``opaque`` lists the
message-typed fields pushd declares as bytes, serialized, and the text format is taken with
them cleared.

:func:`describe_file` uses nothing but the protobuf descriptor API, so
``tests/oracle/test_proto_wire.py`` imports it to describe pushd's generated modules in the same
shape. The SDK is imported only in :func:`main`.
"""

from __future__ import annotations

import base64
import json
import sys

# protobuf's FieldDescriptor.TYPE_* numbers (descriptor.proto's FieldDescriptorProto.Type), named
# as in a .proto file.
_TYPE_NAMES = {
    1: "double",
    2: "float",
    3: "int64",
    4: "uint64",
    5: "int32",
    6: "fixed64",
    7: "fixed32",
    8: "bool",
    9: "string",
    10: "group",
    11: "message",
    12: "bytes",
    13: "uint32",
    14: "enum",
    15: "sfixed32",
    16: "sfixed64",
    17: "sint32",
    18: "sint64",
}


def _path(descriptor, file):
    """``descriptor``'s name relative to ``file``'s package (``TaskQueueBulkAddResponse.TaskResult``);
    a type of another file keeps its full name, with a leading dot."""
    if descriptor.file.name != file.name:
        return "." + descriptor.full_name
    package = file.package
    return descriptor.full_name[len(package) + 1 :] if package else descriptor.full_name


def _json_value(value):
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    return value


def _describe_field(field, file):
    entry = {
        "number": field.number,
        "name": field.name,
        "type": _TYPE_NAMES[field.type],
        "label": (
            "repeated" if field.is_repeated else "required" if field.is_required else "optional"
        ),
        "packed": bool(field.is_packed),
    }
    if field.message_type is not None:
        entry["type_name"] = _path(field.message_type, file)
    elif field.enum_type is not None:
        entry["type_name"] = _path(field.enum_type, file)
    if not field.is_repeated and field.message_type is None:
        # The default a reader sees for an absent field, explicit or not (``[default = 0]`` and
        # no default are the same thing); for an enum without an explicit one, its first value.
        entry["default"] = _json_value(field.default_value)
    return entry


def _describe_enum(enum):
    return {value.name: value.number for value in enum.values}


def _walk(message, file, messages, enums):
    path = _path(message, file)
    messages[path] = {
        "full_name": message.full_name,
        "message_set_wire_format": bool(message.GetOptions().message_set_wire_format),
        "fields": [_describe_field(field, file) for field in message.fields],
    }
    for enum in message.enum_types:
        enums[_path(enum, file)] = _describe_enum(enum)
    for nested in message.nested_types:
        _walk(nested, file, messages, enums)


def describe_file(file):
    """Every message (nested ones and groups too, keyed by their path in the package) and every
    enum of the file descriptor ``file``, as JSON-ready dicts."""
    messages = {}
    enums = {}
    for enum in file.enum_types_by_name.values():
        enums[_path(enum, file)] = _describe_enum(enum)
    for message in file.message_types_by_name.values():
        _walk(message, file, messages, enums)
    return {"name": file.name, "package": file.package, "messages": messages, "enums": enums}


def samples():
    """Fully populated SDK messages: label -> (message, paths of the message-typed fields in it
    that pushd declares as bytes)."""
    from google.appengine.api.taskqueue import taskqueue_service_bytes_pb2 as pb
    from google.appengine.ext.remote_api import remote_api_bytes_pb2 as remote_api

    bulk = pb.TaskQueueBulkAddRequest()
    push = bulk.add_request.add()
    push.queue_name = b"default"
    push.task_name = b"push-1"
    push.eta_usec = 1_700_000_000_123_456
    push.method = pb.TaskQueueAddRequest.PUT
    push.url = b"/work?x=1"
    for key, value in [(b"Content-Type", b"application/json"), (b"X-Custom", b"\xff\x00v")]:
        header = push.header.add()
        header.key = key
        header.value = value
    push.body = b'{"n": 1}\x00\xff'
    push.transaction.handle = 0xFEDCBA9876543210
    push.transaction.app = "s~app"
    push.datastore_transaction = b"\x01cloud-datastore-tx"
    push.app_id = b"s~app"
    push.crontimetable.schedule = b"every 1 hours"
    push.crontimetable.timezone = b"Europe/Zurich"
    push.description = b"described"
    push.payload.SetInParent()  # an empty TaskPayload (a message set pushd does not read)
    push.retry_parameters.retry_limit = 7
    push.retry_parameters.age_limit_sec = 86_400
    push.retry_parameters.min_backoff_sec = 0.5
    push.retry_parameters.max_backoff_sec = 120.0
    push.retry_parameters.max_doublings = 3
    push.mode = pb.TaskQueueMode.PUSH
    push.cron_retry_parameters.min_backoff_sec = 2.0
    push.dispatch_deadline_usec = 600_000_000
    pull = bulk.add_request.add()
    pull.queue_name = b"pull-queue"
    pull.task_name = b""
    pull.eta_usec = 1_700_000_100_000_000
    pull.body = b"payload"
    pull.mode = pb.TaskQueueMode.PULL
    pull.tag = b"tag-\xe2\x82\xac"
    pull.retry_parameters.retry_limit = 0

    own = pb.TaskQueueQueryAndOwnTasksResponse()
    for i, tag in enumerate([b"red", None]):
        task = own.task.add()
        task.task_name = b"leased-%d" % i
        task.eta_usec = 1_700_000_200_000_000 + i
        task.retry_count = 2 * i + 1
        task.body = b"body-%d" % i
        if tag is not None:
            task.tag = tag

    stats = pb.TaskQueueFetchQueueStatsResponse()
    busy = stats.queuestats.add()
    busy.num_tasks = 42
    busy.oldest_eta_usec = 1_700_000_300_000_000
    busy.scanner_info.executed_last_minute = 5
    busy.scanner_info.executed_last_hour = 300
    busy.scanner_info.sampling_duration_seconds = 59.5
    busy.scanner_info.requests_in_flight = 3
    busy.scanner_info.enforced_rate = 4.25
    empty = stats.queuestats.add()
    empty.num_tasks = 0
    empty.oldest_eta_usec = -1

    queues = pb.TaskQueueFetchQueuesResponse()
    queue = queues.queue.add()
    queue.queue_name = b"pull-queue"
    queue.bucket_refill_per_second = 5.0
    queue.bucket_capacity = 10.0
    queue.user_specified_rate = "5/s"
    queue.paused = True
    queue.retry_parameters.retry_limit = 3
    queue.max_concurrent_requests = 8
    queue.mode = pb.TaskQueueMode.PULL
    queue.acl.user_email.append(b"a@example.com")
    queue.acl.writer_email.append(b"w@example.com")
    override = queue.header_override.add()
    override.key = b"Host"
    override.value = b"example.com"
    queue.creator_name = "pushd"

    query = pb.TaskQueueQueryTasksResponse()
    task = query.task.add()
    task.task_name = b"t-1"
    task.eta_usec = 1_700_000_400_000_000
    task.url = b"/run"
    task.method = pb.TaskQueueQueryTasksResponse.Task.DELETE
    task.retry_count = 4
    header = task.header.add()
    header.key = b"X-A"
    header.value = b"1"
    task.body_size = 3
    task.body = b"abc"
    task.creation_time_usec = 1_700_000_000_000_000
    task.crontimetable.schedule = b"every 5 minutes"
    task.crontimetable.timezone = b"UTC"
    task.runlog.dispatched_usec = 1_700_000_410_000_000
    task.runlog.lag_usec = 10
    task.runlog.elapsed_usec = 20
    task.runlog.response_code = 503
    task.runlog.retry_reason = "HTTP 503"
    task.description = b"d"
    task.retry_parameters.max_doublings = 2
    task.first_try_usec = 1_700_000_401_000_000
    task.tag = b"t"
    task.execution_count = 5
    task.dispatch_deadline_usec = 30_000_000

    response = remote_api.Response()
    response.application_error.code = pb.TaskQueueServiceError.UNKNOWN_QUEUE
    response.application_error.detail = "no such queue: nope"
    request = remote_api.Request()
    request.service_name = "taskqueue"
    request.method = "BulkAdd"
    request.request = bulk.SerializeToString()
    request.request_id = "ticket-1"
    request.trace_context = b"\x0a\x02ab"

    return {
        "TaskQueueBulkAddRequest": (
            bulk,
            [("add_request", 0, "transaction"), ("add_request", 0, "payload")],
        ),
        "TaskQueueQueryAndOwnTasksResponse": (own, []),
        "TaskQueueFetchQueueStatsResponse": (stats, []),
        "TaskQueueFetchQueuesResponse": (queues, []),
        "TaskQueueQueryTasksResponse": (query, []),
        "Response": (response, []),
        "Request": (request, []),
    }


def _pop_opaque(message, path):
    """Serialize and clear the SDK message at ``path`` (field names and repeated indices), which
    pushd declares as bytes; its text format would differ from pushd's bytes literal."""
    *parents, name = path
    holder = message
    for step in parents:
        holder = holder[step] if isinstance(step, int) else getattr(holder, step)
    data = getattr(holder, name).SerializeToString()
    holder.ClearField(name)
    return data


def main():
    from google.appengine.api.taskqueue import taskqueue_service_bytes_pb2 as pb
    from google.appengine.ext.remote_api import remote_api_bytes_pb2 as remote_api
    from google.protobuf import text_format

    json.load(sys.stdin)
    files = {
        "remote_api": describe_file(remote_api.DESCRIPTOR),
        "taskqueue_service": describe_file(pb.DESCRIPTOR),
    }
    out = {}
    for label, (message, opaque_paths) in samples().items():
        wire = message.SerializeToString()
        opaque = [
            {"path": list(path), "base64": _b64(_pop_opaque(message, path))}
            for path in opaque_paths
        ]
        out[label] = {
            "message": message.DESCRIPTOR.name,
            "base64": _b64(wire),
            "opaque": opaque,
            "text": text_format.MessageToString(message),
        }
    json.dump({"files": files, "samples": out}, sys.stdout)


def _b64(data):
    return base64.b64encode(data).decode("ascii")


if __name__ == "__main__":
    main()
