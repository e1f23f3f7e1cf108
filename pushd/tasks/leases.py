"""The values of a pull-queue lease (SPEC 6): its length, its size and its tag."""

from __future__ import annotations

from pushd import encoding, errors, models
from pushd.tasks.numbers import as_number, finite, seconds_to_us


def check_lease_seconds(lease_seconds: object) -> int:
    """SPEC 6: a lease of 0 to 604800 seconds (a float is fine) as µs.

    App Engine raises ``TypeError`` for a non-number; over the network that is
    :class:`errors.InvalidLeaseTimeError` too.
    """
    seconds = as_number(lease_seconds)
    if seconds is None or not finite(seconds):
        raise errors.InvalidLeaseTimeError(
            f"lease_seconds must be a number of seconds; got {encoding.show(lease_seconds)}"
        )
    if not 0 <= seconds <= models.MAX_LEASE_SECONDS:
        raise errors.InvalidLeaseTimeError(
            f"lease_seconds must be between 0 and {models.MAX_LEASE_SECONDS} (7 days); "
            f"found {seconds}"
        )
    return seconds_to_us(seconds)


def check_max_tasks(max_tasks: object) -> int:
    """SPEC 6: 1 to 1000 tasks per lease, an integer."""
    if not isinstance(max_tasks, int) or isinstance(max_tasks, bool):
        raise errors.InvalidMaxTasksError(
            f"max_tasks must be a whole number; got {encoding.show(max_tasks)}"
        )
    if not 1 <= max_tasks <= models.MAX_TASKS_PER_LEASE:
        raise errors.InvalidMaxTasksError(
            f"max_tasks must be between 1 and {models.MAX_TASKS_PER_LEASE}; found {max_tasks}"
        )
    return max_tasks


def check_lease_tag(tag: object, *, group_by_tag: bool) -> bytes | None:
    """The tag to lease by: only with ``group_by_tag`` (App Engine: generic ``Error``)."""
    if tag is not None and not group_by_tag:
        raise errors.Error("a tag can only be given when leasing by tag (group_by_tag)")
    if not tag:  # stored tasks never have an empty tag: "" means "the earliest task's tag"
        return None
    if not isinstance(tag, bytes | str):
        raise errors.InvalidTagError(f"tag must be bytes or str; got {encoding.show(tag)}")
    if len(tag) > models.MAX_TAG_LENGTH:
        raise errors.InvalidTagError(
            f"tag must be at most {models.MAX_TAG_LENGTH} characters; found {len(tag)}"
        )
    return tag if isinstance(tag, bytes) else encoding.utf8(tag, "tag")
