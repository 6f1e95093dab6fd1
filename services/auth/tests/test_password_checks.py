"""Every endpoint that checks a password or sends mail is limited like login (issue 13, 3-5).

Before: 30 wrong `current_password` guesses were 30 answers of 401, the verification mail could be
asked for without end, and `PATCH /auth/me` answered `email_taken` as often as asked.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from auth_factories import Account, MakeAccountFn, bearer
from fastapi import FastAPI
from limits_support import client, limited_app, login, metric

from auth_service.context import AuthContext
from auth_service.core.config import Settings
from auth_service.repositories import users
from auth_service.services.refresh_sessions import start_session

QUIET_LOGIN = {
    "rate_limit_login_per_ip": "1000/minute",
    "rate_limit_login_per_account": "1000/minute",
    "lockout_threshold": 0,
}


async def _access_token(app: FastAPI, account: Account) -> str:
    ctx: AuthContext = app.state.ctx
    async with ctx.sessions() as db, db.begin():
        user = await users.get(db, uuid.UUID(account.id))
        assert user is not None
        pair = await start_session(db, ctx, user)
    return pair.access_token


def _password_attempts() -> dict[str, tuple[str, str, Any]]:
    """Each endpoint that checks the current password, with a wrong one."""
    wrong = {"current_password": "a wrong guess", "new_password": "another password 1"}
    return {
        "change-password": ("POST", "/auth/change-password", wrong),
        "users/me/password": ("POST", "/auth/users/me/password", wrong),
        "email change": (
            "PATCH",
            "/auth/me",
            {"email": "elsewhere@example.com", "current_password": "a wrong guess"},
        ),
    }


@pytest.mark.parametrize("endpoint", ["change-password", "users/me/password", "email change"])
async def test_wrong_current_passwords_count_against_the_login_limits(
    settings: Settings, make_account: MakeAccountFn, store_url: str, endpoint: str
) -> None:
    account = await make_account()
    options = {"rate_limit_storage_url": store_url, "rate_limit_login_per_account": "3/minute"}
    async with limited_app(settings, **options) as app, client(app) as http:
        access = await _access_token(app, account)
        method, path, body = _password_attempts()[endpoint]
        answers = [
            await http.request(method, path, json=body, headers=bearer(access)) for _ in range(4)
        ]
        # The same bucket as logging in with the username: that is refused now as well.
        after = await login(http, account.username, account.password)
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert answers[-1].json()["code"] == "rate_limited"
    assert "Retry-After" in answers[-1].headers
    assert after.status_code == 429
    assert metric(app, "auth_password_checks_total", result="invalid_credentials") == 3


async def test_wrong_current_passwords_lock_the_account_like_failed_logins(
    settings: Settings, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    options = {**QUIET_LOGIN, "lockout_threshold": 3, "lockout_base_delay_seconds": 60}
    async with limited_app(settings, **options) as app, client(app) as http:
        access = await _access_token(app, account)
        wrong = {"current_password": "a wrong guess", "new_password": "another password 1"}
        statuses = [
            (
                await http.post("/auth/change-password", json=wrong, headers=bearer(access))
            ).status_code
            for _ in range(4)
        ]
        # Locked now: even the right password is refused, here and at login (both names).
        right = {"current_password": account.password, "new_password": "another password 1"}
        locked = await http.post("/auth/change-password", json=right, headers=bearer(access))
        by_name = await login(http, account.username, account.password)
        by_email = await login(http, account.email, account.password)
    assert statuses == [401, 401, 401, 429]
    assert locked.json()["code"] == "login_locked"
    assert by_name.json()["code"] == by_email.json()["code"] == "login_locked"


async def test_many_wrong_guesses_from_one_address_are_cut_off(
    settings: Settings, make_account: MakeAccountFn
) -> None:
    """The reported case: 30 guesses in a row. The default limits stop most of them before
    they cost an Argon2 hash (each one a core for ~0.1 s that login also needs)."""
    account = await make_account()
    async with limited_app(settings) as app, client(app) as http:
        access = await _access_token(app, account)
        wrong = {"current_password": "a wrong guess", "new_password": "another password 1"}
        statuses = [
            (
                await http.post("/auth/change-password", json=wrong, headers=bearer(access))
            ).status_code
            for _ in range(30)
        ]
    assert statuses.count(401) <= 5  # the default per-account login limit (5/minute)
    assert statuses.count(429) >= 25
    assert metric(app, "auth_password_checks_total", result="invalid_credentials") <= 5


async def test_verification_mails_are_limited_per_account(
    settings: Settings, make_account: MakeAccountFn, store_url: str
) -> None:
    account = await make_account()
    options = {
        "rate_limit_storage_url": store_url,
        "rate_limit_account_mail_per_account": "2/hour",
    }
    async with limited_app(settings, **options) as app, client(app) as http:
        access = await _access_token(app, account)
        answers = [
            await http.post("/auth/verify-email/request", headers=bearer(access)) for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[-1].json()["code"] == "rate_limited"
    assert metric(app, "auth_rate_limited_total", limit="account_mail_account") == 1


async def test_mail_sending_endpoints_are_limited_per_address_too(
    settings: Settings, make_account: MakeAccountFn
) -> None:
    """Several accounts from one address share the per-IP mail budget."""
    accounts = [await make_account() for _ in range(3)]
    options = {"rate_limit_account_mail_per_ip": "2/hour"}
    async with limited_app(settings, **options) as app, client(app) as http:
        statuses = []
        for account in accounts:
            access = await _access_token(app, account)
            answer = await http.post("/auth/verify-email/request", headers=bearer(access))
            statuses.append(answer.status_code)
    assert statuses == [202, 202, 429]


async def test_email_changes_share_the_mail_limit(
    settings: Settings, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    options = {**QUIET_LOGIN, "rate_limit_account_mail_per_account": "2/hour"}
    async with limited_app(settings, **options) as app, client(app) as http:
        access = await _access_token(app, account)
        statuses = []
        for n in range(3):
            body = {"email": f"next{n}@example.com", "current_password": account.password}
            answer = await http.patch("/auth/me", json=body, headers=bearer(access))
            statuses.append(answer.status_code)
    assert statuses == [200, 200, 429]


async def test_patch_me_is_not_an_unlimited_oracle(
    settings: Settings, make_account: MakeAccountFn
) -> None:
    """Names taken answer 409 (usernames are public), but only so often; and an address that
    is taken answers exactly like a free one (test_email_change.py)."""
    await make_account(username="taken_name")
    account = await make_account()
    options = {"rate_limit_profile_per_account": "3/minute"}
    async with limited_app(settings, **options) as app, client(app) as http:
        access = await _access_token(app, account)
        answers = [
            await http.patch("/auth/me", json={"username": "taken_name"}, headers=bearer(access))
            for _ in range(4)
        ]
    assert [a.status_code for a in answers] == [409, 409, 409, 429]
