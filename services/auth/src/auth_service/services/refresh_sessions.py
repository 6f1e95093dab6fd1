"""Refresh sessions: one per login, holding the family of rotated refresh tokens.

Every exchange spends the presented token and adds its successor to the same family. A spent
token presented again means two parties hold the family (one of them a thief, and we cannot
tell which), so the whole family is revoked, with one exception, the grace window: a token
rotated at most `AUTH_REFRESH_REUSE_GRACE_SECONDS` ago whose successor has not been used yet
is answered with that same successor (several tabs refreshing at once all go on with one
login). The successor is not stored in clear: it is derived, `base64url(HMAC-SHA256(the
family's rotation_secret, presented token))`, so the replay recomputes it, and every process
that exchanges one token arrives at the same successor (docs/sessions.md, "Concurrent refreshes").

The exchange, `refresh()`, is one transaction on a driver connection (docs/decisions.md, 16)
with one look-up. Its statements (round trips), whatever the outcome:

    BEGIN
    SELECT … FOR UPDATE OF t, s        the token, its family and user (`lock_by_hash`)
      -- per-family rate limit, keyed by the family the look-up found (no query of its own)
    rotation:      WITH … UPDATE … UPDATE … INSERT   (spend, extend + last use, successor)
    grace replay:  SELECT the successor's state      (read only)
    reuse:         UPDATE refresh_sessions            (revoke the family)
    COMMIT                                           (ROLLBACK when the family limit refused)

Four in every case (three for a token that is unknown or dead for another reason), on one
pooled connection; the per-IP limit is counted before, with no query. Before this, a limited
app first looked the family up through the ORM on a connection of its own (BEGIN, SELECT,
ROLLBACK: three more).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import ipaddress
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from auth_service.context import AuthContext
from auth_service.core.access_tokens import issue_access_token
from auth_service.models import RefreshSession, User
from auth_service.repositories import sessions, users
from auth_service.repositories.sessions import Connection, LockedRefresh, hash_token
from auth_service.schemas import TokenPair
from auth_service.services.access import unauthorized
from taskgate_common.errors import ApiError

REFRESH_TOKEN_BYTES = 32  # 256 bits of randomness
ROTATION_SECRET_BYTES = 32
USER_AGENT_MAX_CHARS = 256  # refresh_sessions.user_agent is varchar(256)

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


# ---------------------------------------------------------------------------------------------
# Where a login is used from (the devices list)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """What a login or a refresh records of its client: the `User-Agent` header (cleaned and
    truncated; described at read time) and the coarse client address."""

    user_agent: str | None = None
    address: str | None = None


def coarse_address(address: str) -> str | None:
    """The network a client address is in: IPv4 /24, IPv6 /48 (where it is, roughly, without
    keeping the exact address). None for an address the service could not tell."""
    try:
        network = ipaddress.ip_network(address, strict=False)
    except ValueError:
        return None
    prefix = 24 if network.version == 4 else 48
    if network.prefixlen > prefix:
        network = network.supernet(new_prefix=prefix)
    return str(network)


def _clean_user_agent(value: str | None) -> str | None:
    if not value:
        return None
    # A header is latin-1 text; PostgreSQL text cannot hold NUL, and nobody needs controls.
    printable = "".join(ch for ch in value if ch.isprintable()).strip()
    return printable[:USER_AGENT_MAX_CHARS] or None


def client_of(ctx: AuthContext, request: Request) -> ClientInfo:
    """The client of a request; the address as the rate limits see it (trusted proxies)."""
    return ClientInfo(
        user_agent=_clean_user_agent(request.headers.get("user-agent")),
        address=coarse_address(ctx.limits.client_ip(request.scope)),
    )


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


def successor_of(rotation_secret: bytes, token: str) -> str:
    """The refresh token that replaces `token` in its family: 256 bits, base64url like every
    refresh token, computable only with the family's secret (kept in the database)."""
    digest = hmac.new(rotation_secret, token.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _pair(
    ctx: AuthContext,
    user_id: uuid.UUID,
    role: str,
    token_version: int,
    session_id: uuid.UUID,
    refresh_token: str,
    now: datetime,
    refresh_expires_at: datetime,
    *,
    refresh_is_new: bool = True,
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
    if refresh_is_new:
        ctx.metrics.tokens_issued.labels(type="refresh").inc()
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
        refresh_expires_in=max(0, int((refresh_expires_at - now).total_seconds())),
    )


def _locked_pair(
    ctx: AuthContext,
    locked: LockedRefresh,
    refresh_token: str,
    now: datetime,
    expires_at: datetime,
    *,
    refresh_is_new: bool,
) -> TokenPair:
    return _pair(
        ctx,
        locked.user_id,
        locked.user_role.value,
        locked.user_token_version,
        locked.session_id,
        refresh_token,
        now,
        expires_at,
        refresh_is_new=refresh_is_new,
    )


def _refresh_expiry(ctx: AuthContext, now: datetime, family_started: datetime) -> datetime:
    """A token lives the refresh TTL, but never past the login's absolute lifetime."""
    settings = ctx.settings
    return min(
        now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        family_started + timedelta(seconds=settings.session_max_age_seconds),
    )


async def start_session(
    db: AsyncSession, ctx: AuthContext, user: User, client: ClientInfo | None = None
) -> TokenPair:
    """Open a new family for `user` and return its first token pair (caller commits)."""
    client = client or ClientInfo()
    now = datetime.now(UTC)
    expires_at = _refresh_expiry(ctx, now, now)
    family: RefreshSession = await sessions.add_session(
        db,
        user_id=user.id,
        now=now,
        expires_at=expires_at,
        rotation_secret=secrets.token_bytes(ROTATION_SECRET_BYTES),
        user_agent=client.user_agent,
        client_address=client.address,
    )
    refresh_token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    await sessions.add_token(db, session_id=family.id, token=refresh_token, expires_at=expires_at)
    return _pair(
        ctx,
        user.id,
        user.role.value,
        user.token_version,
        family.id,
        refresh_token,
        now,
        expires_at,
    )


# ---------------------------------------------------------------------------------------------
# The exchange
# ---------------------------------------------------------------------------------------------


def _failure(locked: LockedRefresh | None, now: datetime) -> RefreshFailure | None:
    if locked is None:
        return RefreshFailure.INVALID
    if not locked.user_is_active:
        return RefreshFailure.USER_INACTIVE
    if locked.token_spent_at is not None:
        return RefreshFailure.REUSED  # unless it is a grace replay (below)
    if locked.session_revoked_at is not None:
        return RefreshFailure.REVOKED
    if locked.token_expires_at <= now or locked.session_expires_at <= now:
        return RefreshFailure.EXPIRED
    return None


async def _rotate(
    db: Connection,
    ctx: AuthContext,
    locked: LockedRefresh,
    token: str,
    now: datetime,
    client: ClientInfo,
) -> TokenPair:
    # A login older than the rotation secrets gets one now, so from here on it has the window.
    secret = locked.rotation_secret or secrets.token_bytes(ROTATION_SECRET_BYTES)
    successor = successor_of(secret, token)
    expires_at = _refresh_expiry(ctx, now, locked.session_created_at)
    await sessions.rotate(
        db,
        locked,
        now,
        expires_at,
        hash_token(successor),
        rotation_secret=secret,
        user_agent=client.user_agent,
        client_address=client.address,
    )
    return _locked_pair(ctx, locked, successor, now, expires_at, refresh_is_new=True)


async def _grace_replay(
    db: Connection, ctx: AuthContext, locked: LockedRefresh, token: str, now: datetime
) -> TokenPair | None:
    """The pair to answer a spent token with, if it is a grace replay; None if it is reuse.

    A grace replay: the token was spent at most the grace window ago, its family is live, and
    the successor that spending it created is still unspent. Nothing is written: the answer is
    that same successor (recomputed) with a new access token.
    """
    grace = ctx.settings.refresh_reuse_grace_seconds
    spent_at = locked.token_spent_at
    if (
        grace <= 0
        or locked.rotation_secret is None  # a family rotated before it had a secret
        or spent_at is None
        or now - spent_at > timedelta(seconds=grace)
        or locked.session_revoked_at is not None
        or locked.session_expires_at <= now
    ):
        return None
    successor = successor_of(locked.rotation_secret, token)
    state = await sessions.successor_state(db, locked.session_id, hash_token(successor))
    if state is None or state.spent_at is not None or state.expires_at <= now:
        return None
    return _locked_pair(ctx, locked, successor, now, state.expires_at, refresh_is_new=False)


async def refresh(ctx: AuthContext, request: Request, token: str) -> TokenPair:
    """Exchange a refresh token for a new pair, or raise the 401 (or 429) that says why not.

    Counts the refresh rate limits itself: per client IP first, then per family once the
    look-up has found it (a refused exchange is rolled back: the token stays unspent).
    """
    await ctx.limits.refresh_ip(request)
    now = datetime.now(UTC)
    token_hash = hash_token(token)
    client = client_of(ctx, request)
    pair: TokenPair | None = None
    result = "success"
    async with ctx.db.transaction() as db:
        locked = await sessions.lock_by_hash(db, token_hash)
        # An unknown token has no family: it is counted on its own hash.
        await ctx.limits.refresh_family(
            request, str(locked.session_id) if locked is not None else token_hash.hex()
        )
        failure = _failure(locked, now)
        if locked is not None and failure is None:
            pair = await _rotate(db, ctx, locked, token, now, client)
        elif locked is not None and failure is RefreshFailure.REUSED:
            pair = await _grace_replay(db, ctx, locked, token, now)
            if pair is not None:
                failure, result = None, "grace_replay"
            elif await sessions.revoke_family(db, locked.session_id, now, "reuse"):
                ctx.metrics.sessions_revoked.labels(reason="reuse").inc()
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
    ctx.metrics.refreshes.labels(result=result).inc()
    return pair


async def logout(ctx: AuthContext, token: str | None) -> None:
    """Revoke the family `token` belongs to, whatever its state; silent about unknown tokens."""
    if not token:
        return
    now = datetime.now(UTC)
    async with ctx.sessions() as db, db.begin():
        revoked = await sessions.revoke_by_token(db, hash_token(token), now, "logout")
    if revoked:
        ctx.metrics.sessions_revoked.labels(reason="logout").inc()


# ---------------------------------------------------------------------------------------------
# Devices: a user's live logins
# ---------------------------------------------------------------------------------------------


def _session_not_found() -> ApiError:
    return ApiError(404, "session_not_found", "No such live session")


def _user_not_found() -> ApiError:
    return ApiError(404, "user_not_found", "No such user")


async def list_sessions(
    ctx: AuthContext, user_id: uuid.UUID, *, limit: int, offset: int, check_user: bool = False
) -> tuple[list[RefreshSession], int]:
    """A page of the user's live logins, most recently used first, and how many there are.

    `check_user` (admin): 404 `user_not_found` when there is no such user.
    """
    now = datetime.now(UTC)
    async with ctx.sessions() as db:
        if check_user and await users.get(db, user_id) is None:
            raise _user_not_found()
        return await sessions.live_sessions(db, user_id, now, limit=limit, offset=offset)


async def end_session(
    ctx: AuthContext,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    *,
    reason: str = "device_revoked",
    check_user: bool = False,
) -> None:
    """Revoke one live login of the user, leaving his others alone.

    404 `session_not_found` when it is not one of his live logins (another user's, unknown,
    already revoked or expired: the answer does not tell which); with `check_user` (admin),
    404 `user_not_found` when the user does not exist.
    """
    now = datetime.now(UTC)
    async with ctx.sessions() as db, db.begin():
        revoked = await sessions.revoke_live_session(db, user_id, session_id, now, reason)
        if not revoked and check_user and await users.get(db, user_id) is None:
            raise _user_not_found()
    if not revoked:
        raise _session_not_found()
    ctx.metrics.sessions_revoked.labels(reason=reason).inc()
