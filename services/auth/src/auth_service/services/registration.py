"""Registering a new account."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from auth_service.context import AuthContext
from auth_service.models import Role, User
from auth_service.repositories import users
from auth_service.schemas import RegisterRequest
from taskgate_common.errors import ApiError


def _taken(field: str) -> ApiError:
    return ApiError(409, f"{field}_taken", f"That {field} is already taken")


async def register(ctx: AuthContext, request: RegisterRequest, role: Role = Role.USER) -> User:
    async with ctx.sessions() as db:
        taken = await users.taken_fields(db, request.email, request.username)
    # Username first: it is what the user typed last-chosen and most likely to retry.
    for name in ("username", "email"):
        if name in taken:
            raise _taken(name)
    password_hash = await ctx.hasher.hash(request.password)
    try:
        async with ctx.sessions() as db, db.begin():
            user = await users.add(
                db,
                email=request.email,
                username=request.username,
                password_hash=password_hash,
                role=role,
            )
    except IntegrityError as exc:  # lost a race with a concurrent registration
        field = users.violated_unique_field(exc)
        if field is None:
            raise
        raise _taken(field) from None
    ctx.metrics.registrations.inc()
    return user
