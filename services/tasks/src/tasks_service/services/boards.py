"""A user's boards and their columns, each change in its own transaction under the owner's lock.

Another user's board or column is treated exactly like a missing one (404). A board always has
at least one column; a column holding cards is deleted only when the request names where its
cards go. Every user has a default board, made on first use, where tasks that name no board go.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from taskgate_common.errors import ApiError
from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import Principal
from tasks_service.core.etags import IfMatch, check_if_match
from tasks_service.models import TaskStatus
from tasks_service.repositories import boards
from tasks_service.repositories.boards import BoardRecord, ColumnRecord
from tasks_service.repositories.tasks import NOW, Connection, owner_lock
from tasks_service.schemas import BoardCreate, BoardPatch, ColumnCreate, ColumnPatch, Placement


def board_not_found() -> ApiError:
    return ApiError(404, "board_not_found", "No board with this id")


def column_not_found() -> ApiError:
    return ApiError(404, "column_not_found", "No column with this id")


def wip_limit_reached(column: ColumnRecord) -> ApiError:
    return ApiError(
        409,
        "wip_limit_reached",
        f"The column {column.name!r} holds its limit of {column.wip_limit} cards; move one out "
        "or raise the limit first",
    )


async def ensure_default_board(db: Connection, owner_id: uuid.UUID) -> BoardRecord:
    """The owner's default board, made with the three usual columns if there is none yet.
    Needs the owner's lock (two first uses at once would make two)."""
    board = await boards.default_board(db, owner_id)
    if board is not None:
        return board
    board = await boards.add_board(db, owner_id, boards.DEFAULT_BOARD_NAME, is_default=True)
    for name, category in boards.DEFAULT_COLUMNS:
        await boards.add_column(db, board, name, category, None)
    return board


async def get_board(db: Connection, owner_id: uuid.UUID, board_id: uuid.UUID) -> BoardRecord:
    board = await boards.get_board(db, owner_id, board_id)
    if board is None:
        raise board_not_found()
    return board


async def get_column(
    db: Connection, owner_id: uuid.UUID, column_id: uuid.UUID, *, for_update: bool = False
) -> ColumnRecord:
    column = await boards.get_column(db, owner_id, column_id, for_update=for_update)
    if column is None:
        raise column_not_found()
    return column


async def column_for_category(
    db: Connection, owner_id: uuid.UUID, board_id: uuid.UUID, category: TaskStatus
) -> ColumnRecord:
    """Where a status of the todo API leads on a board: its first column of that category."""
    column = await boards.first_column(db, owner_id, board_id, category)
    if column is None:
        raise ApiError(
            409,
            "no_column_for_status",
            f"The board has no column of the category {category.value!r}; add one, or name a "
            "column",
        )
    return column


# -- boards -----------------------------------------------------------------------------------


async def list_boards(
    ctx: TasksContext, principal: Principal, archived: bool | None
) -> list[BoardRecord]:
    owner = principal.user_id
    async with ctx.db.connect() as db:
        found = await boards.list_boards(db, owner, archived=archived)
    if found or archived:
        return found
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        await ensure_default_board(db, owner)
        return await boards.list_boards(db, owner, archived=archived)


async def create_board(ctx: TasksContext, principal: Principal, body: BoardCreate) -> BoardRecord:
    owner = principal.user_id
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        await ensure_default_board(db, owner)
        if await boards.count_boards(db, owner) >= boards.MAX_BOARDS:
            raise ApiError(409, "too_many_boards", f"At most {boards.MAX_BOARDS} boards")
        board = await boards.add_board(db, owner, body.name)
        for name, category in boards.DEFAULT_COLUMNS:
            await boards.add_column(db, board, name, category, None)
    return board


async def change_board(
    ctx: TasksContext,
    principal: Principal,
    board_id: uuid.UUID,
    body: BoardPatch,
    if_match: IfMatch | None,
) -> BoardRecord:
    owner = principal.user_id
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        board = await boards.get_board(db, owner, board_id, for_update=True)
        if board is None:
            raise board_not_found()
        check_if_match(if_match, board.version, "board")
        values: dict[str, Any] = {}
        if body.name is not None and body.name != board.name:
            values["name"] = body.name
        if body.archived is not None and body.archived != (board.archived_at is not None):
            values["archived_at"] = NOW if body.archived else None
        if not values:
            return board
        return await boards.change_board(db, board, values)


