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
    async with ctx.db.transaction(advisory_lock=owner_lock_key(principal.user_id)) as db:
        position = await place(db, principal.user_id, body.status, task_id=task_id)
        done = body.status is TaskStatus.DONE
        task = await tasks.add(
            db,
            principal.user_id,
            {
                **body.model_dump(),
                "id": task_id,
                "position": position,
                "completed_at": NOW if done else None,
            },
        )
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
    return await _update(
        ctx,
        principal,
        task_id,
        if_match,
        "patch",
        lambda _: dict(changes),
        may_change_column="status" in changes,
    )


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
    async with ctx.db.transaction() as db:
        task = await _locked(db, principal, task_id, if_match)
        await tasks.remove(db, task)
    ctx.metrics.tasks_deleted.inc()
