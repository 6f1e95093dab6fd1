"""The async engine and session factory, configured the same way in both services."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from taskgate_common.settings import ServiceSettings


def create_engine(settings: ServiceSettings, application_name: str) -> AsyncEngine:
    """A pooled asyncpg engine whose connect and statement times are bounded.

    Bounded waits are what turn "database down" into a prompt 503 instead of a hung request.
    No pre-ping: it costs a round trip per request; a connection that died with its server
    fails once, SQLAlchemy then invalidates the whole pool, and the next request reconnects.
    """
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=1800,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": {
                "application_name": application_name,
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "timezone": "UTC",
            },
        },
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def create_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for single-statement reads: autocommit, so no BEGIN/ROLLBACK round trips.

    Only for use cases that run one statement; anything needing a consistent snapshot or a
    write uses the transactional factory.
    """
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(autocommit, expire_on_commit=False)


async def ping(engine: AsyncEngine, timeout: float = 2.0) -> None:
    """Raise unless the database answers `SELECT 1` within `timeout` seconds."""
    async with asyncio.timeout(timeout), engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
