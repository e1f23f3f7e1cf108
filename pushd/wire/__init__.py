"""The one JSON codec of pushd: request bodies in, tasks, dead letters and queues out.

Bodies are parsed with orjson and checked field by field into :class:`tasks.TaskRequest`
objects; the rules App Engine applies to a task's *values* stay in :mod:`pushd.tasks`. What this
module refuses is what JSON cannot say the way ``taskqueue.Task(...)`` expects it: unknown fields
(named in the message), wrong JSON types, both ``payload`` and ``payload_base64``, malformed
base64, RFC 3339 or duration text, and retry values outside App Engine's protocol-buffer ranges
(``int32`` for ``task_retry_limit`` and ``max_doublings``, ``int64`` seconds for
``task_age_limit``). Every refusal is a :mod:`pushd.errors` class, whatever the input.

Times go out twice: as epoch seconds (a float, not always exact to the microsecond) and as
integer microseconds (``*_us``, exact). Binary values go out as standard base64 with padding;
both alphabets and missing padding are accepted on the way in (SPEC 10 Q11).
"""

from __future__ import annotations

from pushd.wire.decode import (
    RETRY_FIELDS,
    TASK_FIELDS,
    decode_add,
    decode_task,
    parse_age_limit_s,
)
from pushd.wire.encode import (
    encode_add_result,
    encode_dead,
    encode_error,
    encode_last_attempt,
    encode_queue,
    encode_retry,
    encode_task,
    result_name,
)
from pushd.wire.pull import (
    LEASE_FIELDS,
    MAX_NAMES_PER_DELETE,
    LeaseRequest,
    check_delete_names,
    decode_delete,
    decode_lease,
    decode_modify_lease,
)
from pushd.wire.requests import TaskRequestJSON, decode_leased, encode_request, query_params
from pushd.wire.shapes import (
    AddResultJSON,
    DeadTaskJSON,
    ErrorBodyJSON,
    ErrorJSON,
    LastAttemptJSON,
    QueueJSON,
    QueueSettings,
    QueueStatsJSON,
    RetryOptionsJSON,
    TaskJSON,
)
from pushd.wire.values import MAX_REQUEST_BYTES, b64decode, b64encode, dumps, loads, parse_rfc3339

__all__ = [
    "LEASE_FIELDS",
    "MAX_NAMES_PER_DELETE",
    "MAX_REQUEST_BYTES",
    "RETRY_FIELDS",
    "TASK_FIELDS",
    "AddResultJSON",
    "DeadTaskJSON",
    "ErrorBodyJSON",
    "ErrorJSON",
    "LastAttemptJSON",
    "LeaseRequest",
    "QueueJSON",
    "QueueSettings",
    "QueueStatsJSON",
    "RetryOptionsJSON",
    "TaskJSON",
    "TaskRequestJSON",
    "b64decode",
    "b64encode",
    "check_delete_names",
    "decode_add",
    "decode_delete",
    "decode_lease",
    "decode_leased",
    "decode_modify_lease",
    "decode_task",
    "dumps",
    "encode_add_result",
    "encode_dead",
    "encode_error",
    "encode_last_attempt",
    "encode_queue",
    "encode_request",
    "encode_retry",
    "encode_task",
    "loads",
    "parse_age_limit_s",
    "parse_rfc3339",
    "query_params",
    "result_name",
]
