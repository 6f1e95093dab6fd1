"""Refreshes that race: the grace window for a just-rotated token, with one app, two apps and
two auth processes on one database, and what the exchange costs in statements.

No test waits for the window to pass: "after the window" moves `spent_at` back with SQL.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth_factories import ISSUER, LoginFn, MakeAccountFn, SqlFn, bearer, claims_of
from fastapi import FastAPI
from limits_support import limited_app, metric
from sqlalchemy import event

from auth_service.context import AuthContext
from auth_service.core.config import Settings
from auth_service.main import create_app
from taskgate_devstack.postgres import free_port
from taskgate_devstack.processes import spawn, terminate

AFTER_THE_WINDOW = (
    "UPDATE refresh_tokens SET spent_at = spent_at - interval '31 seconds' "
    "WHERE spent_at IS NOT NULL"
)
FAMILY_TOKENS = "SELECT count(*), count(*) FILTER (WHERE spent_at IS NULL) FROM refresh_tokens"

Refresh = Callable[[str], Awaitable[httpx.Response]]


def _refresher(http: httpx.AsyncClient) -> Refresh:
    async def _refresh(token: str) -> httpx.Response:
        return await http.post("/auth/refresh", json={"refresh_token": token})

    return _refresh


@asynccontextmanager
async def _app(settings: Settings, **overrides: Any) -> AsyncIterator[FastAPI]:
    """An auth app of its own (its own engine and pool) on the suite's database."""
    app = create_app(settings.model_copy(update={"db_pool_size": 12, **overrides}))
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def _warm(refresh: Refresh, n: int) -> None:
    """Open `n` pooled connections with the exchange's statement prepared, so that a burst
    really runs at once (connecting and asyncpg's type introspection take long enough to let
    one exchange finish before the others start)."""
    warm = await asyncio.gather(*(refresh(f"warm-up-{i}") for i in range(n)))
    assert {r.status_code for r in warm} == {401}


# ---------------------------------------------------------------------------------------------
# One app
# ---------------------------------------------------------------------------------------------


