"""Managing accounts: the admin's user list and changes, and a user editing his own profile."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from auth_service.context import AuthContext
from auth_service.models import Role, User
from auth_service.repositories import sessions, users
from auth_service.schemas import AdminCreateUserRequest, AdminUpdateUserRequest, UpdateMeRequest
from auth_service.services import email_change, registration
from auth_service.services.password_checks import check_current_password
from taskgate_common.errors import ApiError


def _not_found() -> ApiError:
    return ApiError(404, "user_not_found", "No such user")


async def list_users(ctx: AuthContext, *, limit: int, offset: int) -> tuple[list[User], int]:
    async with ctx.sessions() as db:
        return await users.page(db, limit=limit, offset=offset)


async def get_user(ctx: AuthContext, user_id: uuid.UUID) -> User:
    async with ctx.sessions() as db:
        user = await users.get(db, user_id)
    if user is None:
        raise _not_found()
    return user


async def create_user(ctx: AuthContext, request: AdminCreateUserRequest) -> User:
    return await registration.register(ctx, request, role=request.role)


async def update_user(
    ctx: AuthContext, user_id: uuid.UUID, changes: AdminUpdateUserRequest
) -> User:
    """Change role and/or `is_active`.

    Either change moves `token_version` on, so access tokens carrying the old role stop working
    here at once; deactivation also revokes every session. The last active admin cannot be
    demoted or deactivated, or nobody could manage accounts any more.
    """
    now = datetime.now(UTC)
    may_remove_admin = changes.role is Role.USER or changes.is_active is False
    revoked = 0
    async with ctx.sessions() as db, db.begin():
        # Admins are locked before the target (always in that order), so concurrent demotions
        # queue instead of deadlocking, and cannot both pass the last-admin check.
        admins = await users.lock_active_admins(db) if may_remove_admin else []
        user = await users.get_for_update(db, user_id)
        if user is None:
            raise _not_found()
        values: dict[str, Any] = {}
        if changes.role is not None and changes.role is not user.role:
            values["role"] = changes.role
        if changes.is_active is not None and changes.is_active != user.is_active:
            values["is_active"] = changes.is_active
        if not values:
            return user
        stays_admin = values.get("role", user.role) is Role.ADMIN and values.get(
            "is_active", user.is_active
        )
        if admins == [user.id] and not stays_admin:
            raise ApiError(
                400, "last_admin", "This is the last active admin; promote another user first"
            )
        updated = await users.update_fields(db, user.id, bump_token_version=True, **values)
        if values.get("is_active") is False:
            revoked = await sessions.revoke_user_sessions(db, user.id, now, "deactivated")
    ctx.metrics.sessions_revoked.labels(reason="deactivated").inc(revoked)
    assert updated is not None
    return updated


async def update_me(
    ctx: AuthContext, request: Request, user: User, changes: UpdateMeRequest
) -> User:
    """Change the username (registration's rules) and/or ask for a new email address.

    An email change needs the current password, checked before anything changes, and then
    waits for its confirmation (`email_change`); the username changes at once.
    """
    if changes.email is not None:
        assert changes.current_password is not None  # the schema requires it with an email
        await check_current_password(ctx, request, user, changes.current_password)
        await ctx.limits.account_mail(request, user)  # before anything changes
    if changes.username is not None and changes.username != user.username:
        user = await _rename(ctx, user, changes.username)
    if changes.email is not None:
        user = await email_change.request_change(ctx, user, changes.email)
    return user


async def _rename(ctx: AuthContext, user: User, username: str) -> User:
    async with ctx.sessions() as db:
        if await users.taken_fields(db, None, username, exclude=user.id):
            raise registration.taken("username")
    try:
        async with ctx.sessions() as db, db.begin():
            updated = await users.update_fields(db, user.id, username=username)
    except IntegrityError as exc:  # lost a race with another account taking the name
        field = users.violated_unique_field(exc)
        if field is None:
            raise
        raise registration.taken(field) from None
    if updated is None:  # deleted in between
        raise _not_found()
    return updated
