"""`/api/events`: the caller's changes as Server-Sent Events, and the tickets that let a
browser's EventSource (which cannot send a header) open one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status
from fastapi.responses import StreamingResponse

from taskgate_common.bearer_auth import bearer_token
from taskgate_common.errors import error_responses
from tasks_service.api import PREFIX
from tasks_service.api.change_json import sse_frame
from tasks_service.api.deps import Caller, Context
from tasks_service.api.query_params import openapi_parameters, parse_query
from tasks_service.api.task_json import json_response
from tasks_service.change_schemas import EventsParams, StreamTicket
from tasks_service.core.access_tokens import Principal
from tasks_service.services import changes, event_streams
from tasks_service.services.access import authenticate

router = APIRouter(prefix=f"{PREFIX}/events", tags=["sync"])

STREAM_DESCRIPTION = """\
A `text/event-stream` of the caller's changes, the entries of `GET /api/changes`:

- `event: ready`, first, with `id` = the cursor the stream starts after;
- `event: change`, one per entry, `id` = its cursor, `data` = the entry (JSON);
- `: keep-alive` comments when idle (every `TASKS_EVENTS_HEARTBEAT_SECONDS`, 15 s);
- `event: end`, last, `data` = `{"code", "detail"}`: `token_expired`, `token_revoked`,
  `stream_max_age` or `server_shutdown`; reconnect (with a fresh token or ticket).

Authenticate with the `Authorization` header (fetch-based clients) or `?ticket=` (EventSource).
Resume with the `Last-Event-ID` header (EventSource sends it on its own reconnects) or
`?last_event_id=`: exactly the entries after it, once each; 410 `sync_expired` if too old.
"""


# One event of the stream, as an SSE parser gives it (`data` is JSON text: a ChangeOut for
# `change`, `{"cursor"}` for `ready`, `{"code", "detail"}` for `end`).
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["ready", "change", "end"]},
        "id": {"type": "string", "description": "The cursor after this event"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "retry": {"type": "integer", "description": "Reconnection delay, milliseconds"},
    },
    "required": ["event", "data"],
}


async def get_events_params(request: Request) -> EventsParams:
    return parse_query(EventsParams, request.query_params)


EventsQuery = Annotated[EventsParams, Depends(get_events_params)]


async def get_stream_caller(
    request: Request, token: Annotated[str | None, Depends(bearer_token)], params: EventsQuery
) -> Principal:
    """The Bearer token's caller, else the ticket's (spent now, once the query is known to be
    valid: a malformed request does not cost the client its ticket), else the usual 401."""
    ctx = request.app.state.ctx
    if token or not params.ticket:
        return await authenticate(ctx, token)
    return await event_streams.spend_ticket(ctx, params.ticket)


@router.get(
    "",
    summary="The caller's changes, live (Server-Sent Events)",
    description=STREAM_DESCRIPTION,
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": EVENT_SCHEMA}}},
        **error_responses(401, 410, 422, 429, 503),
    },
    openapi_extra={"parameters": openapi_parameters(EventsParams)},
)
async def stream_events(
    ctx: Context,
    params: EventsQuery,
    caller: Annotated[Principal, Depends(get_stream_caller)],
    last_event_id: Annotated[
        str | None, Header(max_length=32, description="Resume after this event id")
    ] = None,
) -> StreamingResponse:
    resume = last_event_id or params.last_event_id
    loc = ("header", "last-event-id") if last_event_id else ("query", "last_event_id")
    after = None if not resume else changes.parse_cursor(resume, loc)
    stream = event_streams.EventStream(ctx, caller, after, loc)
    await stream.open()

    async def frames() -> AsyncIterator[bytes]:
        async for item in stream.items():
            yield sse_frame(item)

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/tickets",
    status_code=status.HTTP_201_CREATED,
    response_model=StreamTicket,
    summary="A single-use ticket to open GET /api/events without an Authorization header",
    responses=error_responses(401, 429, 503),
)
async def create_stream_ticket(ctx: Context, caller: Caller) -> Response:
    ticket = await event_streams.issue_ticket(ctx, caller)
    ttl = int(ctx.settings.events_ticket_ttl_seconds)
    return json_response({"ticket": ticket, "expires_in": ttl}, status.HTTP_201_CREATED)
