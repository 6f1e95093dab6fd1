"""`/api/changes`: incremental sync, the changes after a cursor."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from taskgate_common.errors import error_responses
from taskgate_common.openapi_document import response_headers
from tasks_service.api import PREFIX
from tasks_service.api.change_json import change_document
from tasks_service.api.deps import Caller, Context
from tasks_service.api.query_params import openapi_parameters, parse_query
from tasks_service.api.task_json import json_response
from tasks_service.change_schemas import ChangesPage, ChangesParams
from tasks_service.services import changes

router = APIRouter(prefix=PREFIX, tags=["sync"])


@router.get(
    "/changes",
    response_model=ChangesPage,
    summary="The caller's changes after a cursor, in commit order (tombstones included)",
    description="Without `since`: no changes, and the cursor to sync from (take it before "
    "reading the boards in full). `If-None-Match` with the last ETag: 304 while nothing "
    "changed. 410 `sync_expired`: the cursor is older than the log keeps; read in full again.",
    responses={
        200: response_headers("ETag"),
        304: {"description": "Nothing new since the ETag given in `If-None-Match`"},
        **error_responses(401, 410, 422, 503),
    },
    openapi_extra={"parameters": openapi_parameters(ChangesParams)},
)
async def list_changes(ctx: Context, caller: Caller, request: Request) -> Response:
    params = parse_query(ChangesParams, request.query_params)
    since = None if params.since is None else changes.parse_cursor(params.since)
    page = await changes.read_page(ctx, caller.user_id, since, params.limit)
    # The answer to this URL changes only when the next cursor does.
    tag = f'"changes-{params.since or ""}-{page.next_cursor}-{params.limit}"'
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return json_response(
        {
            "changes": [change_document(entry) for entry in page.entries],
            "next_cursor": str(page.next_cursor),
            "has_more": page.has_more,
        },
        headers=headers,
    )
