"""Refresh, logout, logout everywhere, and changing the password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status

from auth_service.api import PREFIX
from auth_service.api.cookies import (
    clear_refresh_cookie,
    clearing_header,
    missing_token_detail,
    refuse_cross_site,
    set_refresh_cookie,
    token_from,
)
from auth_service.api.deps import Context, CookieMode, CurrentUser
from auth_service.schemas import ChangePasswordRequest, RefreshRequest, TokenPair
from auth_service.services import account_security, refresh_sessions
from auth_service.services.access import unauthorized
from taskgate_common.errors import ApiError, error_responses

router = APIRouter(prefix=PREFIX, tags=["sessions"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

OptionalRefresh = Annotated[RefreshRequest | None, Body()]


@router.post(
    "/refresh",
    response_model=TokenPair,
    response_model_exclude_none=True,
    summary="Exchange a refresh token (body or cookie) for a new token pair",
    responses=error_responses(401, 403, 422, 429, 503),
)
async def refresh(
    ctx: Context,
    request: Request,
    response: Response,
    cookie: CookieMode = False,
    body: OptionalRefresh = None,
) -> TokenPair:
    response.headers.update(NO_STORE)
    if cookie:
        refuse_cross_site(request, ctx.settings)
    token, from_cookie = token_from(request, ctx.settings, body.refresh_token if body else None)
    if token is None:
        await ctx.limits.refresh_ip(request)  # counted like any refresh
        raise unauthorized(
            "refresh_token_missing",
            missing_token_detail(request),
            "invalid_request",
        )
    try:
        # Counts the refresh rate limits itself (per IP, then per family inside the exchange).
        pair = await refresh_sessions.refresh(ctx, request, token)
    except ApiError as exc:
        if from_cookie and exc.status_code == 401:  # the cookie is dead: let the browser drop it
            exc.headers.update(clearing_header(ctx.settings))
        raise
    if cookie or from_cookie:
        return set_refresh_cookie(response, ctx.settings, pair)
    return pair


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="End the session of a refresh token (body or cookie); 204 whatever the token",
    responses=error_responses(403, 422, 503),
)
async def logout(ctx: Context, request: Request, body: OptionalRefresh = None) -> Response:
    token, _ = token_from(request, ctx.settings, body.refresh_token if body else None)
    await refresh_sessions.logout(ctx, token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_refresh_cookie(response, ctx.settings)
    return response


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="End every session of the current user and invalidate his access tokens",
    responses=error_responses(401, 503),
)
async def logout_all(ctx: Context, user: CurrentUser) -> Response:
    await account_security.logout_all(ctx, user)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_refresh_cookie(response, ctx.settings)
    return response


async def _change_password(
    ctx: Context, request: Request, user: CurrentUser, body: ChangePasswordRequest
) -> Response:
    await account_security.change_password(
        ctx, request, user, body.current_password, body.new_password
    )
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_refresh_cookie(response, ctx.settings)
    return response


router.add_api_route(
    "/change-password",
    _change_password,
    methods=["POST"],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Change the password; ends every session (log in again with the new one)",
    responses=error_responses(401, 422, 429, 503),
    operation_id="changePassword",
)
router.add_api_route(
    "/users/me/password",
    _change_password,
    methods=["POST"],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Alias of POST /auth/change-password for /users/me/password-style clients",
    responses=error_responses(401, 422, 429, 503),
    operation_id="changeMyPassword",
)