async def delete_board(
    ctx: TasksContext,
    principal: Principal,
    board_id: uuid.UUID,
    delete_tasks: bool,
    if_match: IfMatch | None,
) -> None:
    """A board that holds cards goes only with `delete_tasks=true`: one call cannot lose them
    by accident. Deleting the default board is allowed; the next first use makes a new one."""
    owner = principal.user_id
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        board = await boards.get_board(db, owner, board_id, for_update=True)
        if board is None:
            raise board_not_found()
        check_if_match(if_match, board.version, "board")
        count = await boards.board_task_count(db, board.id)
        if count and not delete_tasks:
            raise ApiError(
                409,
                "board_not_empty",
                f"The board holds {count} task(s); delete it with delete_tasks=true to delete "
                "them too, or move them first",
            )
        await boards.remove_board(db, board)


async def move_board(
    ctx: TasksContext, principal: Principal, board_id: uuid.UUID, body: Placement
) -> BoardRecord:
    owner = principal.user_id
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        siblings = await boards.list_boards(db, owner, archived=None)
        order = _reordered([board.id for board in siblings], board_id, body, board_not_found)
        await boards.renumber_boards(db, owner, order)
        board = await boards.get_board(db, owner, board_id)
        assert board is not None
        return board


def _reordered(
    ids: Sequence[uuid.UUID], moving: uuid.UUID, body: Placement, missing: Any
) -> list[uuid.UUID]:
    """`ids` with `moving` taken out and put before/after the anchor, or at the end."""
    if moving not in ids:
        raise missing()
    anchor = body.before_id or body.after_id
    rest = [item for item in ids if item != moving]
    if anchor is None:
        return [*rest, moving]
    if anchor == moving:
        raise ApiError(400, "invalid_anchor", "An item cannot be placed next to itself")
    if anchor not in rest:
        raise ApiError(400, "anchor_not_found", "The anchor is not one of the siblings")
    index = rest.index(anchor) + (0 if body.before_id is not None else 1)
    return [*rest[:index], moving, *rest[index:]]


# -- columns ----------------------------------------------------------------------------------


async def create_column(
    ctx: TasksContext, principal: Principal, board_id: uuid.UUID, body: ColumnCreate
) -> ColumnRecord:
    owner = principal.user_id
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        board = await get_board(db, owner, board_id)
        if len(await boards.columns_of(db, board.id)) >= boards.MAX_COLUMNS:
            raise ApiError(409, "too_many_columns", f"At most {boards.MAX_COLUMNS} columns")
        return await boards.add_column(db, board, body.name, body.category, body.wip_limit)


async def change_column(
    ctx: TasksContext,
    principal: Principal,
    column_id: uuid.UUID,
    body: ColumnPatch,
    if_match: IfMatch | None,
) -> ColumnRecord:
    owner = principal.user_id
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        column = await get_column(db, owner, column_id, for_update=True)
        check_if_match(if_match, column.version, "column")
        values = {
            name: value
            for name, value in body.model_dump(exclude_unset=True).items()
            if getattr(column, name) != value
        }
        if not values:
            return column
        if "category" in values:
            await boards.recategorise_tasks(db, column, values["category"])
        return await boards.change_column(db, column, values)


async def delete_column(
    ctx: TasksContext,
    principal: Principal,
    column_id: uuid.UUID,
    move_to: uuid.UUID | None,
    if_match: IfMatch | None,
) -> None:
    """Refused (409) for a board's last column, and for a column that holds cards unless
    `move_to` names the column (of any of the user's boards) they go to, at its end."""
    owner = principal.user_id
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        column = await get_column(db, owner, column_id, for_update=True)
        check_if_match(if_match, column.version, "column")
        if len(await boards.columns_of(db, column.board_id)) <= 1:
            raise ApiError(409, "last_column", "A board keeps at least one column")
        if column.task_count:
            if move_to is None:
                raise ApiError(
                    409,
                    "column_not_empty",
                    f"The column holds {column.task_count} card(s); name the column they go "
                    "to with move_to",
                )
            if move_to == column.id:
                raise ApiError(400, "invalid_target", "The cards cannot move to their own column")
            target = await get_column(db, owner, move_to, for_update=True)
            if target.is_full(column.task_count):
                raise wip_limit_reached(target)
            await boards.move_all_tasks(db, column, target)
        await boards.remove_column(db, column)


async def move_column(
    ctx: TasksContext, principal: Principal, column_id: uuid.UUID, body: Placement
) -> ColumnRecord:
    owner = principal.user_id
    async with ctx.db.transaction(prelude=owner_lock(owner)) as db:
        column = await get_column(db, owner, column_id)
        siblings = await boards.columns_of(db, column.board_id)
        order = _reordered([item.id for item in siblings], column.id, body, column_not_found)
        await boards.renumber_columns(db, column.board_id, order)
        return await get_column(db, owner, column_id)
