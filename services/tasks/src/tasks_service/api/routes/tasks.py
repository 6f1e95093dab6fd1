"""`/api/tasks…`: the task API for Kanban and todo frontends."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from taskgate_common.errors import error_responses
from taskgate_common.openapi_document import response_headers
from tasks_service.api import PREFIX
from tasks_service.api.deps import LIST_QUERY_DOCS, Caller, Context, IfMatchHeader, ListRequest
from tasks_service.api.task_json import json_response, task_documents, task_response
from tasks_service.schemas import MoveRequest, TaskCreate, TaskOut, TaskPage, TaskPatch, TaskReplace
from tasks_service.services import listing, moves
from tasks_service.services import tasks as use_cases

router = APIRouter(prefix=f"{PREFIX}/tasks", tags=["tasks"])

# Every route needs a token and the database; every write also counts against the caller's
# write limit (deps.get_principal).
READ = (401, 503)
WRITE = (401, 429, 503)
# The task routes answer one task with its version as the ETag.
WITH_ETAG = response_headers("ETag")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskOut,
    summary="Create a task at the end of its column",
    responses={
        201: response_headers("ETag", "Location"),
        **error_responses(*WRITE, 400, 404, 409, 422),
    },
)
async def create_task(body: TaskCreate, ctx: Context, caller: Caller, request: Request) -> Response:
    task = await use_cases.create(ctx, caller, body)
    location = request.app.url_path_for("get_task", task_id=str(task.id))
    return task_response(task, status.HTTP_201_CREATED, {"Location": location})


@router.get(
    "",
    response_model=TaskPage,
    summary="List tasks: filters, sort and keyset pages",
    responses=error_responses(*READ, 422),
    openapi_extra=LIST_QUERY_DOCS,
)
async def list_tasks(ctx: Context, caller: Caller, query: ListRequest) -> Response:
    page = await listing.list_tasks(ctx, caller, query)
    return json_response({"items": task_documents(page.items), "next_cursor": page.next_cursor})


@router.get(
    "/{task_id}",
    response_model=TaskOut,
    summary="One task, with its ETag",
    responses={200: WITH_ETAG, **error_responses(*READ, 404, 422)},
)
async def get_task(task_id: uuid.UUID, ctx: Context, caller: Caller) -> Response:
    return task_response(await use_cases.get(ctx, caller, task_id))


@router.patch(
    "/{task_id}",
    response_model=TaskOut,
    summary="Change some fields (If-Match honoured)",
    responses={200: WITH_ETAG, **error_responses(*WRITE, 404, 409, 412, 422)},
)
async def patch_task(
    task_id: uuid.UUID,
    body: TaskPatch,
    ctx: Context,
    caller: Caller,
    if_match: IfMatchHeader,
) -> Response:
    task = await use_cases.patch(ctx, caller, task_id, body, if_match)
    return task_response(task)


@router.put(
    "/{task_id}",
    response_model=TaskOut,
    summary="Replace every field (If-Match honoured)",
    responses={200: WITH_ETAG, **error_responses(*WRITE, 400, 404, 409, 412, 422)},
)
async def replace_task(
    task_id: uuid.UUID,
    body: TaskReplace,
    ctx: Context,
    caller: Caller,
    if_match: IfMatchHeader,
) -> Response:
    task = await use_cases.replace(ctx, caller, task_id, body, if_match)
    return task_response(task)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a task (If-Match honoured)",
    responses=error_responses(*WRITE, 404, 412, 422),
)
async def delete_task(
    task_id: uuid.UUID, ctx: Context, caller: Caller, if_match: IfMatchHeader
) -> Response:
    await use_cases.delete(ctx, caller, task_id, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{task_id}/move",
    response_model=TaskOut,
    summary="Move a card to a column (of this board or another), before or after another card",
    responses={200: WITH_ETAG, **error_responses(*WRITE, 400, 404, 409, 412, 422)},
)
async def move_task(
    task_id: uuid.UUID,
    body: MoveRequest,
    ctx: Context,
    caller: Caller,
    if_match: IfMatchHeader,
) -> Response:
    task = await moves.move(ctx, caller, task_id, body, if_match)
    return task_response(task)


@router.patch(
    "/{task_id}/complete",
    response_model=TaskOut,
    summary="Toggle done: done goes back to todo, anything else becomes done",
    responses={200: WITH_ETAG, **error_responses(*WRITE, 404, 409, 412, 422)},
)
async def toggle_task_complete(
    task_id: uuid.UUID, ctx: Context, caller: Caller, if_match: IfMatchHeader
) -> Response:
    task = await use_cases.toggle_complete(ctx, caller, task_id, if_match)
    return task_response(task)
