"""FastAPI dependencies: the app context, the caller, `If-Match` and list parameters."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Request

from taskgate_common.bearer_auth import bearer_token
from taskgate_common.errors import ApiError
from tasks_service.api.query_params import openapi_parameters, parse_query
from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import Principal
from tasks_service.core.cursor import InvalidCursor
from tasks_service.core.etags import IfMatch
from tasks_service.schemas import BoardParams, PageParams, TaskListParams
from tasks_service.services import listing
from tasks_service.services.access import authenticate


# Dependencies are `async def` even when they do not await: FastAPI runs plain `def`
# dependencies in a worker thread, a hand-off that costs more than the work itself.
async def get_context(request: Request) -> TasksContext:
    ctx: TasksContext = request.app.state.ctx
    return ctx


Context = Annotated[TasksContext, Depends(get_context)]


async def get_principal(
    request: Request,
    token: Annotated[str | None, Depends(bearer_token)],
) -> Principal:
    """The verified caller; a write (any method but GET/HEAD/OPTIONS) also counts against
    the caller's write limit, so every write route is limited without a word of its own.

    Reads the context itself rather than depending on `Context`: each dependency node costs
    FastAPI work on every request, and this one is on every route."""
    ctx: TasksContext = request.app.state.ctx
    principal = await authenticate(ctx, token)
    if ctx.write_limits is not None:
        await ctx.write_limits.hit(request, principal.user_id)
    return principal


Caller = Annotated[Principal, Depends(get_principal)]


async def get_if_match(
    if_match: Annotated[
        str | None,
        Header(
            description="Apply only if the task's ETag is one of these (`*`: any); else 412",
            max_length=1024,
        ),
    ] = None,
) -> IfMatch | None:
    return IfMatch.parse(if_match)


IfMatchHeader = Annotated[IfMatch | None, Depends(get_if_match)]


# For the routes' `openapi_extra`: the query parameters are read by hand (query_params.py).
LIST_QUERY_DOCS = {"parameters": openapi_parameters(TaskListParams)}
BOARD_QUERY_DOCS = {"parameters": openapi_parameters(BoardParams)}
PAGE_QUERY_DOCS = {"parameters": openapi_parameters(PageParams)}


async def get_list_request(request: Request) -> listing.ListRequest:
    """The list's parameters; a cursor that is not usable here (forged, tampered, signed with
    another key, made for another sort or filters) is 422 `invalid_cursor`, so a client can tell
    it from its own bad parameters and start again from the first page."""
    params = parse_query(TaskListParams, request.query_params)
    ctx: TasksContext = request.app.state.ctx
    try:
        return listing.prepare(ctx, params)
    except InvalidCursor as exc:
        raise ApiError(
            422,
            "invalid_cursor",
            f"Invalid cursor: {exc}",
            errors=[{"loc": ("query", "cursor"), "msg": str(exc), "type": "value_error"}],
        ) from None


async def get_board_params(request: Request) -> BoardParams:
    return parse_query(BoardParams, request.query_params)


async def get_page_params(request: Request) -> PageParams:
    return parse_query(PageParams, request.query_params)


ListRequest = Annotated[listing.ListRequest, Depends(get_list_request)]
BoardQuery = Annotated[BoardParams, Depends(get_board_params)]
PageQuery = Annotated[PageParams, Depends(get_page_params)]


async def get_path_user(user_id: uuid.UUID, caller: Caller) -> Principal:
    """For the per-user URL family: `{user_id}` must be the caller's own id."""
    if user_id != caller.user_id:
        raise ApiError(403, "user_mismatch", "The user id in the URL is not the token's user")
    return caller


PathUser = Annotated[Principal, Depends(get_path_user)]
