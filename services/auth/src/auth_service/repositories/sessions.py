"""SQL for login sessions (one per login: the family of its refresh tokens), the refresh tokens
in them, and the devices list built from them.

Two kinds of access, by how hot the path is:

- the refresh exchange (`lock_by_hash`, `successor_state`, `rotate`, `revoke_family`) is driver
  SQL on asyncpg connections, in one transaction of `ctx.db` (docs/decisions.md, 16): every
  open tab calls it every few minutes;
- everything else (opening a login, logout, the revocations of account changes, the devices
  list, the purge) goes through the ORM.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg
from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.models import RefreshSession, RefreshToken, Role

Connection: TypeAlias = asyncpg.Connection


def hash_token(token: str) -> bytes:
    """Tokens are stored as SHA-256: they are 256-bit random, so no slow hash is needed."""
    return hashlib.sha256(token.encode("utf-8")).digest()


# ---------------------------------------------------------------------------------------------
# The refresh exchange (asyncpg)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LockedRefresh:
    """A presented refresh token with its family and user, the token and family rows locked."""

    token_id: uuid.UUID
    token_expires_at: datetime
    token_spent_at: datetime | None
    session_id: uuid.UUID
    session_created_at: datetime
    session_expires_at: datetime
    session_revoked_at: datetime | None
    rotation_secret: bytes | None
    user_id: uuid.UUID
    user_is_active: bool
    user_role: Role
    user_token_version: int


async def lock_by_hash(db: Connection, token_hash: bytes) -> LockedRefresh | None:
    """The one look-up of an exchange: the token, its family and its user, in one statement.

    Concurrent exchanges of one token queue on its row; when the first commits, the others
    read the row again (READ COMMITTED) and find it spent. The family row is locked too, so
    every exchange of one login (of this token or of any other token of the family) runs one
    after the other: what one of them reads of the family cannot change before it commits.
    The role is read as text: the enum type would make asyncpg look it up (three more
    statements) on the first exchange of every new pool connection.
    """
    row = await db.fetchrow(
        """
        SELECT t.id AS token_id, t.expires_at AS token_expires_at,
               t.spent_at AS token_spent_at, s.id AS session_id,
               s.created_at AS session_created_at, s.expires_at AS session_expires_at,
               s.revoked_at AS session_revoked_at, s.rotation_secret,
               u.id AS user_id, u.is_active AS user_is_active, u.role::text AS user_role,
               u.token_version AS user_token_version
        FROM refresh_tokens AS t
        JOIN refresh_sessions AS s ON s.id = t.session_id
        JOIN users AS u ON u.id = s.user_id
        WHERE t.token_hash = $1
        FOR UPDATE OF t, s
        """,
        token_hash,
    )
    if row is None:
        return None
    values = dict(row.items())
    values["user_role"] = Role(values["user_role"])
    return LockedRefresh(**values)


@dataclass(frozen=True, slots=True)
class SuccessorState:
    spent_at: datetime | None
    expires_at: datetime


async def successor_state(
    db: Connection, session_id: uuid.UUID, successor_hash: bytes
) -> SuccessorState | None:
    """The successor token of a spent one, if it is in the same family (grace replays only).

    Not locked: the caller holds the family row (`lock_by_hash`), which every exchange of the
    family must lock first, so nobody can spend the successor before the caller commits.
    Locking the successor's row here could deadlock with an exchange of the successor that
    already holds it and waits for the family.
    """
    row = await db.fetchrow(
        "SELECT spent_at, expires_at FROM refresh_tokens WHERE token_hash = $1 AND session_id = $2",
        successor_hash,
        session_id,
    )
    return None if row is None else SuccessorState(row["spent_at"], row["expires_at"])


async def rotate(
    db: Connection,
    locked: LockedRefresh,
    now: datetime,
    expires_at: datetime,
    successor_hash: bytes,
    *,
    rotation_secret: bytes,
    user_agent: str | None,
    client_address: str | None,
) -> None:
    """Spend the token, extend the family to `expires_at`, note where and when it was used, and
    add the successor expiring then: one statement.

    `rotation_secret` is the family's (or a new one for a login older than it, which then gets
    the grace window from now on); a missing `user_agent` or `client_address` keeps the old one.
    """
    await db.execute(
        """
        WITH spent AS (
            UPDATE refresh_tokens SET spent_at = $1 WHERE id = $2
        ), family AS (
            UPDATE refresh_sessions
               SET expires_at = $3, last_used_at = $1, rotation_secret = $7,
                   user_agent = coalesce($8, user_agent),
                   client_address = coalesce($9, client_address)
             WHERE id = $4
        )
        INSERT INTO refresh_tokens (id, session_id, token_hash, expires_at)
        VALUES ($5, $4, $6, $3)
        """,
        now,
        locked.token_id,
        expires_at,
        locked.session_id,
        uuid.uuid4(),
        successor_hash,
        rotation_secret,
        user_agent,
        client_address,
    )


async def revoke_family(db: Connection, session_id: uuid.UUID, now: datetime, reason: str) -> bool:
    """Revoke one family unless it already is; True when this call revoked it."""
    revoked = await db.fetchval(
        "UPDATE refresh_sessions SET revoked_at = $1, revoked_reason = $2"
        " WHERE id = $3 AND revoked_at IS NULL RETURNING true",
        now,
        reason,
        session_id,
    )
    return revoked is not None


# ---------------------------------------------------------------------------------------------
# Everything else (ORM)
# ---------------------------------------------------------------------------------------------


async def add_session(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    now: datetime,
    expires_at: datetime,
    rotation_secret: bytes,
    user_agent: str | None = None,
    client_address: str | None = None,
) -> RefreshSession:
    family = RefreshSession(
        id=uuid.uuid4(),
        user_id=user_id,
        created_at=now,
        expires_at=expires_at,
        rotation_secret=rotation_secret,
        last_used_at=now,
        user_agent=user_agent,
        client_address=client_address,
    )
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


async def revoke_by_token(
    session: AsyncSession, token_hash: bytes, now: datetime, reason: str
) -> int:
    """Revoke the family a token (spent or not) belongs to, in one statement; 0 when the token
    is unknown or its family already revoked, else 1."""
    family = select(RefreshToken.session_id).where(RefreshToken.token_hash == token_hash)
    result = await session.execute(
        update(RefreshSession)
        .where(RefreshSession.id == family.scalar_subquery(), RefreshSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return _rowcount(result)


def _live(user_id: uuid.UUID, now: datetime) -> ColumnElement[bool]:
    return and_(
        RefreshSession.user_id == user_id,
        RefreshSession.revoked_at.is_(None),
        RefreshSession.expires_at > now,
    )


async def live_sessions(
    session: AsyncSession, user_id: uuid.UUID, now: datetime, *, limit: int, offset: int
) -> tuple[list[RefreshSession], int]:
    """One page of a user's live logins (not revoked, not expired), the most recently used
    first, and how many there are in all."""
    live = _live(user_id, now)
    total = (
        await session.execute(select(func.count()).select_from(RefreshSession).where(live))
    ).scalar_one()
    used = func.coalesce(RefreshSession.last_used_at, RefreshSession.created_at)
    result = await session.execute(
        select(RefreshSession)
        .where(live)
        .order_by(used.desc(), RefreshSession.id)
        .limit(limit)
        .offset(offset)
    )
    return list(result.scalars().all()), int(total)


async def revoke_live_session(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime, reason: str
) -> bool:
    """Revoke one live login of `user_id`; False when it is not one (another user's, unknown,
    already revoked or expired)."""
    result = await session.execute(
        update(RefreshSession)
        .where(RefreshSession.id == session_id, _live(user_id, now))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return _rowcount(result) == 1


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
