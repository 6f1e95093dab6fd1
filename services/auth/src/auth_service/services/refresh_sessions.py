"""Refresh sessions: one per login, holding the family of rotated refresh tokens."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.context import AuthContext
from auth_service.core.access_tokens import issue_access_token
from auth_service.models import User
from auth_service.repositories import refresh_tokens
from auth_service.schemas import TokenPair

REFRESH_TOKEN_BYTES = 32  # 256 bits of randomness


async def start_session(db: AsyncSession, ctx: AuthContext, user: User) -> TokenPair:
    """Open a new family for `user` and return its first token pair (caller commits)."""
    settings = ctx.settings
    now = datetime.now(UTC)
    refresh_ttl = timedelta(seconds=settings.refresh_token_ttl_seconds)
    family = await refresh_tokens.add_session(db, user_id=user.id, expires_at=now + refresh_ttl)
    refresh_token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    await refresh_tokens.add_token(
        db, session_id=family.id, token=refresh_token, expires_at=now + refresh_ttl
    )
    access_token = issue_access_token(
        ctx.keys,
        issuer=settings.issuer,
        audience=settings.token_audience,
        subject=user.id,
        session_id=family.id,
        role=user.role.value,
        token_version=user.token_version,
        ttl_seconds=settings.access_token_ttl_seconds,
        now=int(now.timestamp()),
    )
    ctx.metrics.tokens_issued.labels(type="access").inc()
    ctx.metrics.tokens_issued.labels(type="refresh").inc()
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
        refresh_expires_in=settings.refresh_token_ttl_seconds,
    )
