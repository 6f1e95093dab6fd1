"""Creating accounts: self-registration, admins creating users, and the first admin."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.context import AuthContext
from auth_service.core.passwords import PasswordHasher
from auth_service.models import Role, User
from auth_service.repositories import users
from auth_service.schemas import RegisterRequest
from auth_service.services import mail_jobs
from taskgate_common.errors import ApiError


def taken(field: str) -> ApiError:
    return ApiError(409, f"{field}_taken", f"That {field} is already taken")


async def create_account(
    sessions: async_sessionmaker[AsyncSession],
    hasher: PasswordHasher,
    request: RegisterRequest,
    role: Role = Role.USER,
    *,
    email_verified: bool = False,
) -> User:
    """Insert the account, or raise a 409 naming the field that is taken."""
    async with sessions() as db:
        taken_fields = await users.taken_fields(db, request.email, request.username)
    # Username first: it is what the user typed last-chosen and most likely to retry.
    for name in ("username", "email"):
        if name in taken_fields:
            raise taken(name)
    password_hash = await hasher.hash(request.password)
    try:
        async with sessions() as db, db.begin():
            return await users.add(
                db,
                email=request.email,
                username=request.username,
                password_hash=password_hash,
                role=role,
                email_verified=email_verified,
            )
    except IntegrityError as exc:  # lost a race with a concurrent registration
        field = users.violated_unique_field(exc)
        if field is None:
            raise
        raise taken(field) from None


async def register(ctx: AuthContext, request: RegisterRequest, role: Role = Role.USER) -> User:
    user = await create_account(ctx.sessions, ctx.hasher, request, role)
    ctx.metrics.registrations.inc()
    return user


async def sign_up(ctx: AuthContext, request: RegisterRequest) -> User:
    """Self-registration: the account, then (after commit, in the background) the mail with
    its verification link, when SMTP is configured."""
    user = await register(ctx, request)
    mail_jobs.schedule_verification(ctx, user.id)
    return user
