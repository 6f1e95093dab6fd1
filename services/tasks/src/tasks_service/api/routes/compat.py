"""`/api/{user_id}/tasks…`: the per-user URLs some todo frontends use.

Same tasks and rules as `/api/tasks…`; `{user_id}` must be the token's own id (else 403
`user_mismatch`). Only the list (a plain JSON array, the next page in a `Link` header) and the
create (its `Location`) are handlers of their own; the rest are `/api/tasks/{id}`'s.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response, status

from taskgate_common.errors import error_responses
from taskgate_common.openapi_document import response_headers
from tasks_service.api import PREFIX
from tasks_service.api.deps import LIST_QUERY_DOCS, Context, ListRequest, PathUser, get_path_user
from tasks_service.api.routes import tasks
from tasks_service.api.task_json import json_response, task_documents, task_response
from tasks_service.schemas import TaskCreate, TaskOut
from tasks_service.services import listing
from tasks_service.services import tasks as use_cases

router = APIRouter(prefix=PREFIX + "/{user_id}/tasks", tags=["per-user compatibility"])

# As in tasks.py, with the 403 of a `{user_id}` that is not the caller's.
READ = (401, 403, 503)
WRITE = (401, 403, 429, 503)
WITH_ETAG = response_headers("ETag")


@router.get(
    "",
    response_model=list[TaskOut],
    summary="List the user's tasks as a plain array (next page in the `Link` header)",
    responses={200: response_headers("Link", "X-Next-Cursor"), **error_responses(*READ, 422)},
    openapi_extra=LIST_QUERY_DOCS,
)
async def list_user_tasks(
    ctx: Context, caller: PathUser, query: ListRequest, request: Request
) -> Response:
    page = await listing.list_tasks(ctx, caller, query)
    headers = {}
    if page.next_cursor is not None:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        params.append(("cursor", page.next_cursor))
        headers["Link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
        headers["X-Next-Cursor"] = page.next_cursor
    return json_response(task_documents(page.items), headers=headers)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskOut,
    summary="Create a task for the user",
    responses={
        201: response_headers("ETag", "Location"),
        **error_responses(*WRITE, 400, 404, 409, 422),
    },
)
async def create_user_task(
    user_id: uuid.UUID,
    body: TaskCreate,
    ctx: Context,
    caller: PathUser,
    request: Request,
) -> Response:
    task = await use_cases.create(ctx, caller, body)
    location = request.app.url_path_for("get_user_task", user_id=str(user_id), task_id=str(task.id))
    return task_response(task, status.HTTP_201_CREATED, {"Location": location})


# The single-task routes are `/api/tasks/{id}`'s own handlers under a second path, with the
# `{user_id}` check in front (it runs first, so a 403 says nothing about task ids).
_SAME_USER = [Depends(get_path_user)]
router.add_api_route(
    "/{task_id}",
    tasks.get_task,
    methods=["GET"],
    response_model=TaskOut,
    summary="One of the user's tasks",
    responses={200: WITH_ETAG, **error_responses(*READ, 404, 422)},
    dependencies=_SAME_USER,
    name="get_user_task",
    operation_id="getUserTask",
)
router.add_api_route(
    "/{task_id}",
    tasks.replace_task,
    methods=["PUT"],
    response_model=TaskOut,
    summary="Replace one of the user's tasks (If-Match honoured)",
    responses={200: WITH_ETAG, **error_responses(*WRITE, 400, 404, 409, 412, 422)},
    dependencies=_SAME_USER,
    operation_id="replaceUserTask",
)
router.add_api_route(
    "/{task_id}",
    tasks.delete_task,
    methods=["DELETE"],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete one of the user's tasks (If-Match honoured)",
    responses=error_responses(*WRITE, 404, 412, 422),
    dependencies=_SAME_USER,
    operation_id="deleteUserTask",
)
router.add_api_route(
    "/{task_id}/complete",
    tasks.toggle_task_complete,
    methods=["PATCH"],
    response_model=TaskOut,
    summary="Toggle done for one of the user's tasks",
    responses={200: WITH_ETAG, **error_responses(*WRITE, 404, 409, 412, 422)},
    dependencies=_SAME_USER,
    operation_id="toggleUserTaskComplete",
)
