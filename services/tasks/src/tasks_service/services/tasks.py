"""Creating, reading, changing and deleting one task, each in its own transaction.

Another user's task is treated exactly like a missing one (404), so ids reveal nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from taskgate_common.errors import ApiError
from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import Principal
from tasks_service.core.etags import IfMatch, etag
from tasks_service.models import TaskStatus
from tasks_service.repositories import tasks
from tasks_service.repositories.tasks import NOW, Connection, TaskRecord, owner_lock_key
from tasks_service.schemas import TaskCreate, TaskPatch, TaskReplace
from tasks_service.services.placement import place


def not_found() -> ApiError:
    return ApiError(404, "task_not_found", "No task with this id")


def check_precondition(task: TaskRecord, if_match: IfMatch | None) -> None:
    if if_match is not None and not if_match.allows(task.version):
        raise ApiError(
            412,
            "version_mismatch",
            "The task changed since you read it (If-Match does not match); reload and retry",
            {"ETag": etag(task.version)},
        )


def column_change(task: TaskRecord, status: TaskStatus) -> dict[str, Any]:
    """`completed_at` follows the column: set on entering `done`, cleared on leaving it."""
    if status == task.status:
        return {}
    return {"status": status, "completed_at": NOW if status is TaskStatus.DONE else None}


async def _locked(
    db: Connection, principal: Principal, task_id: uuid.UUID, if_match: IfMatch | None
) -> TaskRecord:
    task = await tasks.get(db, principal.user_id, task_id, for_update=True)
    if task is None:
        raise not_found()
    check_precondition(task, if_match)
    return task


async def create(ctx: TasksContext, principal: Principal, body: TaskCreate) -> TaskRecord:
    task_id = uuid.uuid4()
    values = {
        **body.model_dump(),
        "id": task_id,
        "completed_at": NOW if body.status is TaskStatus.DONE else None,
    }
    async with ctx.db.transaction(advisory_lock=owner_lock_key(principal.user_id)) as db:
        task = await tasks.add_at_end(db, principal.user_id, values)
        if task is None:  # the column's positions ran out at its end: respace, then insert
            position = await place(db, principal.user_id, body.status, task_id=task_id)
            task = await tasks.add(db, principal.user_id, {**values, "position": position})
    ctx.metrics.tasks_created.inc()
    return task


async def get(ctx: TasksContext, principal: Principal, task_id: uuid.UUID) -> TaskRecord:
    async with ctx.db.connect() as db:
        task = await tasks.get(db, principal.user_id, task_id)
    if task is None:
        raise not_found()
    return task


async def _update(
    ctx: TasksContext,
    principal: Principal,
    task_id: uuid.UUID,
    if_match: IfMatch | None,
    operation: str,
    wanted: Callable[[TaskRecord], dict[str, Any]],
    *,
    may_change_column: bool,
) -> TaskRecord:
    """Apply what `wanted(task)` returns; when nothing differs there is no write, no new version."""
    lock = owner_lock_key(principal.user_id) if may_change_column else None
    async with ctx.db.transaction(advisory_lock=lock) as db:
        task = await _locked(db, principal, task_id, if_match)
        requested = wanted(task)
        status = requested.pop("status", task.status)
        values = {name: value for name, value in requested.items() if getattr(task, name) != value}
        values.update(column_change(task, status))
        if not values:
            return task
        if "status" in values:
            values["position"] = await place(db, principal.user_id, status, task_id=task.id)
        task = await tasks.change(db, task, values)
    ctx.metrics.tasks_updated.labels(operation=operation).inc()
    return task


async def patch(
    ctx: TasksContext,
    principal: Principal,
    task_id: uuid.UUID,
    body: TaskPatch,
    if_match: IfMatch | None,
) -> TaskRecord:
    changes = body.changes()
    if "status" not in changes:
        task = await _patch_in_place(ctx, principal, task_id, changes, if_match)
        if task is not None:
            return task
    return await _update(
        ctx,
        principal,
        task_id,
        if_match,
        "patch",
        lambda _: dict(changes),
        may_change_column="status" in changes,
    )


# A write that races another write between its two statements tries again this many times
# before taking the locked path.
_IN_PLACE_ATTEMPTS = 3


async def _patch_in_place(
    ctx: TasksContext,
    principal: Principal,
    task_id: uuid.UUID,
    changes: dict[str, Any],
    if_match: IfMatch | None,
) -> TaskRecord | None:
    """A change that keeps the card in its column: one statement instead of a transaction
    (no placement, so no owner lock). None if it kept racing other writes."""
    versions = if_match.storable_versions() if if_match is not None else None
    for _ in range(_IN_PLACE_ATTEMPTS):
        async with ctx.db.connect() as db:
            written = None
            if changes:
                written = await tasks.change_in_place(
                    db, principal.user_id, task_id, changes, versions
                )
            if written is not None:
                ctx.metrics.tasks_updated.labels(operation="patch").inc()
                return written
            # Nothing written: missing, precondition failed, or nothing to change.
            current = await tasks.get(db, principal.user_id, task_id)
        if current is None:
            raise not_found()
        check_precondition(current, if_match)
        if all(getattr(current, name) == value for name, value in changes.items()):
            return current  # no change, no new version
        # Another write landed between the two statements: try again on the new row.
    return None


async def replace(
    ctx: TasksContext,
    principal: Principal,
    task_id: uuid.UUID,
    body: TaskReplace,
    if_match: IfMatch | None,
) -> TaskRecord:
    fields = body.model_dump()
    return await _update(
        ctx, principal, task_id, if_match, "replace", lambda _: dict(fields), may_change_column=True
    )


async def toggle_complete(
    ctx: TasksContext, principal: Principal, task_id: uuid.UUID, if_match: IfMatch | None
) -> TaskRecord:
    """The todo-app checkbox: `done` goes back to `todo`, anything else becomes `done`."""

    def flipped(task: TaskRecord) -> dict[str, Any]:
        done = task.status is TaskStatus.DONE
        return {"status": TaskStatus.TODO if done else TaskStatus.DONE}

    return await _update(
        ctx, principal, task_id, if_match, "complete", flipped, may_change_column=True
    )


async def delete(
    ctx: TasksContext, principal: Principal, task_id: uuid.UUID, if_match: IfMatch | None
) -> None:
    """One statement; when it deletes nothing, the row says why (404 or 412)."""
    versions = if_match.storable_versions() if if_match is not None else None
    for _ in range(_IN_PLACE_ATTEMPTS):
        async with ctx.db.connect() as db:
            if await tasks.remove_in_place(db, principal.user_id, task_id, versions):
                ctx.metrics.tasks_deleted.inc()
                return
            current = await tasks.get(db, principal.user_id, task_id)
        if current is None:
            raise not_found()
        check_precondition(current, if_match)
        # The version changed to a matching one between the two statements: try again.
    async with ctx.db.transaction() as db:
        task = await _locked(db, principal, task_id, if_match)
        await tasks.remove(db, task)
    ctx.metrics.tasks_deleted.inc()
