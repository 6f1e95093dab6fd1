"""`/api/boards…` and `/api/columns…`: a user's Kanban boards and their columns."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from taskgate_common.errors import ApiError, error_responses
from taskgate_common.openapi_document import response_headers
from tasks_service.api import PREFIX
from tasks_service.api.board_json import board_document, board_view_document, column_document
from tasks_service.api.deps import (
    BOARD_QUERY_DOCS,
    PAGE_QUERY_DOCS,
    BoardQuery,
    Caller,
    Context,
    IfMatchHeader,
    PageQuery,
)
from tasks_service.api.task_json import json_response, task_documents
from tasks_service.core.cursor import InvalidCursor
from tasks_service.core.etags import etag
from tasks_service.schemas import (
    Board,
    BoardCreate,
    BoardList,
    BoardOut,
    BoardPatch,
    ColumnCreate,
    ColumnOut,
    ColumnPage,
    ColumnPatch,
    Placement,
)
from tasks_service.services import boards as use_cases
from tasks_service.services import listing

router = APIRouter(prefix=PREFIX, tags=["boards"])

READ = (401, 503)
WRITE = (401, 429, 503)
WITH_ETAG = response_headers("ETag")


def _with_etag(document: dict[str, object], version: int, code: int = 200) -> Response:
    return json_response(document, code, {"ETag": etag(version)})


@router.get(
    "/boards",
    response_model=BoardList,
    summary="The caller's boards, in their order (the default board is made on first use)",
    responses=error_responses(*READ, 422),
)
async def list_boards(
    ctx: Context,
    caller: Caller,
    archived: Annotated[
        bool | None, Query(description="Only archived (true) or active (false); default: both")
    ] = None,
) -> Response:
    found = await use_cases.list_boards(ctx, caller, archived)
    return json_response({"items": [board_document(board) for board in found]})


@router.post(
    "/boards",
    status_code=status.HTTP_201_CREATED,
    response_model=BoardOut,
    summary="Create a board, with the columns To do, In progress and Done",
    responses={201: response_headers("ETag", "Location"), **error_responses(*WRITE, 409, 422)},
)
async def create_board(
    body: BoardCreate, ctx: Context, caller: Caller, request: Request
) -> Response:
    board = await use_cases.create_board(ctx, caller, body)
    location = request.app.url_path_for("get_board", board_id=str(board.id))
    response = _with_etag(board_document(board), board.version, status.HTTP_201_CREATED)
    response.headers["Location"] = location
    return response


@router.get(
    "/boards/{board_id}",
    response_model=Board,
    summary="A board: its columns in order, each with its total and first cards",
    responses={200: WITH_ETAG, **error_responses(*READ, 404, 422)},
    openapi_extra=BOARD_QUERY_DOCS,
)
async def get_board(
    board_id: uuid.UUID, ctx: Context, caller: Caller, params: BoardQuery
) -> Response:
    view = await listing.board_view(ctx, caller, board_id, params.limit)
    return _with_etag(board_view_document(view), view.board.version)


@router.patch(
    "/boards/{board_id}",
    response_model=BoardOut,
    summary="Rename, archive or bring back a board (If-Match honoured)",
    responses={200: WITH_ETAG, **error_responses(*WRITE, 404, 412, 422)},
)
async def update_board(
    board_id: uuid.UUID,
    body: BoardPatch,
    ctx: Context,
    caller: Caller,
    if_match: IfMatchHeader,
) -> Response:
    board = await use_cases.change_board(ctx, caller, board_id, body, if_match)
    return _with_etag(board_document(board), board.version)


@router.delete(
    "/boards/{board_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a board; one that holds tasks needs delete_tasks=true (If-Match honoured)",
    responses=error_responses(*WRITE, 404, 409, 412, 422),
)
async def delete_board(
    board_id: uuid.UUID,
    ctx: Context,
    caller: Caller,
    if_match: IfMatchHeader,
    delete_tasks: Annotated[
        bool, Query(description="Confirm that the board's tasks are deleted with it")
    ] = False,
) -> Response:
    await use_cases.delete_board(ctx, caller, board_id, delete_tasks, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/boards/{board_id}/move",
    response_model=BoardOut,
    summary="Reorder: put the board before or after another, or last",
    responses={200: WITH_ETAG, **error_responses(*WRITE, 400, 404, 422)},
)
async def move_board(
    board_id: uuid.UUID, body: Placement, ctx: Context, caller: Caller
) -> Response:
    board = await use_cases.move_board(ctx, caller, board_id, body)
    return _with_etag(board_document(board), board.version)


@router.post(
    "/boards/{board_id}/columns",
    status_code=status.HTTP_201_CREATED,
    response_model=ColumnOut,
    summary="Add a column at the end of the board",
    responses={201: WITH_ETAG, **error_responses(*WRITE, 404, 409, 422)},
)
async def create_column(
    board_id: uuid.UUID, body: ColumnCreate, ctx: Context, caller: Caller
) -> Response:
    column = await use_cases.create_column(ctx, caller, board_id, body)
    return _with_etag(column_document(column), column.version, status.HTTP_201_CREATED)


@router.patch(
    "/columns/{column_id}",
    response_model=ColumnOut,
    summary="Rename a column, change its category or WIP limit (If-Match honoured)",
    responses={200: WITH_ETAG, **error_responses(*WRITE, 404, 412, 422)},
)
async def update_column(
    column_id: uuid.UUID,
    body: ColumnPatch,
    ctx: Context,
    caller: Caller,
    if_match: IfMatchHeader,
) -> Response:
    column = await use_cases.change_column(ctx, caller, column_id, body, if_match)
    return _with_etag(column_document(column), column.version)


@router.delete(
    "/columns/{column_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a column; one that holds cards needs move_to (If-Match honoured)",
    responses=error_responses(*WRITE, 400, 404, 409, 412, 422),
)
async def delete_column(
    column_id: uuid.UUID,
    ctx: Context,
    caller: Caller,
    if_match: IfMatchHeader,
    move_to: Annotated[
        uuid.UUID | None,
        Query(description="The column (of any of your boards) the cards go to, at its end"),
    ] = None,
) -> Response:
    await use_cases.delete_column(ctx, caller, column_id, move_to, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/columns/{column_id}/move",
    response_model=ColumnOut,
    summary="Reorder: put the column before or after another of its board, or last",
    responses={200: WITH_ETAG, **error_responses(*WRITE, 400, 404, 422)},
)
async def move_column(
    column_id: uuid.UUID, body: Placement, ctx: Context, caller: Caller
) -> Response:
    column = await use_cases.move_column(ctx, caller, column_id, body)
    return _with_etag(column_document(column), column.version)


@router.get(
    "/columns/{column_id}/tasks",
    response_model=ColumnPage,
    summary="A column's cards in order, page by page (keyset cursor from the board view)",
    responses=error_responses(*READ, 404, 422),
    openapi_extra=PAGE_QUERY_DOCS,
)
async def list_column_tasks(
    column_id: uuid.UUID, ctx: Context, caller: Caller, params: PageQuery
) -> Response:
    try:
        page = await listing.column_page(ctx, caller, column_id, params)
    except InvalidCursor as exc:
        raise ApiError(
            422,
            "invalid_cursor",
            f"Invalid cursor: {exc}",
            errors=[{"loc": ("query", "cursor"), "msg": str(exc), "type": "value_error"}],
        ) from None
    return json_response({"items": task_documents(page.items), "next_cursor": page.next_cursor})
