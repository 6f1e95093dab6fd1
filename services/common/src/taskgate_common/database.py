"""The async engine, its ORM sessions and its driver-level connections, set up alike in both
services."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import asyncpg
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from taskgate_common.errors import ApiError, DatabaseUnavailable
from taskgate_common.settings import ServiceSettings

logger = logging.getLogger("taskgate.database")


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
                "random_page_cost": str(settings.db_random_page_cost),
                "plan_cache_mode": settings.db_plan_cache_mode,
                "timezone": "UTC",
            },
        },
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# Raised by asyncpg when the connection itself failed (not the statement): the connection is
# thrown away and the client gets a 503. A statement timeout is a 503 too (an overloaded
# database), but the connection stays good (the server reported it; see `connect`).
_BROKEN_CONNECTION = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # "another operation is in progress": the protocol is out of step with the server.
    asyncpg.InternalClientError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    OSError,
    TimeoutError,
)
_OVERLOADED = (asyncpg.exceptions.QueryCanceledError,)


def _reported_by_server(exc: BaseException) -> bool:
    """An error the server sent. asyncpg builds those from the server's ErrorResponse, which
    always names a severity, and raises them only once the server is ready for the next query.
    The `DataError` asyncpg raises itself, for an argument it cannot encode, has no severity."""
    return isinstance(exc, asyncpg.PostgresError) and exc.severity is not None


def _is_unencodable_argument(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.DataError) and not _reported_by_server(exc)


def _unencodable_argument(exc: BaseException) -> RequestValidationError:
    """asyncpg could not encode a query argument: a request value validation let through
    (validation bounds every value a client sends, so this means a rule is missing). The
    client's fault, so a 422 in the design's shape rather than a 500; without the value."""
    cause = exc.__cause__
    reason = f"{type(cause).__name__}: {cause}" if cause is not None else type(exc).__name__
    logger.warning(
        "a query argument could not be encoded (%s); a validation rule is missing", reason
    )
    return RequestValidationError(
        [
            {
                "loc": ("request",),
                "msg": "a value cannot be stored or compared (out of range or of the wrong type)",
                "type": "value_error",
            }
        ]
    )


def create_driver_connections(engine: AsyncEngine, settings: ServiceSettings) -> DriverConnections:
    """The engine's driver connections, allowed to skip every connection the pool can hold."""
    return DriverConnections(engine, settings.db_pool_size + settings.db_max_overflow + 1)


