"""FastAPI dependencies: the app context, the bearer token and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from auth_service.context import AuthContext
from auth_service.models import User
from auth_service.services.access import current_user, require_admin, unauthorized
from taskgate_common.bearer_auth import bearer_token


# `async def` although it does not await: FastAPI runs plain `def` dependencies in a worker
# thread, a hand-off that costs more than the work itself.
async def get_context(request: Request) -> AuthContext:
    ctx: AuthContext = request.app.state.ctx
    return ctx


Context = Annotated[AuthContext, Depends(get_context)]


async def get_current_user(
    ctx: Context, token: Annotated[str | None, Depends(bearer_token)]
) -> User:
    if not token:
        raise unauthorized(
            "not_authenticated", "A Bearer access token is required", "invalid_request"
        )
    return await current_user(ctx, token)


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    return require_admin(user)


AdminUser = Annotated[User, Depends(get_admin_user)]

CookieMode = Annotated[
    bool,
    Query(
        description="Browser mode: set the refresh token as an HttpOnly cookie (Path=/auth) "
        "instead of returning it in the body",
    ),
]
