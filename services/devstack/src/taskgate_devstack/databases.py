"""Creating and dropping databases on a server, given its superuser (admin) URL."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit, urlunsplit

import asyncpg

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def with_database(url: str, database: str, driver: str = "postgresql+asyncpg") -> str:
    """The same server URL with another database name and driver scheme."""
    parts = urlsplit(url)
    return urlunsplit((driver, parts.netloc, f"/{database}", parts.query, ""))


def libpq_url(url: str) -> str:
    """asyncpg and libpq want `postgresql://`; SQLAlchemy URLs carry a `+driver` suffix."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))


async def _recreate(admin_url: str, database: str, drop_only: bool) -> None:
    if not _NAME.match(database):
        raise ValueError(f"unsafe database name {database!r}")
    connection = await asyncpg.connect(libpq_url(admin_url), timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if not drop_only:
            await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()


def recreate_database(admin_url: str, database: str) -> str:
    """Drop `database` if present, create it empty, and return its SQLAlchemy URL."""
    asyncio.run(_recreate(admin_url, database, drop_only=False))
    return with_database(admin_url, database)


def drop_database(admin_url: str, database: str) -> None:
    asyncio.run(_recreate(admin_url, database, drop_only=True))


async def _exists(admin_url: str, database: str) -> bool:
    connection = await asyncpg.connect(libpq_url(admin_url), timeout=10)
    try:
        found = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
    finally:
        await connection.close()
    return found is not None


def ensure_database(admin_url: str, database: str) -> str:
    """Create `database` unless it exists (keeps `make dev` data); return its SQLAlchemy URL."""
    if not asyncio.run(_exists(admin_url, database)):
        asyncio.run(_recreate(admin_url, database, drop_only=False))
    return with_database(admin_url, database)
