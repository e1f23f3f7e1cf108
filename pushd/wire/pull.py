"""Pull-queue and delete requests in: a lease, a lease change, the names to delete."""

from __future__ import annotations

import dataclasses

from pushd import errors, tasks
from pushd.wire.values import b64decode, check_fields, kind


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRequest:
    """A lease of pull tasks (SPEC 6), checked as App Engine's client checks it."""

    lease_us: int
    max_tasks: int
    group_by_tag: bool = False
    tag: bytes | None = None


LEASE_FIELDS = ("lease_seconds", "max_tasks", "group_by_tag", "tag", "tag_base64")


def decode_lease(body: object) -> LeaseRequest:
    """``{"lease_seconds": 60, "max_tasks": 10, "group_by_tag": false, "tag": null}``.

    A binary tag may come as ``tag_base64`` instead of ``tag``.
    """
    if not isinstance(body, dict):
        raise errors.Error(f"a lease request must be a JSON object; got {kind(body)}")
    check_fields(body, LEASE_FIELDS, "the lease request", errors.Error)
    group = body.get("group_by_tag", False)
    if not isinstance(group, bool):
        raise errors.Error(f"group_by_tag must be true or false; got {kind(group)}")
    if "lease_seconds" not in body:
        raise errors.InvalidLeaseTimeError("lease_seconds is required")
    if "max_tasks" not in body:
        raise errors.InvalidMaxTasksError("max_tasks is required")
    tag: object = body.get("tag")
    if tag is not None and body.get("tag_base64") is not None:
        raise errors.Error("give tag or tag_base64, not both")
    if (encoded := body.get("tag_base64")) is not None:
        if not isinstance(encoded, str):
            raise errors.InvalidTagError(f"tag_base64 must be a string; got {kind(encoded)}")
        tag = b64decode(encoded, "tag_base64")
    if tag is not None and not isinstance(tag, str | bytes):
        raise errors.InvalidTagError(f"tag must be a string; got {kind(tag)}")
    return LeaseRequest(
        lease_us=tasks.check_lease_seconds(body["lease_seconds"]),
        max_tasks=tasks.check_max_tasks(body["max_tasks"]),
        group_by_tag=group,
        tag=tasks.check_lease_tag(tag, group_by_tag=group),
    )


def decode_modify_lease(body: object) -> tuple[int, int]:
    """``{"eta_us": <the task's current ETA>, "lease_seconds": 30}`` -> (eta µs, lease µs)."""
    if not isinstance(body, dict):
        raise errors.Error(f"a lease change must be a JSON object; got {kind(body)}")
    check_fields(body, ("eta_us", "lease_seconds"), "the lease change", errors.Error)
    eta_us = body.get("eta_us")
    if not isinstance(eta_us, int) or isinstance(eta_us, bool):
        raise errors.Error(
            "eta_us (the task's current ETA in µs, as the lease answered it) is required"
        )
    if "lease_seconds" not in body:
        raise errors.InvalidLeaseTimeError("lease_seconds is required")
    return eta_us, tasks.check_lease_seconds(body["lease_seconds"])


#: Most names one delete request may carry.
MAX_NAMES_PER_DELETE = 1000


def decode_delete(body: object) -> list[str]:
    """``{"names": ["a", "b"]}``: task names, each valid, none repeated."""
    if not isinstance(body, dict):
        raise errors.Error(f"a delete request must be a JSON object; got {kind(body)}")
    check_fields(body, ("names",), "the delete request", errors.Error)
    names = body.get("names")
    if not isinstance(names, list) or not names:
        raise errors.Error("names must be a non-empty list of task names")
    return check_delete_names(names)


def check_delete_names(names: list[str]) -> list[str]:
    """Names to delete in one call: at most 1000, each valid, none repeated."""
    if len(names) > MAX_NAMES_PER_DELETE:
        raise errors.Error(
            f"one request deletes at most {MAX_NAMES_PER_DELETE} tasks; found {len(names)}"
        )
    seen: set[str] = set()
    for name in names:
        tasks.check_task_name(name)
        if name in seen:
            raise errors.DuplicateTaskNameError(f"task name {name!r} is given more than once")
        seen.add(name)
    return names
