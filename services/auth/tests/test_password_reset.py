"""Forgotten passwords, against a real SMTP server: the mailed link, single use, expiry."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from importlib.resources import files
from string import Template

import httpx
import pytest
from auth_factories import Account, LoginFn, MakeAccountFn, SqlFn, bearer
from mail_support import (
    FRONTEND,
    MailTest,
    SmtpSink,
    html_body,
    link_token,
    metric,
    running,
    smtp_settings,
    text_body,
)

from auth_service.core.config import Settings
from auth_service.core.mail_templates import render
from taskgate_devstack.postgres import free_port

NEW_PASSWORD = "a brand new password"


async def _forgot(http: httpx.AsyncClient, email: str) -> httpx.Response:
    response = await http.post("/auth/forgot-password", json={"email": email})
    assert response.status_code == 202, response.text
    return response


async def _reset_token(mail: MailTest, account: Account) -> str:
    await _forgot(mail.http, account.email)
    [message] = await mail.delivered(to=account.email)
    return link_token(message, "/reset-password")


async def _reset(
    http: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD
) -> httpx.Response:
    return await http.post("/auth/reset-password", json={"token": token, "new_password": password})


async def _login_status(http: httpx.AsyncClient, account: Account, password: str) -> int:
    response = await http.post(
        "/auth/login", json={"username": account.username, "password": password}
    )
    return response.status_code


def _is_invalid_token(response: httpx.Response) -> bool:
    return response.status_code == 400 and response.json()["code"] == "invalid_reset_token"


async def test_forgot_mail_reset_then_login_with_the_new_password(
    mail: MailTest, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    account = await make_account()
    await _forgot(mail.http, account.email.upper())  # the address in any case

    [message] = await mail.delivered()
    assert message["To"] == account.email
    assert message["Subject"] == "Reset your taskgate password"
    assert message["Message-ID"]
    token = link_token(message, "/reset-password")
    assert len(token) >= 43  # 256 bits, base64url
    assert "30 minutes" in text_body(message)
    assert f'href="{FRONTEND}/reset-password?token={token}"' in html_body(message)

    # Stored only as its SHA-256, living 30 minutes.
    [(stored_hash, lifetime)] = await sql(
        "SELECT token_hash, extract(epoch FROM expires_at - created_at) FROM email_tokens"
    )
    assert bytes(stored_hash) == hashlib.sha256(token.encode()).digest()
    assert 1790 <= float(lifetime) <= 1810

    assert (await _reset(mail.http, token)).status_code == 204
    assert await _login_status(mail.http, account, account.password) == 401
    assert await _login_status(mail.http, account, NEW_PASSWORD) == 200
    me = await sql(f"SELECT email_verified FROM users WHERE id = '{account.id}'")  # noqa: S608
    assert me == [(True,)]  # the link reached the mailbox: the address is proven too


async def test_a_reset_token_works_once(mail: MailTest, make_account: MakeAccountFn) -> None:
    token = await _reset_token(mail, await make_account())
    assert (await _reset(mail.http, token)).status_code == 204
    assert _is_invalid_token(await _reset(mail.http, token, "yet another password"))


async def test_concurrent_resets_with_one_token_succeed_once(
    mail: MailTest, make_account: MakeAccountFn
) -> None:
    token = await _reset_token(mail, await make_account())
    answers = await asyncio.gather(
        _reset(mail.http, token, "first new password"),
        _reset(mail.http, token, "second new password"),
    )
    assert sorted(r.status_code for r in answers) == [204, 400]


async def test_an_expired_token_is_refused(
    mail: MailTest, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    account = await make_account()
    token = await _reset_token(mail, account)
    await sql("UPDATE email_tokens SET expires_at = now() - interval '1 second'")
    assert _is_invalid_token(await _reset(mail.http, token))
    assert await _login_status(mail.http, account, account.password) == 200


async def test_unknown_and_garbage_tokens_are_refused(mail: MailTest) -> None:
    assert _is_invalid_token(await _reset(mail.http, "x" * 43))
    response = await mail.http.post("/auth/reset-password", json={"token": "", "new_password": "x"})
    assert response.status_code == 422


async def test_the_lifetime_is_configurable(
    settings: Settings, smtp_sink: SmtpSink, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    account = await make_account()
    ten_minutes = smtp_settings(settings, smtp_sink, reset_token_ttl_seconds=600)
    async with running(ten_minutes, smtp_sink) as service:
        await _forgot(service.http, account.email)
        [message] = await service.delivered(to=account.email)
    assert "10 minutes" in text_body(message)
    [(lifetime,)] = await sql(
        "SELECT extract(epoch FROM expires_at - created_at) FROM email_tokens"
    )
    assert 590 <= float(lifetime) <= 610


async def test_a_second_request_kills_the_first_token(
    mail: MailTest, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    account = await make_account()
    first = await _reset_token(mail, account)
    assert mail.sink is not None
    mail.sink.clear()  # the next mail is the second link
    second = await _reset_token(mail, account)
    assert first != second
    assert await sql("SELECT count(*) FROM email_tokens") == [(1,)]
    assert _is_invalid_token(await _reset(mail.http, first))
    assert (await _reset(mail.http, second)).status_code == 204


async def test_concurrent_requests_leave_one_live_token(
    mail: MailTest, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    account = await make_account()
    await asyncio.gather(*(_forgot(mail.http, account.email) for _ in range(5)))
    assert len(await mail.delivered()) == 5
    assert await sql("SELECT count(*) FROM email_tokens") == [(1,)]


async def test_unknown_or_inactive_email_gets_the_same_answer_and_no_mail(
    mail: MailTest, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    known = await make_account()
    inactive = await make_account()
    await sql(f"UPDATE users SET is_active = false WHERE id = '{inactive.id}'")  # noqa: S608

    answers = [
        await _forgot(mail.http, email)
        for email in (known.email, "nobody@example.com", inactive.email)
    ]
    assert len({(r.status_code, r.text, r.headers["content-type"]) for r in answers}) == 1
    assert answers[0].json() == {
        "detail": "If an account has this email address, a link to reset its password is on "
        "its way."
    }
    assert [m["To"] for m in await mail.delivered()] == [known.email]


async def test_reset_ends_every_session_and_old_access_tokens(
    mail: MailTest, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account()
    tokens = await open_session(account)
    token = await _reset_token(mail, account)
    assert (await _reset(mail.http, token)).status_code == 204

    refreshed = await mail.http.post(
        "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    assert refreshed.json()["code"] == "refresh_token_revoked"
    me = await mail.http.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401
    assert me.json()["code"] == "token_revoked"


async def test_password_rules_apply_and_a_refused_password_keeps_the_token(
    mail: MailTest, make_account: MakeAccountFn
) -> None:
    token = await _reset_token(mail, await make_account())
    short = await _reset(mail.http, token, "short")
    assert short.status_code == 422
    assert short.json()["errors"][0]["loc"][-1] == "new_password"
    assert (await _reset(mail.http, token)).status_code == 204


async def test_changing_the_password_kills_outstanding_reset_tokens(
    mail: MailTest, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account()
    token = await _reset_token(mail, account)
    access = (await open_session(account))["access_token"]
    changed = await mail.http.post(
        "/auth/change-password",
        json={"current_password": account.password, "new_password": "changed password 1"},
        headers=bearer(access),
    )
    assert changed.status_code == 204
    assert _is_invalid_token(await _reset(mail.http, token))


async def test_changing_the_email_kills_a_token_sent_to_the_old_address(
    mail: MailTest, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account()
    token = await _reset_token(mail, account)
    access = (await open_session(account))["access_token"]
    moved = await mail.http.patch(
        "/auth/me",
        json={"email": "moved@example.com", "current_password": account.password},
        headers=bearer(access),
    )
    assert moved.status_code == 200
    # Pending: the reset link to the account's (still current) address keeps working...
    found = await mail.http.post("/auth/confirm-email-change", json={"token": "nonsense"})
    assert found.status_code == 400
    [confirmation] = await mail.delivered(to="moved@example.com")
    confirmed = await mail.http.post(
        "/auth/confirm-email-change",
        json={"token": link_token(confirmation, "/confirm-email-change")},
    )
    assert confirmed.status_code == 204
    # ...until the new address is confirmed: then a link sent to the old one is dead.
    assert _is_invalid_token(await _reset(mail.http, token))


async def test_smtp_down_the_api_still_answers_and_the_failure_is_counted(
    settings: Settings, make_account: MakeAccountFn, caplog: pytest.LogCaptureFixture
) -> None:
    account = await make_account()
    dead = settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_security": "none"}
    )
    failed = 'auth_emails_total{kind="%s",result="failed"}'
    mail_log = logging.getLogger("taskgate.auth.mail")
    async with running(dead, sink=None) as service:
        # The app configures the root logger at startup, so listen on the mail logger itself.
        mail_log.addHandler(caplog.handler)
        try:
            await _forgot(service.http, account.email)
            registered = await service.http.post(
                "/auth/register",
                json={"email": "down@example.com", "username": "smtp_down", "password": "pw-12345"},
            )
            assert registered.status_code == 201
            await service.delivered()
        finally:
            mail_log.removeHandler(caplog.handler)
        assert await metric(service.http, failed % "password_reset") == 1
        assert await metric(service.http, failed % "email_verification") == 1
    warnings = [r for r in caplog.records if r.name == mail_log.name]
    assert sorted(getattr(r, "kind", "") for r in warnings) == [
        "email_verification",
        "password_reset",
    ]
    assert all(r.levelno == logging.WARNING for r in warnings)


async def test_a_service_without_smtp_answers_the_same_and_sends_nothing(
    client: httpx.AsyncClient, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    account = await make_account()
    response = await client.post("/auth/forgot-password", json={"email": account.email})
    assert response.status_code == 202
    assert await sql("SELECT count(*) FROM email_tokens") == [(0,)]


def test_html_bodies_escape_the_values() -> None:
    mail = render(
        "email_verification",
        link="http://x.test/verify-email?token=a&b",
        expires_in="24 hours",
    )
    assert 'href="http://x.test/verify-email?token=a&amp;b"' in mail.html
    assert "http://x.test/verify-email?token=a&b" in mail.text  # the plain text is not HTML
    assert mail.subject == "Confirm your email address for taskgate"


def test_no_template_has_a_place_for_user_chosen_text() -> None:
    """Only a link and its lifetime are ever filled in: a username or an address typed by
    somebody else can never appear in a mail, where it could read as a link or an order."""
    templates = [
        entry
        for entry in files("auth_service").joinpath("templates").iterdir()
        if entry.name.endswith((".txt", ".html"))
    ]
    assert len(templates) >= 10
    for template in templates:
        placeholders = set(Template(template.read_text(encoding="utf-8")).get_identifiers())
        assert placeholders <= {"link", "expires_in"}, template.name
