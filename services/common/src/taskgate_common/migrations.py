"""The body of each service's Alembic `env.py`: async engine, and one migrator at a time;
and how far a database is behind the code (the `taskgate_migrations_pending` gauge).

Replicas that start together all run `db upgrade`; a transaction-scoped advisory lock makes the
second wait for the first and then find nothing left to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from alembic import context
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATION_LOCK_ID = 0x7A5C_A417


def run_migrations(metadata: MetaData, default_url: Callable[[], str]) -> None:
    """Run the migrations Alembic asked for (online, or offline as SQL)."""
    config = context.config
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    database_url = str(url) if url else default_url()

    if context.is_offline_mode():
        context.configure(url=database_url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            context.run_migrations()

    async def run_online() -> None:
        engine = create_async_engine(database_url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(run)
        await engine.dispose()

    asyncio.run(run_online())


def pending_migrations(connection: Connection, script: ScriptDirectory) -> int:
    """How many of the code's revisions the database has not applied; -1 when the database
    is at a revision this code does not know (a newer schema, e.g. after rolling the code
    back). Before the first migration every revision is pending."""
    applied: set[str] = set()
    try:
        for current in MigrationContext.configure(connection).get_current_heads():
            applied.update(rev.revision for rev in script.iterate_revisions(current, "base"))
    except (CommandError, RevisionError):
        return -1
    wanted = {rev.revision for rev in script.iterate_revisions("heads", "base")}
    return len(wanted - applied)
