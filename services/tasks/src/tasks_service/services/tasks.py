"""Creating, reading, changing and deleting one task, each in its own transaction.

Another user's task is treated exactly like a missing one (404), so ids reveal nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson

from taskgate_common.errors import ApiError
from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import Principal
from tasks_service.core.etags import IfMatch, check_if_match
from tasks_service.models import TaskStatus
from tasks_service.repositories import boards, tasks
from tasks_service.repositories.boards import ColumnRecord
from tasks_service.repositories.tasks import NOW, Connection, TaskRecord, owner_lock
from tasks_service.schemas import TaskCreate, TaskPatch, TaskReplace
from tasks_service.services.boards import (
    column_for_category,
    ensure_default_board,
    get_board,
    get_column,
    wip_limit_reached,
)
from tasks_service.services.placement import place


def not_found() -> ApiError:
    return ApiError(404, "task_not_found", "No task with this id")


def check_precondition(task: TaskRecord, if_match: IfMatch | None) -> None:
    check_if_match(if_match, task.version, "task")


def column_change(task: TaskRecord, column: ColumnRecord) -> dict[str, Any]:
    """The values that put `task` in `column` (its position aside): the board, and the status
    and `completed_at` that follow the column's category (set on entering `done`, cleared on
    leaving it)."""
    values: dict[str, Any] = {}
    if column.id != task.column_id:
        values.update(column_id=column.id, board_id=column.board_id)
    if column.category != task.status:
        values["status"] = column.category
        values["completed_at"] = NOW if column.category is TaskStatus.DONE else None
    return values


def checklist_json(items: list[dict[str, Any]]) -> str:
    return orjson.dumps(items).decode()


def _stored(name: str, value: Any) -> Any:
    """A field's value as the row holds it (the checklist as JSON text)."""
    return checklist_json(value) if name == "checklist" else value


def _same(task: TaskRecord, name: str, value: Any) -> bool:
    if name == "checklist":
        return bool(orjson.loads(task.checklist) == value)
    return bool(getattr(task, name) == value)


async def destination(
    db: Connection,
    owner: uuid.UUID,
    *,
    column_id: uuid.UUID | None,
    board_id: uuid.UUID | None,
    status: TaskStatus | None,
    current: TaskRecord | None = None,
) -> ColumnRecord:
    """The column a task goes to: `column_id`'s; else the first column of `status`'s category
    on `board_id`'s board (default: the task's board, else the default board); else the
    task's own column. A status that disagrees with the named column is refused."""
    if column_id is not None:
        column = await get_column(db, owner, column_id)
        if board_id is not None and board_id != column.board_id:
            raise ApiError(400, "column_not_on_board", "The column is not on that board")
        if status is not None and status != column.category:
            raise ApiError(
                400,
                "status_not_column_category",
                f"The column's category is {column.category.value!r}, not {status.value!r}",
            )
        return column
    if (
        current is not None
        and board_id in (None, current.board_id)
        and status
        in (
            None,
            current.status,
        )
    ):
        return await get_column(db, owner, current.column_id)
    category = status or (current.status if current is not None else TaskStatus.TODO)
    if board_id is not None:
        board = await get_board(db, owner, board_id)
        return await column_for_category(db, owner, board.id, category)
    if current is not None:
        return await column_for_category(db, owner, current.board_id, category)
    found = await boards.default_column(db, owner, category)
    if found is not None:
        return found
    board = await ensure_default_board(db, owner)
    return await column_for_category(db, owner, board.id, category)


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
    owner = principal.user_id
    fields = body.model_dump(exclude={"board_id", "column_id", "status"})
    status = body.status if "status" in body.model_fields_set else None
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        column = await destination(
            db, owner, column_id=body.column_id, board_id=body.board_id, status=status
        )
        if column.is_full():
            raise wip_limit_reached(column)
        values = {
            **fields,
            "checklist": checklist_json(fields["checklist"]),
            "id": task_id,
            "status": column.category,
            "completed_at": NOW if column.category is TaskStatus.DONE else None,
            "board_id": column.board_id,
            "column_id": column.id,
        }
        task = await tasks.add_at_end(db, owner, values)
        if task is None:  # the column's positions ran out at its end: respace, then insert
            position = await place(db, owner, column.id, task_id=task_id)
            task = await tasks.add(db, owner, {**values, "position": position})
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
    owner = principal.user_id
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        task = await _locked(db, principal, task_id, if_match)
        requested = wanted(task)
        status = requested.pop("status", None)
        column_id = requested.pop("column_id", None)
        board_id = requested.pop("board_id", None)
        values = {
            name: _stored(name, value)
            for name, value in requested.items()
            if not _same(task, name, value)
        }
        if may_change_column:
            column = await destination(
                db, owner, column_id=column_id, board_id=board_id, status=status, current=task
            )
            if column.id != task.column_id:
                if column.is_full():
                    raise wip_limit_reached(column)
                values["position"] = await place(db, owner, column.id, task_id=task.id)
            values.update(column_change(task, column))
        if not values:
            return task
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
    if "checklist" in changes:
        changes["checklist"] = [item.model_dump() for item in body.checklist or []]
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
                stored = {name: _stored(name, value) for name, value in changes.items()}
                written = await tasks.change_in_place(
                    db, principal.user_id, task_id, stored, versions
                )
            if written is not None:
                ctx.metrics.tasks_updated.labels(operation="patch").inc()
                return written
            # Nothing written: missing, precondition failed, or nothing to change.
            current = await tasks.get(db, principal.user_id, task_id)
        if current is None:
            raise not_found()
        check_precondition(current, if_match)
        if all(_same(current, name, value) for name, value in changes.items()):
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
    for name in ("board_id", "column_id"):
        if fields[name] is None:
            fields.pop(name)
    if "column_id" in fields and "status" not in body.model_fields_set:
        fields.pop("status")  # the named column's category
    return await _update(
        ctx, principal, task_id, if_match, "replace", lambda _: dict(fields), may_change_column=True
    )


async def toggle_complete(
    ctx: TasksContext, principal: Principal, task_id: uuid.UUID, if_match: IfMatch | None
) -> TaskRecord:
    """The todo-app checkbox: `done` goes back to `todo`, anything else becomes `done`: to the
    first column of that category on the task's board."""

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
    async with ctx.db.transaction(prelude=owner_lock(principal.user_id)) as db:
        task = await _locked(db, principal, task_id, if_match)
        await tasks.remove(db, task)
    ctx.metrics.tasks_deleted.inc()
