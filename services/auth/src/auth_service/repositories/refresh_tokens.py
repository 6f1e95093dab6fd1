"""SQL for refresh sessions (token families) and the refresh tokens in them."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.models import RefreshSession, RefreshToken, User


def hash_token(token: str) -> bytes:
    """Tokens are stored as SHA-256: they are 256-bit random, so no slow hash is needed."""
    return hashlib.sha256(token.encode("utf-8")).digest()


async def add_session(
    session: AsyncSession, *, user_id: uuid.UUID, expires_at: datetime
) -> RefreshSession:
    family = RefreshSession(id=uuid.uuid4(), user_id=user_id, expires_at=expires_at)
    session.add(family)
    await session.flush()
    return family


async def add_token(
    session: AsyncSession, *, session_id: uuid.UUID, token: str, expires_at: datetime
) -> RefreshToken:
    row = RefreshToken(
        id=uuid.uuid4(), session_id=session_id, token_hash=hash_token(token), expires_at=expires_at
    )
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True)
class LockedToken:
    token: RefreshToken
    family: RefreshSession
    user: User


async def lock_by_hash(session: AsyncSession, token_hash: bytes) -> LockedToken | None:
    """The token, its family and its user; the token and family rows stay locked until commit.

    Concurrent exchanges of one token queue on the token row; when the first commits, the
    others read the row again and find it spent, so exactly one of them rotates it.
    """
    result = await session.execute(
        select(RefreshToken, RefreshSession, User)
        .join(RefreshSession, RefreshSession.id == RefreshToken.session_id)
        .join(User, User.id == RefreshSession.user_id)
        .where(RefreshToken.token_hash == token_hash)
        .with_for_update(of=[RefreshToken, RefreshSession])
        .execution_options(populate_existing=True)
    )
    row = result.one_or_none()
    if row is None:
        return None
    token, family, user = row
    return LockedToken(token, family, user)


async def spend(
    session: AsyncSession,
    locked: LockedToken,
    now: datetime,
    family_expires_at: datetime,
) -> None:
    """Mark the token used; the family lives on until its newest token expires."""
    await session.execute(
        update(RefreshToken).where(RefreshToken.id == locked.token.id).values(spent_at=now)
    )
    await session.execute(
        update(RefreshSession)
        .where(RefreshSession.id == locked.family.id)
        .values(expires_at=family_expires_at)
    )


async def session_id_of(session: AsyncSession, token_hash: bytes) -> uuid.UUID | None:
    result = await session.execute(
        select(RefreshToken.session_id).where(RefreshToken.token_hash == token_hash)
    )
    return result.scalar_one_or_none()


async def revoke_session(
    session: AsyncSession, session_id: uuid.UUID, now: datetime, reason: str
) -> int:
    """Revoke one family (a no-op when it already is); the number of families revoked."""
    result = await session.execute(
        update(RefreshSession)
        .where(RefreshSession.id == session_id, RefreshSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return _rowcount(result)


async def revoke_user_sessions(
    session: AsyncSession, user_id: uuid.UUID, now: datetime, reason: str
) -> int:
    result = await session.execute(
        update(RefreshSession)
        .where(RefreshSession.user_id == user_id, RefreshSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return _rowcount(result)


def _rowcount(result: object) -> int:
    count = getattr(result, "rowcount", 0)
    return int(count) if isinstance(count, int) and count > 0 else 0


async def purge_batch(session: AsyncSession, cutoff: datetime, limit: int) -> tuple[int, int]:
    """Delete up to `limit` families that expired or were revoked before `cutoff`.

    Rows another purge is deleting right now are skipped, so two runs never wait on each other.
    Returns (families deleted, tokens deleted).
    """
    doomed = (
        (
            await session.execute(
                select(RefreshSession.id)
                .where(or_(RefreshSession.expires_at < cutoff, RefreshSession.revoked_at < cutoff))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    if not doomed:
        return 0, 0
    tokens = await session.execute(delete(RefreshToken).where(RefreshToken.session_id.in_(doomed)))
    families = await session.execute(delete(RefreshSession).where(RefreshSession.id.in_(doomed)))
    return _rowcount(families), _rowcount(tokens)
