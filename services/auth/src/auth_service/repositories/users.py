"""SQL for the `users` table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.core.identity_keys import identity_key, is_email
from auth_service.models import RefreshSession, Role, User

EMAIL_INDEX = "uq_users_email_key"
USERNAME_INDEX = "uq_users_username_key"


async def get(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def find_by_login(session: AsyncSession, identifier: str) -> User | None:
    """By username, or by email when the identifier has an `@` (usernames cannot)."""
    key = identity_key(identifier)
    if "\x00" in key:
        # PostgreSQL text cannot hold NUL, and no account has one (usernames and emails are
        # validated on the way in): such an identifier matches nobody.
        return None
    column = User.email_key if is_email(key) else User.username_key
    result = await session.execute(select(User).where(column == key))
    return result.scalar_one_or_none()


async def find_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email_key == identity_key(email)))
    return result.scalar_one_or_none()


async def get_for_update(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    result = await session.execute(
        select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def get_with_session_state(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID | None
) -> tuple[User, bool] | None:
    """The user, and whether the login session `session_id` is still live (one query).

    Fails closed: a session that was revoked, or that no longer exists at all (purged after
    its logout or reuse detection), is not live, so its access tokens stop working.
    """
    live = (
        select(RefreshSession.id)
        .where(
            RefreshSession.id == session_id,
            RefreshSession.user_id == User.id,
            RefreshSession.revoked_at.is_(None),
        )
        .exists()
    )
    result = await session.execute(select(User, live).where(User.id == user_id))
    row = result.one_or_none()
    if row is None:
        return None
    user, session_live = row
    return user, bool(session_live)


async def taken_fields(
    session: AsyncSession,
    email: str | None,
    username: str | None,
    exclude: uuid.UUID | None = None,
) -> set[str]:
    """Which of `email` and `username` already belong to another account (by identity key)."""
    email_key = identity_key(email) if email is not None else None
    username_key = identity_key(username) if username is not None else None
    conditions = []
    if email_key is not None:
        conditions.append(User.email_key == email_key)
    if username_key is not None:
        conditions.append(User.username_key == username_key)
    if not conditions:
        return set()
    query = select(User.email_key, User.username_key).where(or_(*conditions))
    if exclude is not None:
        query = query.where(User.id != exclude)
    taken: set[str] = set()
    for row_email_key, row_username_key in (await session.execute(query)).all():
        if row_email_key == email_key:
            taken.add("email")
        if row_username_key == username_key:
            taken.add("username")
    return taken


async def page(session: AsyncSession, *, limit: int, offset: int) -> tuple[list[User], int]:
    """One page of users, oldest first, and the total number of users."""
    total = (await session.execute(select(func.count()).select_from(User))).scalar_one()
    result = await session.execute(
        select(User).order_by(User.created_at, User.id).limit(limit).offset(offset)
    )
    return list(result.scalars().all()), int(total)


async def lock_active_admins(session: AsyncSession) -> list[uuid.UUID]:
    """Ids of the active admins, locked: concurrent demotions cannot remove the last one."""
    result = await session.execute(
        select(User.id)
        .where(User.role == Role.ADMIN, User.is_active.is_(True))
        .order_by(User.id)
        .with_for_update()
    )
    return list(result.scalars().all())


async def admin_exists(session: AsyncSession) -> bool:
    result = await session.execute(select(User.id).where(User.role == Role.ADMIN).limit(1))
    return result.first() is not None


async def add(
    session: AsyncSession,
    *,
    email: str,
    username: str,
    password_hash: str,
    role: Role,
    email_verified: bool = False,
) -> User:
    user = User(
        email=email,
        email_key=identity_key(email),
        username=username,
        username_key=identity_key(username),
        password_hash=password_hash,
        role=role,
        email_verified=email_verified,
    )
    session.add(user)
    await session.flush()
    await session.refresh(user)
    return user


async def set_password_hash(session: AsyncSession, user_id: uuid.UUID, password_hash: str) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(password_hash=password_hash)
    )


async def update_fields(
    session: AsyncSession, user_id: uuid.UUID, *, bump_token_version: bool = False, **values: Any
) -> User | None:
    """Change the given columns (and optionally invalidate access tokens); the updated user.

    A new email or username brings its identity key along, so the two never disagree.
    """
    if "email" in values:
        values["email_key"] = identity_key(values["email"])
    if "username" in values:
        values["username_key"] = identity_key(values["username"])
    if bump_token_version:
        values["token_version"] = User.token_version + 1
    values["updated_at"] = func.now()
    result = await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(**values)
        .returning(User)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


def violated_unique_field(exc: IntegrityError) -> str | None:
    """`email` or `username` when an insert lost a race on one of the unique indexes."""
    cause = getattr(exc.orig, "__cause__", None)
    constraint = getattr(cause, "constraint_name", None) or str(exc.orig)
    if EMAIL_INDEX in constraint:
        return "email"
    if USERNAME_INDEX in constraint:
        return "username"
    return None
