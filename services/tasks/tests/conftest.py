"""Fixtures for the tasks service: a real auth server, a migrated tasks database, an app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from tasks_factories import AuthServer, SpareAuth, User, tasks_settings, truncate_tasks

from auth_service.core.config import Settings as AuthSettings
from auth_service.core.signing_keys import SigningKey, load_signing_key, write_new_key
from auth_service.migrate import upgrade as upgrade_auth
from taskgate_devstack.pytest_plugin import PostgresForTests
from tasks_service.core.config import Settings
from tasks_service.main import create_app
from tasks_service.migrate import upgrade


class UnlimitedAuthServer(AuthServer):
    """The real auth server without app rate limits: the suite registers and logs in many
    users from 127.0.0.1, which is what those limits are there to stop."""

    def settings(self) -> AuthSettings:
        return super().settings().model_copy(update={"rate_limit_enabled": False})


@pytest.fixture(scope="session")
def auth_database_url(postgres_server: PostgresForTests) -> str:
    url = postgres_server.fresh_database("auth_for_tasks")
    upgrade_auth(url)
    return url


@pytest.fixture(scope="session")
def auth_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth-keys") / "signing-key.pem"
    write_new_key(path)
    return path


@pytest.fixture(scope="session")
def auth_key(auth_key_file: Path) -> SigningKey:
    """The private key the auth server signs with (tests forge tokens with it)."""
    return load_signing_key(auth_key_file)


@pytest.fixture(scope="session")
def auth_server(auth_database_url: str, auth_key_file: Path) -> Iterator[AuthServer]:
    server = UnlimitedAuthServer(auth_database_url, auth_key_file)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def spare_auth(auth_database_url: str, auth_key_file: Path) -> Iterator[SpareAuth]:
    """Factory for auth servers a test may stop and restart; all stopped at the end."""
    servers: list[AuthServer] = []

    def make(**options: Any) -> AuthServer:
        server = UnlimitedAuthServer(auth_database_url, auth_key_file, **options)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def tasks_database_url(postgres_server: PostgresForTests) -> str:
    url = postgres_server.fresh_database("tasks")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
async def tasks_db(tasks_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct access for checks the API does not expose (positions) and for cleaning up."""
    engine = create_async_engine(tasks_database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def settings(tasks_database_url: str, auth_server: AuthServer) -> Settings:
    # Limits off for the suite; test_write_limits.py turns them on in apps of its own.
    return tasks_settings(tasks_database_url, auth_server, rate_limit_enabled=False)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        assert await application.state.ctx.jwks.refresh()
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture(scope="session")
def users(auth_server: AuthServer) -> list[User]:
    """Four real accounts with real access tokens (15 minutes: longer than the suite)."""
    return [auth_server.new_user() for _ in range(4)]


@pytest.fixture
def alice(users: list[User]) -> User:
    return users[0]


@pytest.fixture
def bob(users: list[User]) -> User:
    return users[1]


@pytest.fixture(autouse=True)
async def _clean_tables(tasks_db: AsyncEngine) -> AsyncIterator[None]:
    """Each test starts from an empty table (truncation: the app commits its own work)."""
    yield
    await truncate_tasks(tasks_db)
