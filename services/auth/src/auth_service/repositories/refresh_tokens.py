"""SQL for refresh sessions (token families) and the refresh tokens in them."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

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
