"""Moving a card to a column and a place in it, atomically (the Kanban drag and drop), within
a board or to another one."""

from __future__ import annotations

import uuid

from taskgate_common.errors import ApiError
from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import Principal
from tasks_service.core.etags import IfMatch
from tasks_service.repositories import tasks
from tasks_service.repositories.tasks import TaskRecord, owner_lock
from tasks_service.schemas import MoveRequest
from tasks_service.services.boards import get_column, wip_limit_reached
from tasks_service.services.placement import place
from tasks_service.services.tasks import check_precondition, column_change, destination, not_found


async def move(
    ctx: TasksContext,
    principal: Principal,
    task_id: uuid.UUID,
    request: MoveRequest,
    if_match: IfMatch | None,
) -> TaskRecord:
    """Put the card before/after an anchor card, or at the end of the target column.

    Only the moved card gets a new position (and version), unless its slot was used up, in
    which case the target column is respaced first without changing its order.
    """
    owner = principal.user_id
    anchor_id = request.before_id or request.after_id
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        task = await tasks.get(db, owner, task_id, for_update=True)
        if task is None:
            raise not_found()
        check_precondition(task, if_match)
        column_id = request.column_id
        if anchor_id is not None:
            if anchor_id == task_id:
                raise ApiError(400, "invalid_anchor", "A card cannot be placed next to itself")
            anchor = await tasks.get(db, owner, anchor_id)
            if anchor is None:
                raise ApiError(400, "anchor_not_found", "The anchor card does not exist")
            if column_id is not None and anchor.column_id != column_id:
                raise ApiError(
                    400, "anchor_not_in_column", "The anchor card is not in the target column"
                )
            if request.status is not None and anchor.status != request.status:
                raise ApiError(
                    400, "anchor_not_in_column", "The anchor card is not in the target column"
                )
            column = await get_column(db, owner, anchor.column_id)
        else:
            column = await destination(
                db,
                owner,
                column_id=column_id,
                board_id=request.board_id,
                status=request.status,
                current=task,
            )
        if request.board_id is not None and column.board_id != request.board_id:
            raise ApiError(400, "column_not_on_board", "The target column is not on that board")
        if column.id != task.column_id and column.is_full():
            raise wip_limit_reached(column)
        position = await place(
            db,
            owner,
            column.id,
            task_id=task_id,
            before_id=request.before_id,
            after_id=request.after_id,
        )
        task = await tasks.change(db, task, {"position": position, **column_change(task, column)})
    ctx.metrics.tasks_updated.labels(operation="move").inc()
    return task
