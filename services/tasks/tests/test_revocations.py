"""Revocations reach the tasks service through auth's feed: every way a login ends is refused
here (401 `token_revoked`) within seconds, other logins keep working, and auth being down
changes nothing about what the service knows.

The auth server is the real one (uvicorn, its own database); the tasks apps follow its feed
with the default settings (a poll a second). Waits are bounded loops, not timed assertions;
the delays are measured by `bench/revocation_delay.py` and only printed here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from tasks_factories import (
    AuthServer,
    SpareAuth,
    User,
    bearer,
    eventually,
    metric,
    running_app,
    tasks_settings,
)

from auth_service.core.config import Settings as AuthSettings
from auth_service.models import TokenPurpose
from auth_service.repositories import email_tokens
from taskgate_common.metrics import new_registry
from taskgate_devstack.postgres import free_port
from tasks_service.core.config import Settings
from tasks_service.core.revocations import RevocationFollower
from tasks_service.metrics import TasksMetrics

# Generous: a failure here means "never", not "slow" (the bench measures the delay).
REFUSED_WITHIN = 30.0


@dataclass
class Login:
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)

    @property
    def session_id(self) -> str:
        return str(jwt.decode(self.access_token, options={"verify_signature": False})["sid"])


async def _login(auth: AuthServer, user: User, password: str | None = None) -> Login:
    async with httpx.AsyncClient(base_url=auth.base_url, timeout=30) as http:
        response = await http.post(
            "/auth/login", json={"username": user.username, "password": password or user.password}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    return Login(body["access_token"], body["refresh_token"])


async def _auth(auth: AuthServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=auth.base_url, timeout=30) as http:
        return await http.request(method, path, **kwargs)


async def _serves(client: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    response = await client.get("/api/tasks", headers=headers)
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def _refused(client: httpx.AsyncClient, headers: dict[str, str], what: str) -> float:
    """Seconds until the tasks service refuses `headers`' token as revoked (bounded)."""
    started = time.monotonic()
    while True:
        response = await client.get("/api/tasks", headers=headers)
        if response.status_code == 401:
            assert response.json() == {
                "detail": "The token was revoked; log in again",
                "code": "token_revoked",
            }
            assert response.headers["WWW-Authenticate"].startswith(
                'Bearer realm="tasks-api", error="invalid_token"'
            )
            delay = time.monotonic() - started
            print(f"\n{what}: refused by the tasks service {delay:.2f} s after the 2xx")
            return delay
        assert response.status_code == 200, response.text
        if time.monotonic() - started > REFUSED_WITHIN:
            raise AssertionError(f"{what}: still accepted {REFUSED_WITHIN} s later")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
