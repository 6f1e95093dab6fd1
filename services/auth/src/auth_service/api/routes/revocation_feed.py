"""`GET /revocations`: the revocation feed, at the service root like `/health` and `/metrics`.

Outside `/auth`, so the gateway never routes it (its `not-found` router answers a JSON 404 for
everything outside `/auth` and `/api`): only what reaches the service's own port (the tasks
service, operators) reads it. It names session and user ids; set `AUTH_REVOCATIONS_TOKEN` to
require a shared bearer secret as well (docs/sessions.md, docs/decisions.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field

from auth_service.repositories.revocations import START, Cursor
from auth_service.services.revocation_feed import MAX_PAGE, RevocationFeed, UnknownCursor
from taskgate_common.errors import ApiError, ErrorBody, error_responses

# Service to service, at the root: not routed by the gateway, so not in the public document
# (docs/operations.md describes it).
router = APIRouter(tags=["revocations"], include_in_schema=False)

CURSOR_PATTERN = r"^\d{1,20}-\d{1,19}$"
_MAX_SEQ = 2**63 - 1
_MAX_TXID = 2**64 - 1


class RevocationEntry(BaseModel):
    seq: int = Field(description="The entry's number (unique; not the reading order)")
    kind: Literal["session", "user"]
    user_id: uuid.UUID
    session_id: uuid.UUID | None = Field(
        description="`session`: the revoked login (the access token's `sid`)"
    )
    token_version: int | None = Field(
        description="`user`: tokens with a lower `ver` are revoked (and with this one too "
        "when `is_active` is false)"
    )
    is_active: bool | None = Field(description="`user`: false when deactivated or deleted")
    created_at: datetime = Field(description="When the revoking transaction began")


class RevocationPage(BaseModel):
    entries: list[RevocationEntry]
    next: str = Field(
        description="Pass as `after` to read on (the request's own cursor when no entry came)"
    )
    more: bool = Field(description="The page is full: ask again at once")
    retention_seconds: int = Field(
        description="Entries are kept this long; a reader may forget an entry after it"
    )


def _cursor(after: str | None) -> Cursor:
    if after is None:
        return START
    txid, _, seq = after.partition("-")  # the pattern has checked the shape
    if int(txid) > _MAX_TXID or int(seq) > _MAX_SEQ:
        raise ApiError(
            422,
            "invalid_cursor",
            "Invalid cursor: out of range",
            errors=[{"loc": ("query", "after"), "msg": "out of range", "type": "value_error"}],
        )
    return Cursor(int(txid), int(seq))


@router.get(
    "/revocations",
    response_model=RevocationPage,
    summary="What was revoked since `after`: for verifiers (not routed by the gateway)",
    responses={
        **error_responses(422, 503),
        401: {
            "model": ErrorBody,
            "description": "AUTH_REVOCATIONS_TOKEN is set and the bearer secret is wrong",
        },
        410: {
            "model": ErrorBody,
            "description": "The cursor is not from this feed: read again without `after`",
        },
    },
)
async def revocations(
    request: Request,
    response: Response,
    after: Annotated[
        str | None,
        Query(
            max_length=41,
            pattern=CURSOR_PATTERN,
            description="The previous page's `next`; absent: every entry still kept",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> RevocationPage:
    feed: RevocationFeed = request.app.state.revocation_feed
    metrics = request.app.state.ctx.metrics
    if not feed.authorized(authorization):
        metrics.revocation_feed_requests.labels(result="unauthorized").inc()
        raise ApiError(
            401,
            "invalid_token",
            "This feed needs the shared bearer secret",
            {"WWW-Authenticate": 'Bearer realm="revocations"'},
        )
    cursor = _cursor(after)
    try:
        page = await feed.page(cursor, limit)
    except UnknownCursor:
        metrics.revocation_feed_requests.labels(result="cursor_unknown").inc()
        raise ApiError(
            410,
            "revocation_cursor_unknown",
            "This cursor is not from this feed; read it again from the start (without `after`)",
        ) from None
    metrics.revocation_feed_requests.labels(result="ok").inc()
    response.headers["Cache-Control"] = "no-store"
    return RevocationPage(
        entries=[
            RevocationEntry(
                seq=entry.seq,
                kind="session" if entry.kind == "session" else "user",
                user_id=entry.user_id,
                session_id=entry.session_id,
                token_version=entry.token_version,
                is_active=entry.is_active,
                created_at=entry.created_at,
            )
            for entry in page.entries
        ],
        next=str(page.next),
        more=page.more,
        retention_seconds=page.retention_seconds,
    )
