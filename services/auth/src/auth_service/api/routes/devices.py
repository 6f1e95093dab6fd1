"""Devices: a user's live logins, listed and ended one by one (and the same for admins)."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, Query, Response, status

from auth_service.api import PREFIX
from auth_service.api.deps import AdminUser, Context, CurrentUser
from auth_service.models import RefreshSession
from auth_service.schemas import SessionOut, SessionPage
from auth_service.services import refresh_sessions
from taskgate_common.bearer_auth import bearer_token
from taskgate_common.errors import error_responses

router = APIRouter(prefix=PREFIX, tags=["devices"])

MAX_PAGE = 100
DEVICE_MAX_CHARS = 64

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


async def get_caller_session(
    _: CurrentUser, token: Annotated[str | None, Depends(bearer_token)]
) -> uuid.UUID | None:
    """The session (`sid`) of the caller's access token.

    `CurrentUser` has verified the token (signature, claims, revocation) before this runs, so
    reading a claim of it without verifying again is safe; the verification itself stays in
    `services/access.py`. FastAPI resolves both dependencies once per request.
    """
    if token is None:  # pragma: no cover - CurrentUser has refused it already
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        return uuid.UUID(str(claims["sid"]))
    except (jwt.PyJWTError, KeyError, ValueError):
        return None


CallerSession = Annotated[uuid.UUID | None, Depends(get_caller_session)]


# -- describing a User-Agent -------------------------------------------------------------------

_PRODUCT = re.compile(r"([A-Za-z][\w.+-]*)/[\w.+-]+")
_BROWSERS = (  # the first product present names the browser (they all claim to be the others)
    (("Edg", "EdgA", "EdgiOS", "Edge"), "Edge"),
    (("OPR", "OPT", "Opera"), "Opera"),
    (("SamsungBrowser",), "Samsung Internet"),
    (("Vivaldi",), "Vivaldi"),
    (("YaBrowser",), "Yandex Browser"),
    (("Firefox", "FxiOS"), "Firefox"),
    (("CriOS", "Chrome"), "Chrome"),
    (("Chromium",), "Chromium"),
)
_SYSTEMS = (  # in this order: Android says Linux, iOS says "like Mac OS X"
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def describe_user_agent(user_agent: str | None) -> str | None:
    """A short name for a client from its `User-Agent`: "Firefox on Linux", "Chrome on
    Android", "Safari on iOS", "curl", "python-httpx"; None when there was no header.

    Deliberately small: browsers by the product tokens they send, the system from the
    comment, anything else by its first product token. The stored header is kept whole
    (256 characters), so a better description never needs the data again.
    """
    if not user_agent:
        return None
    products: list[str] = _PRODUCT.findall(user_agent)
    names = set(products)
    browser = next((label for tokens, label in _BROWSERS if names & set(tokens)), None)
    if browser is None and "Safari" in names and "Version" in names:
        browser = "Safari"
    system = next((label for marker, label in _SYSTEMS if marker in user_agent), None)
    if browser is None and products and products[0] != "Mozilla":
        return products[0][:DEVICE_MAX_CHARS]  # a tool or an app: curl/8.5, okhttp/4.12
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system
    return (products[0] if products else user_agent.split()[0])[:DEVICE_MAX_CHARS]


def _out(row: RefreshSession, current: uuid.UUID | None) -> SessionOut:
    return SessionOut(
        id=row.id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        device=describe_user_agent(row.user_agent),
        client_address=row.client_address,
        current=row.id == current,
    )


def _page(
    rows: list[RefreshSession], total: int, current: uuid.UUID | None, limit: int, offset: int
) -> SessionPage:
    return SessionPage(
        items=[_out(row, current) for row in rows], total=total, limit=limit, offset=offset
    )


# -- the caller's own logins -------------------------------------------------------------------


@router.get(
    "/sessions",
    response_model=SessionPage,
    summary="Your live logins (devices), most recently used first",
    responses=error_responses(401, 422, 503),
)
async def list_my_sessions(
    ctx: Context,
    user: CurrentUser,
    current: CallerSession,
    limit: Limit = 50,
    offset: Offset = 0,
) -> SessionPage:
    rows, total = await refresh_sessions.list_sessions(ctx, user.id, limit=limit, offset=offset)
    return _page(rows, total, current, limit, offset)


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="End one of your logins (this one too, if you name it); the others stay",
    responses=error_responses(401, 404, 422, 503),
)
async def end_my_session(session_id: uuid.UUID, ctx: Context, user: CurrentUser) -> Response:
    await refresh_sessions.end_session(ctx, user.id, session_id, reason="device_revoked")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- any user's logins (admin) -----------------------------------------------------------------


@router.get(
    "/users/{user_id}/sessions",
    response_model=SessionPage,
    summary="A user's live logins, most recently used first (admin)",
    responses=error_responses(401, 403, 404, 422, 503),
)
async def list_user_sessions(
    user_id: uuid.UUID,
    ctx: Context,
    _: AdminUser,
    current: CallerSession,
    limit: Limit = 50,
    offset: Offset = 0,
) -> SessionPage:
    rows, total = await refresh_sessions.list_sessions(
        ctx, user_id, limit=limit, offset=offset, check_user=True
    )
    return _page(rows, total, current, limit, offset)


@router.delete(
    "/users/{user_id}/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="End one login of a user (admin)",
    responses=error_responses(401, 403, 404, 422, 503),
)
async def end_user_session(
    user_id: uuid.UUID, session_id: uuid.UUID, ctx: Context, _: AdminUser
) -> Response:
    await refresh_sessions.end_session(
        ctx, user_id, session_id, reason="admin_revoked", check_user=True
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
