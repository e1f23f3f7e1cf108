"""Adding tasks: one task or a whole batch, with the batch rules (SPEC 1.13/1.15) and the
service's checks after the client's."""

from __future__ import annotations

from collections.abc import Sequence

from pushd import encoding, errors, models
from pushd.tasks.build import HeaderFacts, build
from pushd.tasks.names import NameFactory, check_queue_name, new_task_name
from pushd.tasks.request import TaskRequest

#: App Engine's client's message for a batch over the limit (``Queue.add`` raises it).
APP_ENGINE_TOO_MANY = f"No more than {models.MAX_TASKS_PER_ADD} tasks can be added in a single call"


def check_batch_size(count: int, *, what: str = "a batch", app_engine: bool = False) -> None:
    """:class:`errors.TooManyTasksError` if ``count`` tasks are more than one add may hold.

    The one place for the limit of SPEC 1.13: every API and the client check it here, before
    any task of the batch is built. ``what`` names the batch in the message (``a BulkAdd``);
    ``app_engine`` gives App Engine's client's own message instead.
    """
    if count <= models.MAX_TASKS_PER_ADD:
        return
    if app_engine:
        raise errors.TooManyTasksError(APP_ENGINE_TOO_MANY)
    raise errors.TooManyTasksError(
        f"{what} may hold at most {models.MAX_TASKS_PER_ADD} tasks; found {count}"
    )


def build_task(
    request: TaskRequest,
    *,
    queue: str,
    mode: models.QueueMode,
    now_us: int,
    name_factory: NameFactory = new_task_name,
) -> models.Task:
    """The task to store for ``request`` added to ``queue`` (of mode ``mode``) at ``now_us``.

    Raises the :mod:`pushd.errors` class App Engine raises for the first broken rule, and
    nothing else whatever the request holds. Name clashes with stored tasks are the store's job.
    """
    check_queue_name(queue)
    task = build(request, queue=queue, now_us=now_us, name_factory=name_factory)
    _check_on_service([task], mode)
    return task


def validate_batch(
    items: Sequence[TaskRequest | models.Task],
    *,
    queue: str,
    mode: models.QueueMode,
    now_us: int,
    name_factory: NameFactory = new_task_name,
) -> list[models.Task]:
    """Build a whole batch or nothing: the tasks in order, or the first error (SPEC 1.13/1.15).

    Order: queue name; push and pull mixed (:class:`errors.InvalidTaskError`); more than 100
    tasks (:class:`errors.TooManyTasksError`, before any task is built); then each task's own
    checks and a repeated non-empty name (:class:`errors.DuplicateTaskNameError`); last the
    service's checks (negative ETA, queue mode). ``models.Task`` items are taken as built.
    """
    check_queue_name(queue)
    if len({_is_pull(item) for item in items}) > 1:
        raise errors.InvalidTaskError("a batch cannot mix push and pull tasks")
    check_batch_size(len(items))
    tasks: list[models.Task] = []
    names: set[str] = set()
    seen_headers: dict[tuple[tuple[str, str], ...], HeaderFacts] = {}
    for item in items:
        entry: object = item  # checked at run time: batches arrive from the network
        if isinstance(entry, models.Task):
            if entry.queue != queue:
                raise errors.InvalidTaskError(
                    f"task {entry.name!r} belongs to queue {entry.queue!r}, not {queue!r}"
                )
            task, chosen = entry, entry.name
        elif isinstance(entry, TaskRequest):
            task = build(
                entry,
                queue=queue,
                now_us=now_us,
                name_factory=name_factory,
                seen_headers=seen_headers,
            )
            chosen = entry.name or ""
        else:
            raise errors.InvalidTaskError(
                f"a batch holds TaskRequest or Task items; got {encoding.show(entry)}"
            )
        if chosen:
            if chosen in names:
                raise errors.DuplicateTaskNameError(
                    f"task name {chosen!r} is used more than once in the batch"
                )
            names.add(chosen)
        tasks.append(task)
    _check_on_service(tasks, mode)
    return tasks


def _is_pull(item: object) -> bool:
    if isinstance(item, models.Task):
        return item.is_pull
    method = getattr(item, "method", None)
    return isinstance(method, str) and method.upper() == "PULL"


def _check_on_service(tasks: Sequence[models.Task], mode: models.QueueMode) -> None:
    """The checks App Engine's service makes after its client's (STUB ``BulkAdd``)."""
    for task in tasks:
        if task.eta_us < 0:
            raise errors.InvalidEtaError(
                f"ETA must not be before the epoch; found {task.eta_us} µs"
            )
    if tasks and tasks[0].mode is not mode:
        kind = "pull" if tasks[0].is_pull else "push"
        raise errors.InvalidQueueModeError(
            f"cannot add {kind} tasks to queue {tasks[0].queue!r}, a {mode.value} queue"
        )
