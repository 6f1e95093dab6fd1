"""SQL for event-stream tickets (migration 0004): stored by their SHA-256, spent once."""

from __future__ import annotations

import asyncpg

from tasks_service.core.access_tokens import Principal
from tasks_service.repositories.tasks import Connection


async def add(db: Connection, ticket_hash: bytes, principal: Principal, ttl_seconds: float) -> None:
    await db.execute(
        """
        INSERT INTO stream_tickets (ticket_hash, owner_id, role, session_id, token_version, kid,
                                    issued_at, token_expires_at, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
        """,
        ticket_hash,
        principal.user_id,
        principal.role,
        principal.session_id,
        principal.token_version,
        principal.kid,
        principal.issued_at,
        principal.expires_at,
        ttl_seconds,
    )


async def spend(db: Connection, ticket_hash: bytes) -> Principal | None:
    """The ticket's caller, deleting the ticket; None if unknown, spent or expired."""
    row: asyncpg.Record | None = await db.fetchrow(
        """
        DELETE FROM stream_tickets WHERE ticket_hash = $1
        RETURNING owner_id, role, session_id, token_version, kid, issued_at, token_expires_at,
                  expires_at > now() AS valid
        """,
        ticket_hash,
    )
    if row is None or not row["valid"]:
        return None
    return Principal(
        user_id=row["owner_id"],
        role=row["role"],
        expires_at=row["token_expires_at"],
        kid=row["kid"],
        session_id=row["session_id"],
        token_version=row["token_version"],
        issued_at=row["issued_at"],
    )


async def purge_expired(db: Connection) -> int:
    status: str = await db.execute("DELETE FROM stream_tickets WHERE expires_at < now()")
    return int(status.split()[-1])
