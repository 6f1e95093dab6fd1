"""SQL for exchanging a refresh token, run on asyncpg connections: the auth service's hot path.

Refreshing is what every open tab does every few minutes, so this one use case skips the ORM
(see docs/decisions.md, 16): one locking read, then one statement that spends the token,
extends the family and stores the successor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg

from auth_service.models import Role

Connection: TypeAlias = asyncpg.Connection


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
    user_id: uuid.UUID
    user_is_active: bool
    user_role: Role
    user_token_version: int


async def lock_by_hash(db: Connection, token_hash: bytes) -> LockedRefresh | None:
    """Concurrent exchanges of one token queue on its row; when the first commits, the others
    read the row again (READ COMMITTED) and find it spent, so exactly one of them rotates it."""
    row = await db.fetchrow(
        """
        SELECT t.id AS token_id, t.expires_at AS token_expires_at,
               t.spent_at AS token_spent_at, s.id AS session_id,
               s.created_at AS session_created_at, s.expires_at AS session_expires_at,
               s.revoked_at AS session_revoked_at, u.id AS user_id,
               u.is_active AS user_is_active, u.role AS user_role,
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


async def rotate(
    db: Connection,
    locked: LockedRefresh,
    now: datetime,
    expires_at: datetime,
    successor_hash: bytes,
) -> None:
    """Spend the token, extend the family to `expires_at` and add the successor expiring then."""
    await db.execute(
        """
        WITH spent AS (
            UPDATE refresh_tokens SET spent_at = $1 WHERE id = $2
        ), family AS (
            UPDATE refresh_sessions SET expires_at = $3 WHERE id = $4
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
    )


async def revoke_session(db: Connection, session_id: uuid.UUID, now: datetime, reason: str) -> bool:
    """Revoke one family unless it already is; True when this call revoked it."""
    revoked = await db.fetchval(
        "UPDATE refresh_sessions SET revoked_at = $1, revoked_reason = $2"
        " WHERE id = $3 AND revoked_at IS NULL RETURNING true",
        now,
        reason,
        session_id,
    )
    return revoked is not None
