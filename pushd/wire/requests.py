"""The client's side of the native API: a built task out as an add request's task object, and
a task a lease answered back in (both the JSON that :mod:`pushd.wire.decode` and
:func:`pushd.wire.encode.encode_task` read and write on the daemon's side)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypedDict

from pushd import encoding, errors, models
from pushd.wire.encode import encode_retry
from pushd.wire.values import b64decode, b64encode

if TYPE_CHECKING:
    from pushd.wire.shapes import RetryOptionsJSON


class TaskRequestJSON(TypedDict, total=False):
    """A task object of an add request as the client sends it: a built task's final values,
    times in exact µs (the daemon checks them again, into the same task)."""

    name: str
    method: str
    eta_us: int
    url: str
    headers: list[list[str]]
    params: dict[str, list[str]]
    payload_base64: str
    tag: str
    target: str
    dispatch_deadline_us: int
    retry_options: RetryOptionsJSON


def query_params(query: str) -> dict[str, list[str]] | None:
    """The params that encode back to exactly ``query``, or None if none do."""
    found: dict[str, list[str]] = {}
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        return None
    for key, value in pairs:
        found.setdefault(key, []).append(value)
    return found if encoding.encode_params(found) == query else None


def encode_request(built: models.Task, *, name: str | None, queue: str) -> TaskRequestJSON:
    """The add request's object for ``built`` (named ``name`` by its producer, if at all),
    added to ``queue``.

    A pull task's retry options are not sent, as App Engine's client never sends them: its
    queue's task_retry_limit limits its leases, as it did on App Engine.
    """
    out: TaskRequestJSON = {"method": built.method.value, "eta_us": built.eta_us}
    if name:
        out["name"] = name
    if built.payload or built.is_pull:
        out["payload_base64"] = b64encode(built.payload)
    if built.is_pull:
        if built.tag is not None:
            out["tag"] = _tag_text(built.tag)
        return out
    out["headers"] = [[k, v] for k, v in built.headers]
    _encode_url(out, built, queue)
    if built.target:
        out["target"] = built.target
    if built.dispatch_deadline_us is not None:
        out["dispatch_deadline_us"] = built.dispatch_deadline_us
    if built.retry_options is not None:
        out["retry_options"] = encode_retry(built.retry_options)
    return out


def _tag_text(tag: bytes) -> str:
    try:
        return tag.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidTagError("pushd carries tags as text; this tag is not UTF-8") from None


def _encode_url(out: TaskRequestJSON, built: models.Task, queue: str) -> None:
    """A URL of its own as it is; the queue's default URL as nothing, or as its query's params.

    A default-URL task with a query string (params of a GET, PUT, ...) sends the params so that
    the daemon builds the same URL under its queue's prefix; params that are not text cannot
    travel in JSON, so then the URL itself goes.
    """
    _, _, query = built.url.partition("?")
    if not built.on_queue_url:
        out["url"] = built.url
    elif query:
        params = query_params(query)
        if params is None:
            out["url"] = f"{models.DEFAULT_QUEUE_PATH}/{queue}?{query}"
        else:
            out["params"] = params


def decode_leased(found: object, queue: str) -> models.Task:
    """A task of a lease answer (``{"name", "eta_us", "retry_count", "payload_base64", "tag"
    or "tag_base64"}`` of :class:`TaskJSON`) as the pull task it is, on ``queue``.

    Its size is App Engine's client's: the payload and the (empty) namespace header it shows.
    """
    if not isinstance(found, Mapping):
        raise errors.InternalError(f"unexpected leased task {found!r:.200}")
    try:
        payload = b64decode(str(found.get("payload_base64") or ""), "payload_base64")
        tag: object = found.get("tag")
        if tag is None and found.get("tag_base64") is not None:
            tag = b64decode(str(found["tag_base64"]), "tag_base64")
        return models.Task(
            queue=queue,
            name=str(found["name"]),
            method=models.Method.PULL,
            url=f"{models.DEFAULT_QUEUE_PATH}/{queue}",
            on_queue_url=True,
            payload=payload,
            eta_us=int(found["eta_us"]),
            tag=str(tag).encode("utf-8") if not isinstance(tag, bytes | None) else tag,
            retry_count=int(found["retry_count"]),
            size=encoding.task_size(
                method=models.Method.PULL,
                payload=payload,
                relative_url="",
                headers=[(encoding.NAMESPACE_HEADER, "")],
            ),
        )
    except (KeyError, TypeError, ValueError):
        raise errors.InternalError(f"unexpected leased task {found!r:.200}") from None
