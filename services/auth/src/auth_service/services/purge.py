"""Deleting finished sessions: expired or revoked families and all their tokens.

A family is kept as long as it is live, spent tokens included: they are what detects the reuse
of a stolen token. Once the family is over, nothing in it can be exchanged any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.repositories import sessions as session_rows


@dataclass
class PurgeReport:
    cutoff: datetime
    sessions: int = 0
    tokens: int = 0
    batches: int = 0
    complete: bool = True

    def __str__(self) -> str:
        more = "" if self.complete else "; more remain (batch limit reached)"
        return (
            f"purged {self.sessions} sessions and {self.tokens} refresh tokens in "
            f"{self.batches} batches (expired or revoked before {self.cutoff.isoformat()}){more}"
        )


async def purge_sessions(
    sessions: async_sessionmaker[AsyncSession],
    *,
    older_than: timedelta = timedelta(0),
    batch_size: int = 1000,
    max_batches: int | None = None,
    now: datetime | None = None,
) -> PurgeReport:
    """Delete finished families in batches of `batch_size`, each batch its own transaction."""
    report = PurgeReport(cutoff=(now or datetime.now(UTC)) - older_than)
    while True:
        if max_batches is not None and report.batches >= max_batches:
            report.complete = False
            break
        async with sessions() as db, db.begin():
            families, tokens = await session_rows.purge_batch(db, report.cutoff, batch_size)
        if families == 0:
            break
        report.batches += 1
        report.sessions += families
        report.tokens += tokens
        if families < batch_size:
            break
    return report
