"""The sync contract: change entries (`GET /api/changes`, the events of `GET /api/events`),
their query parameters and stream tickets. Rendered straight to JSON (api/change_json.py);
these models document it and a test checks the bytes against them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks_service.schemas import BoardOut, ColumnOut, TaskOut

CURSOR_DESCRIPTION = "From `next_cursor` (or an event's `id`); omit to get the cursor of now"


class ChangeOut(BaseModel):
    cursor: str = Field(description="This entry's position in the log (opaque)")
    type: Literal["task", "board", "column"]
    op: Literal["upsert", "delete"] = Field(
        description="`upsert`: `data` is the whole object as it now is; `delete`: a tombstone"
    )
    id: uuid.UUID
    version: int = Field(description="The object's version (its ETag) after this change")
    position: int | None = Field(
        description="Sort key among its siblings (cards of a column, columns of a board, "
        "boards): compare, never compute; null for a tombstone"
    )
    changed_at: datetime
    data: TaskOut | BoardOut | ColumnOut | None = Field(
        description="The object as `GET` shows it; null for a tombstone"
    )


class ChangesPage(BaseModel):
    changes: list[ChangeOut] = Field(description="In commit order")
    next_cursor: str = Field(description="Where to continue; the same cursor when nothing changed")
    has_more: bool = Field(description="More changes are waiting: ask again at once")


class ChangesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: str | None = Field(None, max_length=32, description=CURSOR_DESCRIPTION)
    limit: int = Field(100, ge=1, le=1000)


class EventsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket: str | None = Field(
        None,
        max_length=128,
        description="A stream ticket (POST /api/events/tickets), for EventSource, which cannot "
        "send an Authorization header; single use",
    )
    last_event_id: str | None = Field(
        None,
        max_length=32,
        description="Resume after this event id (as the Last-Event-ID header, which wins); "
        "for a new EventSource after a reconnect",
    )


class StreamTicket(BaseModel):
    ticket: str = Field(description="Pass as `?ticket=` to GET /api/events, once")
    expires_in: int = Field(description="Seconds left to use it")
