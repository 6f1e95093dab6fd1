"""A statement that fails on a pooled driver connection leaves nothing behind for the next user.

The case that matters: an argument asyncpg cannot encode, for a statement not yet prepared on the
connection. asyncpg has then sent Parse/Describe/Flush but no Sync, so the server sits inside an
implicit transaction (holding a lock on the table, with the statement timer running); the
connection went back to the pool like that, and the first statement on it after
`statement_timeout` failed (503 `database_unavailable`, on whatever request drew it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from fastapi.exceptions import RequestValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from taskgate_common.database import DriverConnections, create_driver_connections, create_engine
from tasks_service.core.config import Settings

# No UTC value in Python's years 1..9999: asyncpg cannot encode it for a timestamptz parameter.
UNENCODABLE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14)))


@pytest.fixture
async def one_connection(settings: Settings) -> AsyncIterator[DriverConnections]:
    """The service's driver connections over a pool of exactly one connection, so every
    `connect()` hands out the same one (unless it was discarded)."""
    single = settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0})
    engine = create_engine(single, application_name="taskgate-tasks-pool-test")
    yield create_driver_connections(engine, single)
    await engine.dispose()


async def pid_of(db: DriverConnections) -> int:
    """The server process of the pool's one connection."""
    async with db.connect() as connection:
        pid: int = connection.get_server_pid()
    return pid


async def fetch_once(db: DriverConnections, sql: str, *arguments: object) -> object:
    async with db.connect() as connection:
        return await connection.fetchval(sql, *arguments)


def unprepared(sql: str) -> str:
    """`sql` made unique, so it is certainly not yet prepared on the pooled connection."""
    return f"{sql} -- {uuid.uuid4().hex}"


async def server_side_state(tasks_db: AsyncEngine, pid: int) -> tuple[str, bool] | None:
    """The backend's activity state and whether it is inside a transaction (None: gone)."""
    async with tasks_db.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT state, xact_start IS NOT NULL AS in_transaction "
                    "FROM pg_stat_activity WHERE pid = :pid"
                ),
                {"pid": pid},
            )
        ).one_or_none()
    return None if row is None else (row.state, row.in_transaction)


async def assert_table_not_locked(tasks_db: AsyncEngine) -> None:
    """What a migration or a TRUNCATE needs: nobody else holds any lock on `tasks`."""
    async with tasks_db.begin() as connection:
        await connection.execute(text("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE NOWAIT"))


@pytest.mark.parametrize(
    ("sql", "bad", "good"),
    [
        (
            "SELECT count(*) FROM tasks WHERE due_at < $1",
            UNENCODABLE,
            datetime(2030, 1, 1, tzinfo=UTC),
        ),
        ("SELECT count(*) FROM tasks WHERE position = $1", "not a number", 1),
        ("SELECT count(*) FROM tasks WHERE position = $1", 2**64, 1),
    ],
)
async def test_a_failed_bind_on_an_unprepared_statement_leaves_the_connection_clean(
    one_connection: DriverConnections,
    tasks_db: AsyncEngine,
    settings: Settings,
    sql: str,
    bad: object,
    good: object,
) -> None:
    pid = await pid_of(one_connection)
    statement = unprepared(sql)
    with pytest.raises(RequestValidationError) as refused:
        await fetch_once(one_connection, statement, bad)
    assert isinstance(refused.value.__cause__, asyncpg.DataError)

    # Not left inside the half-sent statement's transaction, nor holding its lock.
    assert await server_side_state(tasks_db, pid) == ("idle", False)
    await assert_table_not_locked(tasks_db)

    # The next user gets the same connection (reset, not discarded), with its settings, and
    # it just works, the failed statement included.
    async with one_connection.connect() as connection:
        assert connection.get_server_pid() == pid
        assert await connection.fetchval(statement, good) == 0
        timeout = await connection.fetchval("SHOW statement_timeout")
        assert timeout == f"{settings.db_statement_timeout_ms // 1000}s"
    await one_connection.ping()


async def test_a_failed_bind_inside_a_transaction_rolls_back_and_stays_usable(
    one_connection: DriverConnections, tasks_db: AsyncEngine
) -> None:
    pid = await pid_of(one_connection)
    statement = unprepared("SELECT count(*) FROM tasks WHERE due_at > $1")

    async def count_in_transaction(argument: object) -> object:
        async with one_connection.transaction(
            prelude="SELECT pg_advisory_xact_lock(42)"
        ) as connection:
            return await connection.fetchval(statement, argument)

    with pytest.raises(RequestValidationError):
        await count_in_transaction(UNENCODABLE)
    assert await server_side_state(tasks_db, pid) == ("idle", False)
    await assert_table_not_locked(tasks_db)
    assert await count_in_transaction(datetime(2030, 1, 1, tzinfo=UTC)) == 0
    assert await pid_of(one_connection) == pid


async def test_a_server_reported_error_keeps_the_connection_as_it_is(
    one_connection: DriverConnections, tasks_db: AsyncEngine
) -> None:
    """asyncpg raises the server's own errors only after the server is ready again: nothing to
    reset, and the error is not mistaken for the client's fault."""
    pid = await pid_of(one_connection)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await fetch_once(one_connection, unprepared("SELECT 1 / $1::int"), 0)
    assert await server_side_state(tasks_db, pid) == ("idle", False)
    assert await fetch_once(one_connection, "SELECT 1") == 1
    assert await pid_of(one_connection) == pid


async def test_an_error_between_statements_still_returns_a_clean_connection(
    one_connection: DriverConnections, tasks_db: AsyncEngine
) -> None:
    """Any other failure inside the block (a bug, a rule raised mid-way) resets the connection
    before anyone else gets it, so even state left by the block itself is gone."""
    pid = await pid_of(one_connection)

    async def buggy_block() -> None:
        async with one_connection.connect() as connection:
            await connection.execute("SET statement_timeout = 1234")
            raise LookupError("a bug between two statements")

    with pytest.raises(LookupError):
        await buggy_block()
    assert await fetch_once(one_connection, "SHOW statement_timeout") != "1234ms"
    assert await pid_of(one_connection) == pid
    await assert_table_not_locked(tasks_db)


async def test_an_unfinished_transaction_is_never_handed_on(
    one_connection: DriverConnections,
) -> None:
    """Left inside BEGIN (the block ended without COMMIT/ROLLBACK): discarded, not reused."""
    async with one_connection.connect() as connection:
        pid = connection.get_server_pid()
        await connection.execute("BEGIN")
    assert await pid_of(one_connection) != pid
    assert await fetch_once(one_connection, "SELECT count(*) FROM tasks") == 0
