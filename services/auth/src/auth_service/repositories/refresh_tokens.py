"""SQL for refresh sessions (token families) and the refresh tokens in them.

The exchange itself (lock, spend, add the successor) is in `refresh_rotation.py`.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.models import RefreshSession, RefreshToken


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
