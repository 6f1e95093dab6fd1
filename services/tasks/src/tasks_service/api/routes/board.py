"""`/api/board`: the caller's tasks by status across all boards (the view from before boards;
a Kanban UI renders `/api/boards/{id}`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from taskgate_common.errors import error_responses
from tasks_service.api import PREFIX
from tasks_service.api.deps import BOARD_QUERY_DOCS, BoardQuery, Caller, Context
from tasks_service.api.task_json import json_response, task_documents
from tasks_service.schemas import StatusBoard
from tasks_service.services import listing

router = APIRouter(prefix=PREFIX, tags=["board"])


@router.get(
    "/board",
    response_model=StatusBoard,
    summary="The caller's tasks by status across all boards, in position order (bounded per "
    "status)",
    responses=error_responses(401, 422, 503),
    openapi_extra=BOARD_QUERY_DOCS,
)
async def get_status_board(ctx: Context, caller: Caller, params: BoardQuery) -> Response:
    columns = await listing.status_board(ctx, caller, params.limit)
    return json_response(
        {
            "columns": [
                {
                    "status": column.status,
                    "total": column.total,
                    "items": task_documents(column.items),
                    "next_cursor": column.next_cursor,
                }
                for column in columns
            ]
        }
    )
