"""Admin-only account management."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from auth_service.api import PREFIX
from auth_service.api.deps import AdminUser, Context
from auth_service.schemas import AdminCreateUserRequest, AdminUpdateUserRequest, UserOut, UserPage
from auth_service.services import user_admin
from taskgate_common.errors import error_responses
from taskgate_common.openapi_document import response_headers

router = APIRouter(prefix=f"{PREFIX}/users", tags=["users (admin)"])

MAX_PAGE = 100


@router.get(
    "",
    response_model=UserPage,
    summary="List users, oldest first (admin)",
    responses=error_responses(401, 403, 422, 503),
)
async def list_users(
    ctx: Context,
    _: AdminUser,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> UserPage:
    items, total = await user_admin.list_users(ctx, limit=limit, offset=offset)
    return UserPage(
        items=[UserOut.model_validate(user) for user in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    summary="Create a user with a role (admin)",
    responses={201: response_headers("Location"), **error_responses(401, 403, 409, 422, 503)},
)
async def create_user(
    body: AdminCreateUserRequest, ctx: Context, _: AdminUser, response: Response
) -> UserOut:
    user = await user_admin.create_user(ctx, body)
    response.headers["Location"] = f"{ctx.settings.issuer}/users/{user.id}"
    return UserOut.model_validate(user)


@router.get(
    "/{user_id}",
    response_model=UserOut,
    summary="One user (admin)",
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_user(user_id: uuid.UUID, ctx: Context, _: AdminUser) -> UserOut:
    return UserOut.model_validate(await user_admin.get_user(ctx, user_id))


@router.patch(
    "/{user_id}",
    response_model=UserOut,
    summary="Change a user's role or deactivate/reactivate him (admin)",
    responses=error_responses(400, 401, 403, 404, 422, 503),
)
async def update_user(
    user_id: uuid.UUID, body: AdminUpdateUserRequest, ctx: Context, _: AdminUser
) -> UserOut:
    return UserOut.model_validate(await user_admin.update_user(ctx, user_id, body))
