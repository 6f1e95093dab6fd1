"""SQL for the single-use tokens sent by mail (password reset, email verification)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.models import EmailToken, TokenPurpose, User
from auth_service.repositories.sessions import hash_token


async def replace(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    purpose: TokenPurpose,
    token: str,
    email: str,
    expires_at: datetime,
) -> None:
    """Store a new token for `user_id`, deleting every earlier one of the same purpose.

    So a user holds at most one live token per purpose, and unused rows never pile up. The user
    row is locked first: concurrent issues for one user queue, and the last one wins alone.
    """
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    await delete_for_user(session, user_id, purpose)
    session.add(
        EmailToken(
            id=uuid.uuid4(),
            user_id=user_id,
            purpose=purpose.value,
            token_hash=hash_token(token),
            email=email,
            expires_at=expires_at,
        )
    )
    await session.flush()


async def find(
    session: AsyncSession, token: str, purpose: TokenPurpose
) -> tuple[EmailToken, User] | None:
    """The token and its user, without consuming it (a cheap check before hashing)."""
    result = await session.execute(
        select(EmailToken, User)
        .join(User, User.id == EmailToken.user_id)
        .where(EmailToken.token_hash == hash_token(token), EmailToken.purpose == purpose.value)
    )
    row = result.one_or_none()
    return None if row is None else (row[0], row[1])


async def consume(session: AsyncSession, token: str, purpose: TokenPurpose) -> EmailToken | None:
    """Delete the token and return it: of two concurrent uses, exactly one gets the row."""
    result = await session.execute(
        delete(EmailToken)
        .where(EmailToken.token_hash == hash_token(token), EmailToken.purpose == purpose.value)
        .returning(EmailToken)
    )
    return result.scalar_one_or_none()


async def delete_for_user(
    session: AsyncSession, user_id: uuid.UUID, purpose: TokenPurpose | None = None
) -> None:
    """Kill the user's outstanding tokens (of one purpose, or all of them)."""
    query = delete(EmailToken).where(EmailToken.user_id == user_id)
    if purpose is not None:
        query = query.where(EmailToken.purpose == purpose.value)
    await session.execute(query)
