"""Refresh sessions: one per login, holding the family of rotated refresh tokens.

Every exchange spends the presented token and adds its successor to the same family. A spent
token presented again means two parties hold the family (one of them a thief, and we cannot
tell which), so the whole family is revoked.
"""

from __future__ import annotations

import enum
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.context import AuthContext
from auth_service.core.access_tokens import issue_access_token
from auth_service.models import RefreshSession, User
from auth_service.repositories import refresh_rotation, refresh_tokens
from auth_service.repositories.refresh_rotation import LockedRefresh
from auth_service.repositories.refresh_tokens import hash_token
from auth_service.schemas import TokenPair
from auth_service.services.access import unauthorized
from taskgate_common.errors import ApiError

REFRESH_TOKEN_BYTES = 32  # 256 bits of randomness

logger = logging.getLogger("taskgate.auth.sessions")


class RefreshFailure(enum.Enum):
    INVALID = ("invalid", "invalid_refresh_token", "The refresh token is not valid; log in again")
    USER_INACTIVE = ("user_inactive", "user_inactive", "This account is deactivated")
    REUSED = (
        "reused",
        "refresh_token_reused",
        "This refresh token was already used; its session is revoked, log in again",
    )
    REVOKED = ("revoked", "refresh_token_revoked", "The session was ended; log in again")
    EXPIRED = ("expired", "refresh_token_expired", "The session has expired; log in again")

    def __init__(self, result: str, code: str, detail: str) -> None:
        self.result = result
        self.code = code
        self.detail = detail

    def error(self) -> ApiError:
        return unauthorized(self.code, self.detail)


async def _new_pair(
    db: AsyncSession,
    ctx: AuthContext,
    user: User,
    family: RefreshSession,
    now: datetime,
    refresh_expires_at: datetime,
) -> TokenPair:
    refresh_token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    await refresh_tokens.add_token(
        db, session_id=family.id, token=refresh_token, expires_at=refresh_expires_at
    )
    return _pair(
        ctx,
        user.id,
        user.role.value,
        user.token_version,
        family.id,
        refresh_token,
        now,
        refresh_expires_at,
    )


def _rotated_pair(
    ctx: AuthContext, locked: LockedRefresh, successor: str, now: datetime, expires_at: datetime
) -> TokenPair:
    return _pair(
        ctx,
        locked.user_id,
        locked.user_role.value,
        locked.user_token_version,
        locked.session_id,
        successor,
        now,
        expires_at,
    )


def _pair(
    ctx: AuthContext,
    user_id: uuid.UUID,
    role: str,
    token_version: int,
    session_id: uuid.UUID,
    refresh_token: str,
    now: datetime,
    refresh_expires_at: datetime,
) -> TokenPair:
    """A new access token next to a refresh token already stored."""
    settings = ctx.settings
    access_token = issue_access_token(
        ctx.keys,
        issuer=settings.issuer,
        audience=settings.token_audience,
        subject=user_id,
        session_id=session_id,
        role=role,
        token_version=token_version,
        ttl_seconds=settings.access_token_ttl_seconds,
        now=int(now.timestamp()),
    )
    ctx.metrics.tokens_issued.labels(type="access").inc()
    ctx.metrics.tokens_issued.labels(type="refresh").inc()
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
        refresh_expires_in=max(0, int((refresh_expires_at - now).total_seconds())),
    )


def _refresh_expiry(ctx: AuthContext, now: datetime, family_started: datetime) -> datetime:
    """A token lives the refresh TTL, but never past the login's absolute lifetime."""
    settings = ctx.settings
    return min(
        now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        family_started + timedelta(seconds=settings.session_max_age_seconds),
    )


async def start_session(db: AsyncSession, ctx: AuthContext, user: User) -> TokenPair:
    """Open a new family for `user` and return its first token pair (caller commits)."""
    now = datetime.now(UTC)
    expires_at = _refresh_expiry(ctx, now, now)
    family = await refresh_tokens.add_session(db, user_id=user.id, expires_at=expires_at)
    return await _new_pair(db, ctx, user, family, now, expires_at)


def _failure(locked: LockedRefresh | None, now: datetime) -> RefreshFailure | None:
    if locked is None:
        return RefreshFailure.INVALID
    if not locked.user_is_active:
        return RefreshFailure.USER_INACTIVE
    if locked.token_spent_at is not None:
        return RefreshFailure.REUSED
    if locked.session_revoked_at is not None:
        return RefreshFailure.REVOKED
    if locked.token_expires_at <= now or locked.session_expires_at <= now:
        return RefreshFailure.EXPIRED
    return None


async def refresh(ctx: AuthContext, token: str) -> TokenPair:
    """Exchange a refresh token for a new pair, or raise the 401 that says why not."""
    now = datetime.now(UTC)
    pair: TokenPair | None = None
    async with ctx.db.transaction() as db:
        locked = await refresh_rotation.lock_by_hash(db, hash_token(token))
        failure = _failure(locked, now)
        if locked is not None and failure is RefreshFailure.REUSED:
            if await refresh_rotation.revoke_session(db, locked.session_id, now, "reuse"):
                ctx.metrics.sessions_revoked.labels(reason="reuse").inc()
        elif locked is not None and failure is None:
            expires_at = _refresh_expiry(ctx, now, locked.session_created_at)
            successor = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
            await refresh_rotation.rotate(db, locked, now, expires_at, hash_token(successor))
            pair = _rotated_pair(ctx, locked, successor, now, expires_at)
    # Committed: a reuse revocation must stick even though the answer is an error.
    if failure is not None:
        ctx.metrics.refreshes.labels(result=failure.result).inc()
        if failure is RefreshFailure.REUSED:
            ctx.metrics.refresh_reuse_detected.inc()
            assert locked is not None
            logger.warning(
                "refresh token reuse detected; session revoked",
                extra={"user_id": str(locked.user_id), "session_id": str(locked.session_id)},
            )
        raise failure.error()
    assert pair is not None
    ctx.metrics.refreshes.labels(result="success").inc()
    return pair


async def logout(ctx: AuthContext, token: str | None) -> None:
    """Revoke the family `token` belongs to, whatever its state; silent about unknown tokens."""
    if not token:
        return
    now = datetime.now(UTC)
    async with ctx.sessions() as db, db.begin():
        session_id = await refresh_tokens.session_id_of(db, hash_token(token))
        revoked = (
            await refresh_tokens.revoke_session(db, session_id, now, "logout")
            if session_id is not None
            else 0
        )
    if revoked:
        ctx.metrics.sessions_revoked.labels(reason="logout").inc()