async def test_ten_concurrent_refreshes_of_one_token_all_succeed_with_one_successor(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    """Ten tabs see an expired access token at the same moment and refresh with the same
    token: all ten stay logged in, on one login with one live refresh token."""
    refresh = _refresher(client)
    first = await open_session(await make_account())
    await _warm(refresh, 10)

    responses = await asyncio.gather(*(refresh(first["refresh_token"]) for _ in range(10)))

    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
    successors = {r.json()["refresh_token"] for r in responses}
    assert len(successors) == 1
    [successor] = successors
    assert successor != first["refresh_token"]
    sid = claims_of(first["access_token"])["sid"]
    for response in responses:
        access = response.json()["access_token"]
        assert claims_of(access)["sid"] == sid
        assert (await client.get("/auth/me", headers=bearer(access))).status_code == 200
    # One successor minted: the family holds the original (spent) and one live token.
    assert await sql(FAMILY_TOKENS) == [(2, 1)]
    # The successor works, once: it rotates, and the login goes on.
    onward = await refresh(successor)
    assert onward.status_code == 200
    assert onward.json()["refresh_token"] not in {successor, first["refresh_token"]}
    assert await sql(FAMILY_TOKENS) == [(3, 1)]


async def test_a_replay_within_the_window_answers_the_same_successor_and_a_new_access_token(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    refresh = _refresher(client)
    first = await open_session(await make_account())
    rotated = (await refresh(first["refresh_token"])).json()

    replay = await refresh(first["refresh_token"])  # a second tab, a moment later

    assert replay.status_code == 200, replay.text
    assert replay.headers["cache-control"] == "no-store"
    body = replay.json()
    assert body["refresh_token"] == rotated["refresh_token"]
    assert body["access_token"] != rotated["access_token"]
    assert claims_of(body["access_token"])["sid"] == claims_of(rotated["access_token"])["sid"]
    assert 0 < body["refresh_expires_in"] <= rotated["refresh_expires_in"]
    assert await sql(FAMILY_TOKENS) == [(2, 1)]  # nothing written
    assert (await client.get("/auth/me", headers=bearer(body["access_token"]))).status_code == 200


async def test_a_replay_after_the_window_revokes_the_family(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    refresh = _refresher(client)
    first = await open_session(await make_account())
    rotated = (await refresh(first["refresh_token"])).json()
    await sql(AFTER_THE_WINDOW)

    replay = await refresh(first["refresh_token"])

    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"
    successor = await refresh(rotated["refresh_token"])
    assert successor.json()["code"] == "refresh_token_revoked"
    me = await client.get("/auth/me", headers=bearer(rotated["access_token"]))
    assert me.json()["code"] == "token_revoked"
    [(reason,)] = await sql("SELECT revoked_reason FROM refresh_sessions")
    assert reason == "reuse"


async def test_a_replay_after_the_successor_was_used_revokes_the_family(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    refresh = _refresher(client)
    first = await open_session(await make_account())
    second = (await refresh(first["refresh_token"])).json()
    third = (await refresh(second["refresh_token"])).json()  # the successor was used

    replay = await refresh(first["refresh_token"])  # still within the window

    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"
    assert (await refresh(third["refresh_token"])).json()["code"] == "refresh_token_revoked"


async def test_the_second_to_last_token_replays_within_the_window_while_the_first_is_reuse(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    """Only the token whose successor is still unused is a grace replay."""
    refresh = _refresher(client)
    first = await open_session(await make_account())
    second = (await refresh(first["refresh_token"])).json()
    third = (await refresh(second["refresh_token"])).json()

    again = await refresh(second["refresh_token"])

    assert again.status_code == 200
    assert again.json()["refresh_token"] == third["refresh_token"]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE refresh_sessions SET revoked_at = now(), revoked_reason = 'logout'",
        "UPDATE refresh_sessions SET expires_at = now() - interval '1 second'",
    ],
)
async def test_no_grace_for_a_family_that_ended(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    sql: SqlFn,
    statement: str,
) -> None:
    refresh = _refresher(client)
    first = await open_session(await make_account())
    await refresh(first["refresh_token"])
    await sql(statement)

    replay = await refresh(first["refresh_token"])

    assert replay.status_code == 401


async def test_no_grace_for_a_deactivated_user(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    refresh = _refresher(client)
    first = await open_session(await make_account())
    await refresh(first["refresh_token"])
    await sql("UPDATE users SET is_active = false")

    replay = await refresh(first["refresh_token"])

    assert replay.status_code == 401
    assert replay.json()["code"] == "user_inactive"


async def test_a_token_rotated_before_the_family_had_a_secret_is_never_a_grace_replay(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    """A login from before migration 0005 has no rotation secret: a token it spent then had a
    random successor, which no replay can recompute, so replaying it is reuse, as before."""
    refresh = _refresher(client)
    first = await open_session(await make_account())
    await refresh(first["refresh_token"])
    await sql("UPDATE refresh_sessions SET rotation_secret = NULL")

    replay = await refresh(first["refresh_token"])

    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"


async def test_an_old_login_gets_a_secret_and_the_window_at_its_next_refresh(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    refresh = _refresher(client)
    first = await open_session(await make_account())
    await sql("UPDATE refresh_sessions SET rotation_secret = NULL")

    rotated = await refresh(first["refresh_token"])
    replay = await refresh(first["refresh_token"])

    assert rotated.status_code == 200
    assert await sql("SELECT length(rotation_secret) FROM refresh_sessions") == [(32,)]
    assert replay.status_code == 200
    assert replay.json()["refresh_token"] == rotated.json()["refresh_token"]


async def test_two_tabs_refreshing_with_the_cookie_both_stay_logged_in(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    login = await client.post(
        "/auth/login?cookie=true",
        json={"username": account.username, "password": account.password},
    )
    cookie = login.cookies["taskgate_refresh"]
    await _warm(_refresher(client), 2)
    headers = {"Cookie": f"taskgate_refresh={cookie}", "Content-Type": "application/json"}

    tabs = await asyncio.gather(
        *(client.post("/auth/refresh", content="{}", headers=headers) for _ in range(2))
    )

    assert [tab.status_code for tab in tabs] == [200, 200], [tab.text for tab in tabs]
    cookies = {tab.cookies["taskgate_refresh"] for tab in tabs}
    assert len(cookies) == 1
    assert cookies != {cookie}


async def test_rotations_grace_replays_and_reuse_are_counted_apart(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    sql: SqlFn,
) -> None:
    def counts() -> tuple[float, ...]:
        return (
            metric(app, "auth_refreshes_total", result="success"),
            metric(app, "auth_refreshes_total", result="grace_replay"),
            metric(app, "auth_refreshes_total", result="reused"),
            metric(app, "auth_refresh_reuse_detected_total"),
            metric(app, "auth_sessions_revoked_total", reason="reuse"),
            metric(app, "auth_tokens_issued_total", type="refresh"),
        )

    refresh = _refresher(client)
    token = (await open_session(await make_account()))["refresh_token"]
    before = counts()
    await refresh(token)  # a rotation
    await refresh(token)  # a grace replay
    await refresh(token)  # another
    await sql(AFTER_THE_WINDOW)
    await refresh(token)  # reuse
    after = counts()

    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 2, 1, 1, 1, 1]
    text = (await client.get("/metrics")).text
    assert 'auth_refreshes_total{result="grace_replay"}' in text


async def test_with_the_window_off_concurrent_refreshes_have_one_winner(
    settings: Settings, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    """AUTH_REFRESH_REUSE_GRACE_SECONDS=0: today's strict rule. Twenty at once: one rotates,
    nineteen are reuse (the family is revoked), and exactly one successor was ever minted."""
    async with _app(settings, refresh_reuse_grace_seconds=0) as app, _client(app) as http:
        refresh = _refresher(http)
        account = await make_account()
        login = await http.post(
            "/auth/login", json={"username": account.username, "password": account.password}
        )
        token = login.json()["refresh_token"]
        await _warm(refresh, 12)

        responses = await asyncio.gather(*(refresh(token) for _ in range(20)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 19, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 401} == {"refresh_token_reused"}
    assert await sql(FAMILY_TOKENS) == [(2, 1)]


async def test_with_the_window_off_an_immediate_replay_is_reuse(
    settings: Settings, make_account: MakeAccountFn
) -> None:
    async with _app(settings, refresh_reuse_grace_seconds=0) as app, _client(app) as http:
        refresh = _refresher(http)
        account = await make_account()
        login = await http.post(
            "/auth/login", json={"username": account.username, "password": account.password}
        )
        token = login.json()["refresh_token"]
        rotated = await refresh(token)
        replay = await refresh(token)

    assert rotated.status_code == 200
    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"


# ---------------------------------------------------------------------------------------------
# Two apps, two processes: one database
# ---------------------------------------------------------------------------------------------


async def _fire_at_both(
    refreshes: tuple[Refresh, Refresh], token: str, n: int
) -> list[httpx.Response]:
    """`n` concurrent refreshes of `token`, alternately at either instance."""
    return await asyncio.gather(*(refreshes[i % 2](token) for i in range(n)))


async def _assert_one_successor(
    responses: list[httpx.Response], token: str, refreshes: tuple[Refresh, Refresh], sql: SqlFn
) -> None:
    assert [r.status_code for r in responses] == [200] * len(responses), [r.text for r in responses]
    successors = {r.json()["refresh_token"] for r in responses}
    assert len(successors) == 1, successors
    [successor] = successors
    assert await sql(FAMILY_TOKENS) == [(2, 1)]
    # The successor works once, at the other instance; then the first token is spent for good.
    onward = await refreshes[1](successor)
    assert onward.status_code == 200
    replay = await refreshes[0](token)
    assert replay.json()["code"] == "refresh_token_reused"
    assert (await refreshes[1](onward.json()["refresh_token"])).status_code == 401


async def test_two_apps_on_one_database_agree_on_one_successor(
    settings: Settings, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    async with (
        _app(settings) as one,
        _app(settings) as two,
        _client(one) as http_one,
        _client(two) as http_two,
    ):
        refreshes = (_refresher(http_one), _refresher(http_two))
        account = await make_account()
        login = await http_one.post(
            "/auth/login", json={"username": account.username, "password": account.password}
        )
        token = login.json()["refresh_token"]
        await asyncio.gather(_warm(refreshes[0], 6), _warm(refreshes[1], 6))

        responses = await _fire_at_both(refreshes, token, 12)

        await _assert_one_successor(responses, token, refreshes, sql)


@contextmanager
def _auth_process(settings: Settings, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "AUTH_DATABASE_URL": settings.database_url,
        "AUTH_ISSUER": ISSUER,
        "AUTH_SIGNING_KEY_FILE": str(settings.signing_key_file),
        "AUTH_RATE_LIMIT_ENABLED": "false",
        "AUTH_LOG_LEVEL": "WARNING",
        "AUTH_DB_POOL_SIZE": "8",
        "AUTH_PASSWORD_HASH_CONCURRENCY": "1",
    }
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "auth_service.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    process = spawn(args, env, log, Path.cwd())
    try:
        yield process
    finally:
        terminate(process)


def _read(log: Path) -> str:
    return log.read_text() if log.exists() else ""


async def _until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll readiness while the process starts (this waits for startup; nothing is timed)."""
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as http, asyncio.timeout(60):
        while True:
            if process.poll() is not None:
                pytest.fail(f"the auth process exited:\n{_read(log)}")
            try:
                if (await http.get("/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


async def test_two_auth_processes_on_one_database_agree_on_one_successor(
    settings: Settings, make_account: MakeAccountFn, sql: SqlFn, tmp_path: Path
) -> None:
    ports = (free_port(), free_port())
    logs = (tmp_path / "auth-1.log", tmp_path / "auth-2.log")
    with (
        _auth_process(settings, ports[0], logs[0]) as first,
        _auth_process(settings, ports[1], logs[1]) as second,
    ):
        urls = tuple(f"http://127.0.0.1:{port}" for port in ports)
        await asyncio.gather(
            _until_ready(urls[0], first, logs[0]), _until_ready(urls[1], second, logs[1])
        )
        async with (
            httpx.AsyncClient(base_url=urls[0], timeout=30.0) as http_one,
            httpx.AsyncClient(base_url=urls[1], timeout=30.0) as http_two,
        ):
            refreshes = (_refresher(http_one), _refresher(http_two))
            account = await make_account()
            login = await http_two.post(
                "/auth/login", json={"username": account.username, "password": account.password}
            )
            assert login.status_code == 200, login.text
            token = login.json()["refresh_token"]
            await asyncio.gather(_warm(refreshes[0], 5), _warm(refreshes[1], 5))

            responses = await _fire_at_both(refreshes, token, 10)

            await _assert_one_successor(responses, token, refreshes, sql)


# ---------------------------------------------------------------------------------------------
# What one exchange costs
# ---------------------------------------------------------------------------------------------


async def test_a_refresh_is_one_lookup_and_four_statements_with_the_limits_on(
    settings: Settings,
    make_account: MakeAccountFn,
    sql: SqlFn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With both refresh limits on: BEGIN, the locking look-up, the rotation, COMMIT on one
    driver connection, and no other query (the per-family limit reuses the look-up's family),
    even on a connection the pool has just opened (no type look-up by the driver)."""
    async with limited_app(settings) as app:
        ctx: AuthContext = app.state.ctx
        account = await make_account()
        async with _client(app) as http:
            login = await http.post(
                "/auth/login", json={"username": account.username, "password": account.password}
            )
            token = login.json()["refresh_token"]
            await ctx.engine.dispose()  # the exchange gets a new connection
            statements = await _statements_of(ctx, monkeypatch, _refresher(http), token)

    [(answer, driver, orm)] = statements
    assert answer == 200
    assert len(driver) == 4, "\n---\n".join(driver)
    begin, lookup, rotation, commit = (" ".join(query.split()) for query in driver)
    assert begin == "BEGIN"
    assert lookup.startswith("SELECT ")
    assert "FOR UPDATE OF t, s" in lookup
    assert rotation.startswith("WITH spent AS")
    assert commit == "COMMIT"
    assert orm == []


async def _statements_of(
    ctx: AuthContext, monkeypatch: pytest.MonkeyPatch, refresh: Refresh, token: str
) -> list[tuple[int, list[str], list[str]]]:
    """Refresh `token` once; (its status, the driver statements, the ORM statements)."""
    driver: list[str] = []
    orm: list[str] = []
    connect = ctx.db.connect

    @asynccontextmanager
    async def logged_connect() -> AsyncIterator[Any]:
        async with connect() as connection:

            def log(record: Any) -> None:
                driver.append(record.query)

            connection.add_query_logger(log)
            try:
                yield connection
            finally:
                connection.remove_query_logger(log)

    def before_execute(*args: Any) -> None:
        orm.append(str(args[2]))

    monkeypatch.setattr(ctx.db, "connect", logged_connect)
    event.listen(ctx.engine.sync_engine, "before_cursor_execute", before_execute)
    try:
        response = await refresh(token)
    finally:
        event.remove(ctx.engine.sync_engine, "before_cursor_execute", before_execute)
    return [(response.status_code, driver, orm)]


async def test_a_refresh_refused_by_the_family_limit_leaves_the_token_unspent(
    settings: Settings, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    async with (
        limited_app(settings, rate_limit_refresh_per_family="1/minute") as app,
        _client(app) as http,
    ):
        account = await make_account()
        login = await http.post(
            "/auth/login", json={"username": account.username, "password": account.password}
        )
        rotated = await http.post(
            "/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
        )
        refused = await http.post(
            "/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]}
        )

    assert rotated.status_code == 200
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert await sql(FAMILY_TOKENS) == [(2, 1)]  # rolled back: the successor is still live
