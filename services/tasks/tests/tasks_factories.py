"""Helpers shared by the tasks tests (on pytest's `pythonpath`, unlike conftest).

The auth service runs for real here: its own app, database and key, served by uvicorn on a
local port in a background thread, so the tasks service fetches a real JWKS over HTTP and the
tests hold real tokens.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from auth_service.core.config import Settings as AuthSettings
from auth_service.core.signing_keys import KeyRing, SigningKey
from auth_service.main import create_app as create_auth_app
from taskgate_devstack.postgres import free_port
from tasks_service.core.config import Settings as TasksSettings
from tasks_service.main import create_app as create_tasks_app

_counter = itertools.count(1)


def next_number() -> int:
    """A number unique within the test session, for unique usernames."""
    return next(_counter)


class RequestLog:
    """An ASGI wrapper recording every HTTP path the wrapped app is asked for."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)

    def count(self, suffix: str) -> int:
        return sum(1 for path in self.paths if path.endswith(suffix))


class ServedApp:
    """An ASGI app under a real uvicorn (httptools, as deployed) on 127.0.0.1:`port`, in a
    thread with its own event loop: for what the in-process transport cannot show (streamed
    responses, several processes' worth of apps on one database)."""

    def __init__(self, app: ASGIApp, name: str, port: int | None = None) -> None:
        self.app = app
        self.name = name
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # Streams still open when a test stops the server are cut after this long.
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=20)
        self._server = None
        self._thread = None


@dataclass
class User:
    id: uuid.UUID
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class AuthServer:
    """The real auth app under uvicorn on 127.0.0.1:`port`; can be stopped and started again."""

    database_url: str
    signing_key_file: Path
    keys: KeyRing | None = None
    port: int = field(default_factory=free_port)
    jwks_max_age_seconds: int = 300
    log: RequestLog | None = field(default=None, init=False)
    _served: ServedApp | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/auth"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"

    def settings(self) -> AuthSettings:
        return AuthSettings(
            database_url=self.database_url,
            issuer=self.issuer,
            signing_key_file=self.signing_key_file,
            jwks_max_age_seconds=self.jwks_max_age_seconds,
            password_hash_concurrency=2,
            db_pool_size=2,
            log_level="WARNING",
        )

    def start(self, timeout: float = 20.0) -> None:
        self.log = RequestLog(create_auth_app(self.settings(), keys=self.keys))
        self._served = ServedApp(self.log, "auth-server", self.port)
        self._served.start(timeout)

    def stop(self) -> None:
        if self._served is not None:
            self._served.stop()
        self._served = None

    def new_user(self) -> User:
        """Register an account and log in, over real HTTP; returns its id and access token."""
        n = next_number()
        username = f"tasker{n:04d}"
        password = f"correct horse {n}"
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            registered = http.post(
                "/auth/register",
                json={
                    "email": f"{username}@example.com",
                    "username": username,
                    "password": password,
                },
            )
            registered.raise_for_status()
            login = http.post("/auth/login", json={"username": username, "password": password})
            login.raise_for_status()
        user_id = uuid.UUID(registered.json()["id"])
        return User(user_id, username, password, login.json()["access_token"])

    def login(self, user: User) -> str:
        """Another access token for `user`, from a new login."""
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            response = http.post(
                "/auth/login", json={"username": user.username, "password": user.password}
            )
            response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


SpareAuth = Callable[..., AuthServer]


def claims_for(issuer: str, subject: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    """Claims like auth's; `overrides` with value None drop the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(subject),
        "aud": ["tasks-api", "auth-api"],
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "sid": str(uuid.uuid4()),
        "role": "user",
        "ver": 0,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign(key: SigningKey, claims: dict[str, Any], **header: Any) -> str:
    """An RS256 token signed with `key` (auth's real key in the tests), header overridable."""
    headers = {"kid": key.kid, "typ": "at+jwt", **header}
    if headers["kid"] is None:
        del headers["kid"]
    # PyJWT drops `typ` when it is None.
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    head = _b64(json.dumps(header, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}"


def unsigned(key: SigningKey, claims: dict[str, Any]) -> str:
    """`alg: none`: no signature at all."""
    return _segments({"alg": "none", "typ": "at+jwt", "kid": key.kid}, claims) + "."


def hs256_with_public_key(key: SigningKey, claims: dict[str, Any]) -> str:
    """The key-confusion attack: HMAC-signed with the published public key as the secret."""
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = _segments({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}, claims)
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def tasks_settings(database_url: str, auth: AuthServer, **overrides: Any) -> TasksSettings:
    """Tasks settings trusting `auth`'s issuer and fetching its JWKS over HTTP."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "auth_issuer": auth.issuer,
        "auth_jwks_url": auth.jwks_url,
        "db_pool_size": 5,
        "log_level": "WARNING",
        **overrides,
    }
    return TasksSettings(**values)


async def create_task(client: httpx.AsyncClient, user: User, **fields: Any) -> dict[str, Any]:
    body = {"title": f"task {next_number()}", **fields}
    response = await client.post("/api/tasks", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def create_board(client: httpx.AsyncClient, user: User, name: str = "") -> dict[str, Any]:
    """A new board (with the three usual columns), as its full view."""
    response = await client.post(
        "/api/boards", json={"name": name or f"board {next_number()}"}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    return await board_view(client, user, response.json()["id"])


async def board_view(
    client: httpx.AsyncClient, user: User, board_id: str, limit: int = 100
) -> dict[str, Any]:
    response = await client.get(f"/api/boards/{board_id}?limit={limit}", headers=user.headers)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def default_board(client: httpx.AsyncClient, user: User) -> dict[str, Any]:
    """The user's default board (made on first use), as its full view."""
    response = await client.get("/api/boards", headers=user.headers)
    assert response.status_code == 200, response.text
    board = next(item for item in response.json()["items"] if item["is_default"])
    return await board_view(client, user, board["id"])


async def add_column(
    client: httpx.AsyncClient, user: User, board_id: str, name: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/boards/{board_id}/columns", json={"name": name, **fields}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    column: dict[str, Any] = response.json()
    return column


def titles_by_column(view: dict[str, Any]) -> dict[str, list[str]]:
    return {
        column["name"]: [task["title"] for task in column["items"]] for column in view["columns"]
    }


@asynccontextmanager
async def behind_the_api(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that writes rows directly, as data from before a rule or an internal
    state the API cannot make: outside the change log (migration 0004), as a bulk load is."""
    async with engine.begin() as connection:
        await connection.execute(text("SET LOCAL taskgate.change_log = 'off'"))
        yield connection


async def truncate_tasks(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        # Boards and columns too: TRUNCATE fires no trigger, so kept counts would go stale.
        await connection.execute(
            text("TRUNCATE tasks, board_columns, boards, changes, change_horizons, stream_tickets")
        )


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """The current value of one sample on `/metrics` (0 when absent)."""
    response = await client.get("/metrics")
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


@asynccontextmanager
async def running_app(settings: TasksSettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A tasks app of its own (own key cache, own engine), started and with a client."""
    app = create_tasks_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Wait until `condition()` holds (background work); fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
