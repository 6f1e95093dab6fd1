"""Fixtures for the auth service: a migrated real database, an app, and account factories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth_factories import ISSUER, Account, LoginFn, RegisterFn, SqlFn, next_number
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from auth_service.core.config import Settings
from auth_service.core.signing_keys import SigningKey, load_signing_key, write_new_key
from auth_service.main import create_app
from auth_service.migrate import upgrade
from taskgate_devstack.pytest_plugin import PostgresForTests


@pytest.fixture(scope="session")
def auth_database_url(postgres_server: PostgresForTests) -> str:
    url = postgres_server.fresh_database("auth")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def signing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "signing-key.pem"
    write_new_key(path)
    return path


@pytest.fixture(scope="session")
def signing_key(signing_key_file: Path) -> SigningKey:
    return load_signing_key(signing_key_file)


@pytest.fixture(scope="session")
def settings(auth_database_url: str, signing_key_file: Path) -> Settings:
    return Settings(
        database_url=auth_database_url,
        issuer=ISSUER,
        signing_key_file=signing_key_file,
        db_pool_size=5,
        db_max_overflow=25,  # room for the concurrent-refresh test's 20 requests at once
        log_level="WARNING",
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture(scope="session")
async def sql_engine(auth_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(auth_database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
def sql(sql_engine: AsyncEngine) -> SqlFn:
    """Run one statement in its own committed transaction, as another client would."""

    async def _sql(statement: str) -> list[Any]:
        async with sql_engine.begin() as connection:
            result = await connection.execute(text(statement))
            return list(result.all()) if result.returns_rows else []

    return _sql


@pytest.fixture(autouse=True)
async def _clean_tables(sql: SqlFn) -> AsyncIterator[None]:
    """Each test starts from empty tables (truncation: the app commits its own work)."""
    yield
    await sql("TRUNCATE refresh_tokens, refresh_sessions, users RESTART IDENTITY CASCADE")


@pytest.fixture
def register(client: httpx.AsyncClient) -> RegisterFn:
    """Factory: register an account (unique defaults) and return its credentials."""

    async def _register(**overrides: str) -> Account:
        n = next_number()
        body = {
            "email": f"user{n}@example.com",
            "username": f"user{n:04d}",
            "password": f"correct horse {n}",
            **overrides,
        }
        response = await client.post("/auth/register", json=body)
        assert response.status_code == 201, response.text
        return Account(response.json()["id"], body["email"], body["username"], body["password"])

    return _register


@pytest.fixture
def login(client: httpx.AsyncClient) -> LoginFn:
    async def _login(account: Account) -> dict[str, Any]:
        response = await client.post(
            "/auth/login", json={"username": account.username, "password": account.password}
        )
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    return _login


@pytest.fixture
def make_admin(register: RegisterFn, sql: SqlFn) -> RegisterFn:
    """Factory: a registered account promoted to admin (as `users create-admin` would make)."""

    async def _make_admin(**overrides: str) -> Account:
        account = await register(**overrides)
        await sql(f"UPDATE users SET role = 'admin' WHERE id = '{account.id}'")  # noqa: S608
        return account

    return _make_admin
