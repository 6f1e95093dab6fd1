"""Brute-force lockout per login name: locks, doubles, clears, and tells nothing about accounts."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

from auth_factories import Account, MakeAccountFn
from fastapi import FastAPI
from limits_support import client, limited_app, login, metric

from auth_service.context import AuthContext
from auth_service.core.config import Settings
from auth_service.models import TokenPurpose
from auth_service.repositories import email_tokens
from taskgate_devstack.pytest_plugin import RedisForTests

THRESHOLD = 3
LOCKOUT = {
    "lockout_threshold": THRESHOLD,
    "lockout_base_delay_seconds": 60,
    # The per-IP and per-account rate limits stay out of the way of these tests.
    "rate_limit_login_per_ip": "1000/minute",
    "rate_limit_login_per_account": "1000/minute",
}


async def _fail(app: FastAPI, name: str, times: int) -> list[int]:
    async with client(app) as http:
        return [(await login(http, name, "wrong guess")).status_code for _ in range(times)]


async def test_failures_lock_the_account_whatever_the_ip_even_for_the_right_password(
    settings: Settings, make_account: MakeAccountFn, store_url: str
) -> None:
    account = await make_account()
    async with limited_app(settings, rate_limit_storage_url=store_url, **LOCKOUT) as app:
        assert await _fail(app, account.username, THRESHOLD) == [401] * THRESHOLD
        async with client(app, "198.51.100.77") as elsewhere:
            locked = await login(elsewhere, account.username, account.password)
            by_email = await login(elsewhere, account.email, account.password)
    assert locked.status_code == 429
    assert locked.json()["code"] == "login_locked"
    assert 55 <= int(locked.headers["Retry-After"]) <= 60
    # The email is another login name with its own counter (see docs/security.md).
    assert by_email.status_code == 200
    assert metric(app, "auth_login_lockouts_total") == 1


async def test_unknown_names_lock_exactly_like_real_ones(
    settings: Settings, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    async with limited_app(settings, **LOCKOUT) as app:
        await _fail(app, account.username, THRESHOLD)
        await _fail(app, "no_such_user", THRESHOLD)
        async with client(app) as http:
            real = await login(http, account.username, "wrong guess")
            unknown = await login(http, "no_such_user", "wrong guess")
    assert real.status_code == unknown.status_code == 429
    assert real.json() == unknown.json()
    assert real.headers["Retry-After"] == unknown.headers["Retry-After"]


async def test_each_lockout_doubles_the_next(settings: Settings, store_url: str) -> None:
    async with limited_app(settings, rate_limit_storage_url=store_url, **LOCKOUT) as app:
        ctx: AuthContext = app.state.ctx
        await _fail(app, "target", THRESHOLD)
        first = await _fail(app, "target", 1)
        async with client(app) as http:
            first_wait = int((await login(http, "target", "x")).headers["Retry-After"])
        # What the passing of the first lock's time would do: its key expires.
        _, locked, _ = ctx.lockout._keys("target")
        await ctx.lockout.limiter.store.clear(locked)  # type: ignore[union-attr]
        assert await _fail(app, "target", THRESHOLD) == [401] * THRESHOLD
        async with client(app) as http:
            second_wait = int((await login(http, "target", "x")).headers["Retry-After"])
    assert first == [429]
    assert 55 <= first_wait <= 60
    assert 115 <= second_wait <= 120


async def test_a_successful_login_clears_the_failures(
    settings: Settings, make_account: MakeAccountFn, store_url: str
) -> None:
    account = await make_account()
    async with limited_app(settings, rate_limit_storage_url=store_url, **LOCKOUT) as app:
        await _fail(app, account.username, THRESHOLD - 1)
        async with client(app) as http:
            assert (await login(http, account.username, account.password)).status_code == 200
        # A fresh run: THRESHOLD - 1 more failures do not lock.
        assert await _fail(app, account.username, THRESHOLD - 1) == [401] * (THRESHOLD - 1)
        async with client(app) as http:
            assert (await login(http, account.username, account.password)).status_code == 200


async def _reset_token(ctx: AuthContext, account: Account) -> str:
    token = secrets.token_urlsafe(32)
    async with ctx.sessions() as db, db.begin():
        await email_tokens.replace(
            db,
            user_id=uuid.UUID(account.id),
            purpose=TokenPurpose.PASSWORD_RESET,
            token=token,
            email=account.email,
            expires_at=datetime.now(UTC) + timedelta(minutes=10),
        )
    return token


async def test_a_password_reset_lifts_the_lock(
    settings: Settings, make_account: MakeAccountFn, store_url: str
) -> None:
    account = await make_account()
    async with limited_app(settings, rate_limit_storage_url=store_url, **LOCKOUT) as app:
        await _fail(app, account.username, THRESHOLD)
        await _fail(app, account.email, THRESHOLD)
        token = await _reset_token(app.state.ctx, account)
        async with client(app) as http:
            assert (await login(http, account.username, account.password)).status_code == 429
            reset = await http.post(
                "/auth/reset-password",
                json={"token": token, "new_password": "a brand new password"},
            )
            assert reset.status_code == 204
            by_name = await login(http, account.username, "a brand new password")
            by_email = await login(http, account.email, "a brand new password")
    assert by_name.status_code == by_email.status_code == 200


async def test_the_lock_holds_across_replicas_sharing_redis(
    settings: Settings, make_account: MakeAccountFn, redis: RedisForTests
) -> None:
    account = await make_account()
    options = {"rate_limit_storage_url": redis.url, **LOCKOUT}
    async with limited_app(settings, **options) as a, limited_app(settings, **options) as b:
        await _fail(a, account.username, THRESHOLD - 1)
        await _fail(b, account.username, 1)
        async with client(a) as http:
            answer = await login(http, account.username, account.password)
    assert answer.status_code == 429


async def test_threshold_zero_disables_the_lockout(settings: Settings) -> None:
    async with limited_app(settings, **{**LOCKOUT, "lockout_threshold": 0}) as app:
        assert await _fail(app, "someone", THRESHOLD + 2) == [401] * (THRESHOLD + 2)
