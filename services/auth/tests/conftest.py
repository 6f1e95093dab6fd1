"""Fixtures for the auth service: a migrated real database, an app, and account factories."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth_factories import (
    ISSUER,
    Account,
    LoginFn,
    MakeAccountFn,
    RegisterFn,
    SqlFn,
    next_number,
)
from fastapi import FastAPI
from mail_support import MailTest, SmtpSink, running, smtp_settings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from auth_service.context import AuthContext
from auth_service.core.config import Settings
from auth_service.core.identity_keys import identity_key
from auth_service.core.signing_keys import SigningKey, load_signing_key, write_new_key
from auth_service.main import create_app
from auth_service.migrate import upgrade
from auth_service.repositories import users
from auth_service.services.refresh_sessions import start_session
from taskgate_devstack.pytest_plugin import PostgresForTests, RedisForTests


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
        # Enough kept-open connections for the concurrent-refresh test's 20 requests at once.
        db_pool_size=22,
        db_max_overflow=5,
        log_level="WARNING",
        # The suite logs in many times from one ASGI client address: the rate-limit tests
        # (test_rate_limits.py) turn the limits on in apps of their own.
        rate_limit_enabled=False,
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
    await sql(
        "TRUNCATE email_tokens, refresh_tokens, refresh_sessions, users, revocations "
        "RESTART IDENTITY CASCADE"
    )


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


FAST_PASSWORD = "fast password 1"


@pytest.fixture(scope="session")
async def fast_password_hash(app: FastAPI) -> str:
    """One real Argon2id hash of FAST_PASSWORD, made once for the whole session."""
    ctx: AuthContext = app.state.ctx
    return await ctx.hasher.hash(FAST_PASSWORD)


@pytest.fixture
def make_account(sql: SqlFn, fast_password_hash: str) -> MakeAccountFn:
    """Factory: an account inserted directly (no hashing per test), for tests about sessions.

    Registration itself is tested through the API with `register`.
    """

    async def _make_account(
        role: str = "user", *, username: str | None = None, email: str | None = None
    ) -> Account:
        n = next_number()
        account = Account(
            str(uuid.uuid4()),
            email or f"fast{n}@example.com",
            username or f"fast{n:04d}",
            FAST_PASSWORD,
        )
        await sql(
            "INSERT INTO users (id, email, email_key, username, username_key, password_hash, "  # noqa: S608
            f"role) VALUES ('{account.id}', '{account.email}', "
            f"'{identity_key(account.email)}', '{account.username}', "
            f"'{identity_key(account.username)}', '{fast_password_hash}', '{role}')"
        )
        return account

    return _make_account


@pytest.fixture
def make_admin(make_account: MakeAccountFn) -> MakeAccountFn:
    """Factory: an admin account (as `users create-admin` would make)."""

    async def _make_admin(role: str = "admin") -> Account:
        return await make_account(role)

    return _make_admin


@pytest.fixture
def open_session(app: FastAPI) -> LoginFn:
    """Tokens exactly as a password login issues them (the same `start_session`), minus the
    password verification; logging in itself is tested through the API with `login`."""

    async def _open_session(account: Account) -> dict[str, Any]:
        ctx: AuthContext = app.state.ctx
        async with ctx.sessions() as db, db.begin():
            user = await users.get(db, uuid.UUID(account.id))
            assert user is not None
            pair = await start_session(db, ctx, user)
        return pair.model_dump()

    return _open_session


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) for the whole session."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
async def mail_service(settings: Settings, smtp_sink: SmtpSink) -> AsyncIterator[MailTest]:
    """An auth app that mails to `smtp_sink` (the main `app` has no SMTP, so sends nothing)."""
    async with running(smtp_settings(settings, smtp_sink), smtp_sink) as service:
        yield service


@pytest.fixture
async def mail(mail_service: MailTest) -> AsyncIterator[MailTest]:
    """The mailing app with an empty mailbox; its sends are finished before tables are wiped."""
    assert mail_service.sink is not None
    await mail_service.ctx.jobs.drain()
    mail_service.sink.clear()
    yield mail_service
    await mail_service.ctx.jobs.drain()


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The rate-limit store of a test: process memory, then a real Redis (skipped without)."""
    if request.param == "memory":
        return "memory://"
    redis: RedisForTests = request.getfixturevalue("redis")
    return redis.url