class DriverConnections:
    """asyncpg connections borrowed from the engine's pool, for SQL kept as fixed text.

    Why: on the hottest paths SQLAlchemy's statement building, compilation and result layers
    cost more CPU than the query itself (about 0.5 ms of a 1.3 ms list request). The engine
    still owns the pool, its limits and timeouts, and Alembic still owns the schema; only the
    statements go straight to the driver, which caches each one as a prepared statement.
    """

    def __init__(self, engine: AsyncEngine, attempts: int, reset_timeout: float = 2.0) -> None:
        # The pool itself, not `engine.connect()`: a Connection object per checkout cost
        # 0.04 ms here. SQLAlchemy never begins a transaction on these connections (no
        # statement goes through it), so returning one to the pool costs no round trip.
        self._pool = engine.sync_engine.pool
        # Enough to skip every dead connection the pool may hold after a database restart.
        self._attempts = attempts
        self._reset_timeout = reset_timeout

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[asyncpg.Connection]:
        """One connection, each statement its own transaction.

        What the next user of the connection gets depends on how the block ended:

        - normally, or with an error the server reported (a constraint, a statement timeout):
          the connection as it is. asyncpg raises a server's error only after the server's
          ReadyForQuery, so nothing of the failed statement is left on either side;
        - the connection failed, or the block was cancelled mid-statement: a new connection;
          this one is discarded (the protocol may be half way through an exchange);
        - any other exception: the connection is reset first (`Connection.reset()`, what
          asyncpg's own pool does on every release: no transaction, default settings, no
          advisory locks or listeners), or discarded when that fails or takes longer than
          `reset_timeout`.

        Why the last rule: above all an argument asyncpg cannot encode (a time outside
        years 1..9999 UTC, a str for an int). For a statement not yet prepared on the
        connection, asyncpg has already sent Parse/Describe/Flush, without a Sync, when it
        encodes the arguments and fails. The server then waits inside an implicit
        transaction that holds a lock on every table the statement reads (a migration or a
        TRUNCATE blocks behind it) and keeps the statement timer running: the first statement
        on the connection after `statement_timeout` failed with "canceling statement due to
        statement timeout", a 503 for whichever request drew it, the readiness check included.
        One simple query (the reset) ends that transaction. Such an argument is the client's
        value that validation let through: it is answered 422, not 500 (see
        `_unencodable_argument`), and logged so the missing rule gets written.
        """
        pooled = await self._checkout()
        connection: asyncpg.Connection = pooled.driver_connection
        try:
            yield connection
        except _BROKEN_CONNECTION as exc:
            await greenlet_spawn(pooled.invalidate, exc)
            raise DatabaseUnavailable(type(exc).__name__) from exc
        except _OVERLOADED as exc:
            raise DatabaseUnavailable(type(exc).__name__) from exc
        except Exception as exc:
            # A domain answer (404, 412, ...) is raised by our code between statements, with
            # nothing in flight: no reset, so those paths cost no extra round trip.
            if not (_reported_by_server(exc) or isinstance(exc, ApiError)):
                await self._reset(pooled, connection)
            if _is_unencodable_argument(exc):
                raise _unencodable_argument(exc) from exc
            raise
        except BaseException:
            # Cancelled mid-statement (a timeout, a shutdown): the protocol may be half way
            # through an exchange, and the next user would fail on it. Never reuse it.
            await greenlet_spawn(pooled.invalidate)
            raise
        finally:
            if pooled.is_valid and connection.is_in_transaction():
                # Only if left between BEGIN and COMMIT/ROLLBACK: never hand a connection
                # inside someone's transaction to the next request.
                await greenlet_spawn(pooled.invalidate)
            await greenlet_spawn(pooled.close)  # back to the pool (or closed, if invalid)

    async def _reset(self, pooled: PoolProxiedConnection, connection: asyncpg.Connection) -> None:
        """Make the connection as good as new, or discard it."""
        if connection.is_closed() or connection.is_in_transaction():
            await greenlet_spawn(pooled.invalidate)
            return
        try:
            await connection.reset(timeout=self._reset_timeout)
        except Exception as exc:  # the block's own exception is the one to report
            logger.warning("discarding a connection that could not be reset: %r", exc)
            await greenlet_spawn(pooled.invalidate, exc)
        except BaseException:
            await greenlet_spawn(pooled.invalidate)
            raise

    async def ping(self, timeout: float = 2.0) -> None:
        """Raise unless the database answers `SELECT 1` within `timeout` seconds."""
        async with asyncio.timeout(timeout), self.connect() as connection:
            await connection.fetchval("SELECT 1")

    async def _checkout(self) -> PoolProxiedConnection:
        """A pooled connection whose socket is still open.

        asyncpg notices when the server closes a socket, so after a database restart the dead
        pooled connections are skipped here without a round trip (a pre-ping for free).
        Failing to get one at all (pool timeout, refused or timed-out connect) is a 503.
        """
        for _ in range(self._attempts):
            try:
                pooled = await greenlet_spawn(self._pool.connect)
            except Exception as exc:
                raise DatabaseUnavailable(type(exc).__name__) from exc
            driver = pooled.driver_connection
            if driver is not None and not driver.is_closed():
                return pooled
            await greenlet_spawn(pooled.invalidate)
            await greenlet_spawn(pooled.close)
        raise DatabaseUnavailable("every pooled connection was closed by the server")

    @asynccontextmanager
    async def transaction(
        self, *, prelude: str | None = None, snapshot: bool = False
    ) -> AsyncIterator[asyncpg.Connection]:
        """A READ COMMITTED transaction, committed on success, rolled back on any exception.

        `prelude`: fixed SQL text (no client value in it) run in the same round trip as BEGIN,
        e.g. `SELECT pg_advisory_xact_lock(42)`, so taking a lock first costs no extra trip.
        `snapshot`: a read-only REPEATABLE READ transaction instead, whose statements all see
        one snapshot (a view read in several statements that must agree, e.g. totals and cards).
        """
        begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if snapshot else "BEGIN"
        if prelude is not None:
            begin += f"; {prelude}"
        async with self.connect() as connection:
            await connection.execute(begin)
            try:
                yield connection
            except BaseException:
                if not connection.is_closed():
                    with suppress(Exception):  # the original failure is the one to report
                        await connection.execute("ROLLBACK")
                raise
            await connection.execute("COMMIT")