async def auth_sql(auth_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(auth_database_url, pool_size=2)
    yield engine
    await engine.dispose()


async def _admin(auth: AuthServer, auth_sql: AsyncEngine) -> Login:
    """An admin (promoted in SQL: no version change, so no feed entry) and its login."""
    user = auth.new_user()
    async with auth_sql.begin() as connection:
        await connection.execute(
            text("UPDATE users SET role = 'admin' WHERE id = :id"), {"id": user.id}
        )
    return await _login(auth, user)


async def test_logout_ends_that_login_only(
    client: httpx.AsyncClient, auth_server: AuthServer, bob: User
) -> None:
    user = auth_server.new_user()
    first, second = await _login(auth_server, user), await _login(auth_server, user)
    for login in (first, second):
        assert await _serves(client, login.headers)  # verified and cached before the logout

    response = await _auth(
        auth_server, "POST", "/auth/logout", json={"refresh_token": first.refresh_token}
    )
    assert response.status_code == 204
    before = await metric(client, "tasks_token_rejections_total", reason="revoked")
    await _refused(client, first.headers, "logout")
    assert await metric(client, "tasks_token_rejections_total", reason="revoked") == before + 1

    # The same user's other login and other users are untouched.
    assert await _serves(client, second.headers)
    assert await _serves(client, bob.headers)
    created = await client.post("/api/tasks", json={"title": "still here"}, headers=second.headers)
    assert created.status_code == 201
    refused_write = await client.post("/api/tasks", json={"title": "no"}, headers=first.headers)
    assert refused_write.status_code == 401


async def test_logout_all_ends_every_login(
    client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    user = auth_server.new_user()
    logins = [await _login(auth_server, user) for _ in range(2)]
    for login in logins:
        assert await _serves(client, login.headers)
    response = await _auth(auth_server, "POST", "/auth/logout-all", headers=logins[0].headers)
    assert response.status_code == 204
    for login in logins:
        await _refused(client, login.headers, "logout-all")
    assert await _serves(client, (await _login(auth_server, user)).headers)


async def test_password_change_ends_every_login(
    client: httpx.AsyncClient, auth_server: AuthServer
) -> None:
    user = auth_server.new_user()
    login = await _login(auth_server, user)
    assert await _serves(client, login.headers)
    response = await _auth(
        auth_server,
        "POST",
        "/auth/change-password",
        json={"current_password": user.password, "new_password": "a brand new password 1"},
        headers=login.headers,
    )
    assert response.status_code == 204, response.text
    await _refused(client, login.headers, "change-password")
    await _refused(client, bearer(user.token), "change-password (the first login)")
    fresh = await _login(auth_server, user, "a brand new password 1")
    assert await _serves(client, fresh.headers)


async def test_password_reset_ends_every_login(
    client: httpx.AsyncClient, auth_server: AuthServer, auth_sql: AsyncEngine
) -> None:
    user = auth_server.new_user()
    assert await _serves(client, user.headers)
    # The link's token, stored as the forgot-password mail job stores it (no SMTP here).
    token = f"reset-{uuid.uuid4().hex}"
    async with async_sessionmaker(auth_sql)() as db, db.begin():
        await email_tokens.replace(
            db,
            user_id=user.id,
            purpose=TokenPurpose.PASSWORD_RESET,
            token=token,
            email=f"{user.username}@example.com",
            expires_at=datetime.now(UTC) + timedelta(minutes=30),
        )
    response = await _auth(
        auth_server,
        "POST",
        "/auth/reset-password",
        json={"token": token, "new_password": "a reset password 1"},
    )
    assert response.status_code in (200, 204), response.text
    await _refused(client, user.headers, "password reset")


async def test_deactivation_ends_every_login_and_reactivation_lets_new_ones_in(
    client: httpx.AsyncClient, auth_server: AuthServer, auth_sql: AsyncEngine
) -> None:
    admin = await _admin(auth_server, auth_sql)
    user = auth_server.new_user()
    old = await _login(auth_server, user)
    assert await _serves(client, old.headers)

    async def set_active(active: bool) -> None:
        response = await _auth(
            auth_server,
            "PATCH",
            f"/auth/users/{user.id}",
            json={"is_active": active},
            headers=admin.headers,
        )
        assert response.status_code == 200, response.text

    await set_active(False)
    await _refused(client, old.headers, "deactivation")
    await set_active(True)
    # A login after the reactivation carries the new token version: the deactivation entry,
    # still remembered here, does not touch it.
    fresh = await _login(auth_server, user)
    assert await _serves(client, fresh.headers)
    assert not await _serves(client, old.headers)


async def test_role_change_ends_tokens_carrying_the_old_role(
    client: httpx.AsyncClient, auth_server: AuthServer, auth_sql: AsyncEngine
) -> None:
    admin = await _admin(auth_server, auth_sql)
    user = auth_server.new_user()
    assert await _serves(client, user.headers)
    response = await _auth(
        auth_server,
        "PATCH",
        f"/auth/users/{user.id}",
        json={"role": "admin"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    await _refused(client, user.headers, "role change")
    assert await _serves(client, (await _login(auth_server, user)).headers)


@dataclass
class NoGraceAuthServer(AuthServer):
    """Another replica of the same auth (same database, key and issuer), where any replay of
    a spent refresh token is reuse at once (no grace window for concurrent tabs, when the
    service has one)."""

    public_issuer: str = ""

    def settings(self) -> AuthSettings:
        update: dict[str, Any] = {"rate_limit_enabled": False, "issuer": self.public_issuer}
        if "refresh_reuse_grace_seconds" in AuthSettings.model_fields:
            update["refresh_reuse_grace_seconds"] = 0
        return super().settings().model_copy(update=update)


async def test_reuse_detection_ends_that_login(
    client: httpx.AsyncClient,
    auth_server: AuthServer,
    auth_database_url: str,
    auth_key_file: Any,
) -> None:
    replica = NoGraceAuthServer(auth_database_url, auth_key_file, public_issuer=auth_server.issuer)
    replica.start()
    try:
        user = auth_server.new_user()
        login = await _login(replica, user)
        other = await _login(replica, user)
        assert await _serves(client, login.headers)
        rotated = await _auth(
            replica, "POST", "/auth/refresh", json={"refresh_token": login.refresh_token}
        )
        assert rotated.status_code == 200, rotated.text
        successor = Login(rotated.json()["access_token"], rotated.json()["refresh_token"])
        replayed = await _auth(
            replica, "POST", "/auth/refresh", json={"refresh_token": login.refresh_token}
        )
        assert replayed.status_code == 401
        assert replayed.json()["code"] == "refresh_token_reused"
        # The tasks service follows `auth_server`: same database, same feed.
        await _refused(client, login.headers, "reuse detection")
        await _refused(client, successor.headers, "reuse detection (the successor)")
        assert await _serves(client, other.headers)
    finally:
        replica.stop()


async def test_auth_down_keeps_the_last_state_and_keeps_serving(
    spare_auth: SpareAuth, tasks_database_url: str
) -> None:
    auth = spare_auth()
    auth.start()
    user = auth.new_user()
    revoked, kept = await _login(auth, user), await _login(auth, user)
    unseen = await _login(auth, user)  # verified for the first time while auth is down
    settings = tasks_settings(tasks_database_url, auth, revocation_retry_max_seconds=1)
    async with running_app(settings) as (app, client):
        follower: RevocationFollower = app.state.ctx.revocations
        assert await _serves(client, revoked.headers)
        response = await _auth(
            auth, "POST", "/auth/logout", json={"refresh_token": revoked.refresh_token}
        )
        assert response.status_code == 204
        await _refused(client, revoked.headers, "logout before the outage")

        auth.stop()

        async def failing() -> bool:
            return int(follower.state()["consecutive_failures"]) >= 2

        await eventually(failing)
        for login in (kept, unseen):
            assert await _serves(client, login.headers)
        written = await client.post("/api/tasks", json={"title": "offline"}, headers=kept.headers)
        assert written.status_code == 201
        refused = await client.get("/api/tasks", headers=revoked.headers)
        assert refused.status_code == 401
        assert refused.json()["code"] == "token_revoked"

        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        check = ready.json()["checks"]["revocations"]
        assert check["status"] == "ok"
        details = check["details"]
        assert details["loaded"] is True
        assert details["sessions"] >= 1
        assert details["consecutive_failures"] >= 2
        assert details["last_error"]
        assert details["age_seconds"] >= 0
        assert await metric(client, "tasks_revocation_polls_total", result="failure") >= 2

        # Back: the next revocation is followed again.
        auth.start()
        response = await _auth(
            auth, "POST", "/auth/logout", json={"refresh_token": kept.refresh_token}
        )
        assert response.status_code == 204
        await _refused(client, kept.headers, "logout after the outage")
        assert await metric(client, "tasks_revocations_last_success_timestamp_seconds") > 0


async def test_no_request_passes_before_the_feed_was_read_once(
    spare_auth: SpareAuth, auth_server: AuthServer, alice: User, tasks_database_url: str
) -> None:
    """Keys from the running auth, revocations from one that is not up yet: a token cannot
    be told from a revoked one, so 503 (never a silent pass) and not ready; then it loads."""
    feed = spare_auth(port=free_port())  # not started
    settings = tasks_settings(
        tasks_database_url,
        auth_server,
        auth_revocations_url=f"{feed.base_url}/revocations",
        revocation_startup_wait_seconds=0.3,
    )
    async with running_app(settings) as (app, client):
        assert await app.state.ctx.jwks.refresh()
        response = await client.get("/api/tasks", headers=alice.headers)
        assert response.status_code == 503
        assert response.json()["code"] == "revocations_unavailable"
        assert response.headers["Retry-After"]
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["revocations"]["error"] == "RevocationsNotLoaded"
        assert (await client.get("/health/live")).status_code == 200

        feed.start()

        # A waiting request asks for a poll at once (no back-off wait).
        async def serves() -> bool:
            response = await client.get("/api/tasks", headers=alice.headers)
            return response.status_code == 200

        # (The 0.3 s wait may end between two attempts: then the next request.)
        await eventually(serves)
        assert (await client.get("/health/ready")).status_code == 200


async def test_the_feed_secret(
    spare_auth: SpareAuth, tasks_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_REVOCATIONS_TOKEN", "shared-feed-secret")
    auth = spare_auth()
    auth.start()  # reads AUTH_REVOCATIONS_TOKEN as it builds the app
    monkeypatch.delenv("AUTH_REVOCATIONS_TOKEN")
    user = auth.new_user()
    good = tasks_settings(tasks_database_url, auth, auth_revocations_token="shared-feed-secret")
    async with running_app(good) as (app, client):
        assert await app.state.ctx.revocations.wait_loaded(10)
        assert await _serves(client, user.headers)
    wrong = tasks_settings(
        tasks_database_url, auth, auth_revocations_token="not-it", revocation_startup_wait_seconds=0
    )
    async with running_app(wrong) as (app, client):
        follower: RevocationFollower = app.state.ctx.revocations

        async def refused() -> bool:
            return bool(follower.state()["last_error"] == "HTTP 401")

        await eventually(refused)
        assert not follower.loaded


async def test_switched_off_nothing_is_followed(
    auth_server: AuthServer, tasks_database_url: str
) -> None:
    settings = tasks_settings(tasks_database_url, auth_server, revocations_enabled=False)
    user = auth_server.new_user()
    login = await _login(auth_server, user)
    await _auth(auth_server, "POST", "/auth/logout", json={"refresh_token": login.refresh_token})
    async with running_app(settings) as (_, client):
        assert await _serves(client, login.headers)  # until it expires
        health = (await client.get("/health")).json()
        assert health["checks"]["revocations"]["details"]["enabled"] is False


def test_the_feed_url_defaults_to_auths_root() -> None:
    jwks = Settings(auth_jwks_url="http://auth:8000/auth/.well-known/jwks.json")
    assert jwks.revocations_url == "http://auth:8000/revocations"
    issuer = Settings(auth_issuer="http://127.0.0.1:8001/auth")
    assert issuer.revocations_url == "http://127.0.0.1:8001/revocations"
    explicit = Settings(auth_revocations_url="http://auth-internal:9000/revocations")
    assert explicit.revocations_url == "http://auth-internal:9000/revocations"
    assert Settings(auth_revocations_url="").auth_revocations_url is None


# The follower's rules against a scripted feed (httpx.MockTransport).

USER = uuid.UUID("6f1c1c7e-8a5e-4f55-9d61-2d3b1c0f9a11")
SID = uuid.UUID("0c5a0f3e-0d1f-4c57-9a56-6f7e4b5b2a10")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _page(
    entries: list[dict[str, Any]], next_: str, more: bool = False, retention: int = 1500
) -> dict[str, Any]:
    return {"entries": entries, "next": next_, "more": more, "retention_seconds": retention}


def _user_entry(version: int, active: bool, user: uuid.UUID = USER) -> dict[str, Any]:
    return {
        "seq": 1,
        "kind": "user",
        "user_id": str(user),
        "session_id": None,
        "token_version": version,
        "is_active": active,
        "created_at": "2026-12-01T00:00:00Z",
    }


def _session_entry(sid: uuid.UUID = SID) -> dict[str, Any]:
    return {
        "seq": 2,
        "kind": "session",
        "user_id": str(USER),
        "session_id": str(sid),
        "token_version": None,
        "is_active": None,
        "created_at": "2026-12-01T00:00:00Z",
    }


def _follower(
    handler: Callable[[httpx.Request], httpx.Response], clock: FakeClock | None = None
) -> tuple[RevocationFollower, TasksMetrics, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    metrics = TasksMetrics(new_registry())
    settings = Settings(auth_revocations_url="http://auth.test/revocations")
    follower = RevocationFollower(settings, metrics, client=http, clock=clock or FakeClock())
    return follower, metrics, http


async def test_rules_for_each_kind_of_entry() -> None:
    other = uuid.uuid4()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=_page(
                [_user_entry(3, True), _session_entry(), _user_entry(5, False, other)], "9-3"
            ),
        )

    follower, _, http = _follower(handler)
    async with http:
        assert follower.state()["loaded"] is False
        assert await follower.poll()
        assert follower.loaded
    fresh_sid = uuid.uuid4()
    # A raised version: below it is revoked, from it on valid.
    assert follower.is_revoked(USER, fresh_sid, 2)
    assert not follower.is_revoked(USER, fresh_sid, 3)
    # A revoked session, whatever the version.
    assert follower.is_revoked(USER, SID, 99)
    # Deactivated or deleted at version 5: 5 and below are dead; 6 (after a reactivation) not.
    assert follower.is_revoked(other, fresh_sid, 5)
    assert not follower.is_revoked(other, fresh_sid, 6)
    # Someone the feed never named.
    assert not follower.is_revoked(uuid.uuid4(), uuid.uuid4(), 0)


async def test_versions_only_rise_and_pages_follow_on() -> None:
    asked: list[str | None] = []
    pages = {
        None: _page([_user_entry(4, True)], "5-1", more=True),
        "5-1": _page([_user_entry(2, True)], "6-2"),  # an older entry read later
        "6-2": _page([], "6-2"),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        asked.append(after)
        assert request.url.params["limit"] == "1000"
        return httpx.Response(200, json=pages[after])

    follower, metrics, http = _follower(handler)
    async with http:
        assert await follower.poll()  # both pages in one poll
        assert asked == [None, "5-1"]
        assert await follower.poll()
        assert asked == [None, "5-1", "6-2"]
    assert follower.is_revoked(USER, uuid.uuid4(), 3)
    assert not follower.is_revoked(USER, uuid.uuid4(), 4)
    assert metrics.revocation_entries.labels(kind="user")._value.get() == 2


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, json={"detail": "x", "code": "internal_error"}),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"entries": [], "more": False, "retention_seconds": 1}),
        httpx.Response(200, json=_page([{"kind": "session", "user_id": "x"}], "1-1")),
        httpx.Response(200, json=_page([_user_entry(-1, True)], "1-1")),
        httpx.Response(200, json=_page([], "not-a-cursor")),
        httpx.Response(200, json=_page([], "1-1", retention=0)),
        httpx.Response(200, json=_page([], "1-1", more=True)),  # "more" but the same cursor
    ],
)
async def test_a_bad_answer_keeps_the_last_state(answer: httpx.Response) -> None:
    answers = [httpx.Response(200, json=_page([_session_entry()], "1-1")), answer]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    follower, metrics, http = _follower(handler)
    async with http:
        assert await follower.poll()
        assert not await follower.poll()
    assert follower.loaded
    assert follower.is_revoked(USER, SID, 0)
    assert follower.state()["consecutive_failures"] == 1
    assert metrics.revocation_polls.labels(result="failure")._value.get() == 1


async def test_unknown_kinds_are_skipped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        future = {"seq": 3, "kind": "client", "user_id": str(USER)}
        return httpx.Response(200, json=_page([future, _session_entry()], "1-3"))

    follower, _, http = _follower(handler)
    async with http:
        assert await follower.poll()
    assert follower.is_revoked(USER, SID, 0)


async def test_a_cursor_the_feed_does_not_know_reads_it_again() -> None:
    asked: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        asked.append(after)
        if after == "1-1":
            return httpx.Response(410, json={"detail": "x", "code": "revocation_cursor_unknown"})
        return httpx.Response(200, json=_page([_session_entry()], "1-1"))

    follower, _, http = _follower(handler)
    async with http:
        assert await follower.poll()
        assert await follower.poll()  # 410, then from the start again
    assert asked == [None, "1-1", None]
    assert follower.is_revoked(USER, SID, 0)


async def test_entries_are_forgotten_after_the_retention() -> None:
    clock = FakeClock()
    entries = [_session_entry(), _user_entry(3, True)]

    def handler(request: httpx.Request) -> httpx.Response:
        page = _page(list(entries), "1-2", retention=100)
        entries.clear()
        return httpx.Response(200, json=page)

    follower, metrics, http = _follower(handler, clock)
    async with http:
        assert await follower.poll()
        clock.now += 50
        assert await follower.poll()
        assert follower.is_revoked(USER, SID, 5)
        assert metrics.revocations_tracked.labels(kind="session")._value.get() == 1
        clock.now += 51  # 101 s after they arrived: every token they could refuse has expired
        assert await follower.poll()
    assert not follower.is_revoked(USER, SID, 0)
    assert follower.state()["sessions"] == follower.state()["users"] == 0
    assert metrics.revocations_tracked.labels(kind="session")._value.get() == 0


async def test_the_secret_is_sent_as_a_bearer_token() -> None:
    settings = Settings(
        auth_revocations_url="http://auth.test/revocations", auth_revocations_token="s3cret"
    )
    follower = RevocationFollower(settings, TasksMetrics(new_registry()))
    await follower.start()  # makes its own client
    try:
        assert follower._client is not None
        assert follower._client.headers["authorization"] == "Bearer s3cret"
    finally:
        await follower.stop()
