"""SQL for the `users` table."""

from __future__ import annotations

import uuid

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.models import Role, User

EMAIL_INDEX = "uq_users_email_lower"
USERNAME_INDEX = "uq_users_username_lower"


async def get(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def find_by_login(session: AsyncSession, identifier: str) -> User | None:
    """By username, or by email when the identifier has an `@` (usernames cannot)."""
    column = User.email if "@" in identifier else User.username
    result = await session.execute(select(User).where(func.lower(column) == identifier.lower()))
    return result.scalar_one_or_none()


async def taken_fields(session: AsyncSession, email: str, username: str) -> set[str]:
    """Which of `email` and `username` already belong to an account, ignoring case."""
    result = await session.execute(
        select(User.email, User.username).where(
            or_(
                func.lower(User.email) == email.lower(),
                func.lower(User.username) == username.lower(),
            )
        )
    )
    taken: set[str] = set()
    for row_email, row_username in result.all():
        if row_email.lower() == email.lower():
            taken.add("email")
        if row_username.lower() == username.lower():
            taken.add("username")
    return taken


async def add(
    session: AsyncSession, *, email: str, username: str, password_hash: str, role: Role
) -> User:
    user = User(email=email, username=username, password_hash=password_hash, role=role)
    session.add(user)
    await session.flush()
    await session.refresh(user)
    return user


async def set_password_hash(session: AsyncSession, user_id: uuid.UUID, password_hash: str) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(password_hash=password_hash)
    )


def violated_unique_field(exc: IntegrityError) -> str | None:
    """`email` or `username` when an insert lost a race on one of the unique indexes."""
    cause = getattr(exc.orig, "__cause__", None)
    constraint = getattr(cause, "constraint_name", None) or str(exc.orig)
    if EMAIL_INDEX in constraint:
        return "email"
    if USERNAME_INDEX in constraint:
        return "username"
    return None
