"""Email verification, against a real SMTP server, and the AUTH_REQUIRE_VERIFIED_EMAIL gate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from auth_factories import LoginFn, MakeAccountFn, SqlFn, bearer, next_number
from mail_support import (
    FRONTEND,
    MailTest,
    SmtpSink,
    html_body,
    link_token,
    metric,
    running,
    self_signed_server_context,
    smtp_settings,
    text_body,
)

from auth_service.core.config import Settings
from auth_service.core.mailer import MailConfigError
from auth_service.main import create_app
from auth_service.services.bootstrap import create_admin


async def _sign_up(http: httpx.AsyncClient) -> dict[str, str]:
    n = next_number()
    body = {
        "email": f"verify{n}@example.com",
        "username": f"verify{n:04d}",
        "password": f"verify password {n}",
    }
    response = await http.post("/auth/register", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["email_verified"] is False
    return {**body, "id": response.json()["id"]}


async def _verify(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/auth/verify-email", json={"token": token})


def _is_invalid(response: httpx.Response) -> bool:
    return response.status_code == 400 and response.json()["code"] == "invalid_verification_token"


async def test_registration_mails_a_link_that_verifies_once(mail: MailTest, sql: SqlFn) -> None:
    user = await _sign_up(mail.http)
    [message] = await mail.delivered(to=user["email"])
    assert message["Subject"] == "Confirm your email address for taskgate"
    token = link_token(message, "/verify-email")
    assert "24 hours" in text_body(message)
    assert f'href="{FRONTEND}/verify-email?token={token}"' in html_body(message)
    [(stored, lifetime)] = await sql(
        "SELECT token_hash, extract(epoch FROM expires_at - created_at) FROM email_tokens"
    )
    assert bytes(stored) == hashlib.sha256(token.encode()).digest()
    assert 86_390 <= float(lifetime) <= 86_410

    assert (await _verify(mail.http, token)).status_code == 204
    verified = await sql(f"SELECT email_verified FROM users WHERE id = '{user['id']}'")  # noqa: S608
    assert verified == [(True,)]
    assert _is_invalid(await _verify(mail.http, token))
    assert await metric(mail.http, 'auth_email_verifications_total{result="success"}') >= 1


async def test_request_sends_a_new_link_and_the_earlier_one_dies(
    mail: MailTest, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account()
    access = (await open_session(account))["access_token"]
    tokens = []
    for _ in range(2):  # one after the other, as a user clicking "send again" does
        sent = await mail.http.post("/auth/verify-email/request", headers=bearer(access))
        assert sent.status_code == 202
        tokens.append(link_token((await mail.delivered())[-1], "/verify-email"))
    first, second = tokens
    assert _is_invalid(await _verify(mail.http, first))
    assert (await _verify(mail.http, second)).status_code == 204

    again = await mail.http.post("/auth/verify-email/request", headers=bearer(access))
    assert again.status_code == 400
    assert again.json()["code"] == "email_already_verified"
    me = await mail.http.get("/auth/me", headers=bearer(access))
    assert me.json()["email_verified"] is True  # verifying does not end sessions


async def test_request_needs_a_bearer_token(mail: MailTest) -> None:
    response = await mail.http.post("/auth/verify-email/request")
    assert response.status_code == 401


async def test_an_expired_verification_token_is_refused(
    mail: MailTest, sql: SqlFn, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account()
    access = (await open_session(account))["access_token"]
    await mail.http.post("/auth/verify-email/request", headers=bearer(access))
    [message] = await mail.delivered()
    await sql("UPDATE email_tokens SET expires_at = now() - interval '1 second'")
    assert _is_invalid(await _verify(mail.http, link_token(message, "/verify-email")))
    assert _is_invalid(await _verify(mail.http, "never-issued-token"))


async def test_a_confirmed_new_address_kills_the_old_addresss_links(
    mail: MailTest, sql: SqlFn
) -> None:
    user = await _sign_up(mail.http)
    [old] = await mail.delivered(to=user["email"])
    login = await mail.http.post(
        "/auth/login", json={"username": user["username"], "password": user["password"]}
    )
    access = login.json()["access_token"]
    moved = await mail.http.patch(
        "/auth/me",
        json={"email": "new-home@example.com", "current_password": user["password"]},
        headers=bearer(access),
    )
    assert moved.status_code == 200
    [new] = await mail.delivered(to="new-home@example.com")
    confirmed = await mail.http.post(
        "/auth/confirm-email-change",
        json={"token": link_token(new, "/confirm-email-change")},
    )
    assert confirmed.status_code == 204
    assert _is_invalid(await _verify(mail.http, link_token(old, "/verify-email")))
    me = await mail.http.get("/auth/me", headers=bearer(access))
    assert me.json()["email"] == "new-home@example.com"
    assert me.json()["email_verified"] is True


async def test_the_gate_refuses_unverified_logins_after_the_password_check(
    settings: Settings, smtp_sink: SmtpSink
) -> None:
    smtp_sink.clear()
    gated = smtp_settings(settings, smtp_sink, require_verified_email=True)
    async with running(gated, smtp_sink) as service:
        user = await _sign_up(service.http)

        def login(password: str) -> dict[str, str]:
            return {"username": user["username"], "password": password}

        wrong = await service.http.post("/auth/login", json=login("not the password"))
        assert wrong.status_code == 401  # a guesser learns nothing
        assert wrong.json()["code"] == "invalid_credentials"
        refused = await service.http.post("/auth/login", json=login(user["password"]))
        assert refused.status_code == 403
        assert refused.json()["code"] == "email_not_verified"
        assert await metric(service.http, 'auth_logins_total{result="email_not_verified"}') == 1

        [message] = await service.delivered(to=user["email"])
        assert (
            await _verify(service.http, link_token(message, "/verify-email"))
        ).status_code == 204
        allowed = await service.http.post("/auth/login", json=login(user["password"]))
        assert allowed.status_code == 200


async def test_the_gate_is_off_by_default(mail: MailTest) -> None:
    user = await _sign_up(mail.http)
    response = await mail.http.post(
        "/auth/login", json={"username": user["username"], "password": user["password"]}
    )
    assert response.status_code == 200


async def test_the_operator_made_admin_counts_as_verified(mail: MailTest) -> None:
    admin = await create_admin(
        mail.ctx.sessions,
        mail.ctx.hasher,
        email="root@example.com",
        username="root_admin",
        password="admin password 1",
    )
    assert admin.email_verified is True


async def test_registration_without_smtp_sends_nothing(
    client: httpx.AsyncClient, sql: SqlFn
) -> None:
    response = await client.post(
        "/auth/register",
        json={"email": "quiet@example.com", "username": "quiet_one", "password": "pw-123456"},
    )
    assert response.status_code == 201
    assert await sql("SELECT count(*) FROM email_tokens") == [(0,)]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_tls_and_credentials_from_a_password_file(
    settings: Settings,
    make_account: MakeAccountFn,
    tmp_path: Path,
    security: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tls = self_signed_server_context(tmp_path)
    sink = SmtpSink(credentials=("mailer", "s3cret relay pw"), tls=security, tls_context=tls)
    sink.start()
    try:
        secret = tmp_path / "smtp-password"
        secret.write_text("s3cret relay pw\n")
        relay = smtp_settings(
            settings,
            sink,
            smtp_security=security,
            smtp_validate_certs=False,  # the test's certificate is self-signed
            smtp_username="mailer",
            smtp_password_file=secret,
        )
        account = await make_account()
        async with running(relay, sink) as service:
            await service.http.post("/auth/forgot-password", json={"email": account.email})
            assert [m["To"] for m in await service.delivered()] == [account.email]
            assert "s3cret" not in repr(service.ctx.mailer)

        secret.write_text("wrong password\n")
        sink.clear()
        async with running(relay, sink) as service:
            await service.http.post("/auth/forgot-password", json={"email": account.email})
            assert await service.delivered() == []
            sample = 'auth_emails_total{kind="password_reset",result="failed"}'
            assert await metric(service.http, sample) == 1
        logs = capsys.readouterr().err
        assert "mail not sent: SMTPAuthenticationError" in logs
        assert "s3cret" not in logs
        assert "wrong password" not in logs
    finally:
        sink.stop()


def test_an_unreadable_smtp_password_file_stops_startup(settings: Settings, tmp_path: Path) -> None:
    broken = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_username": "mailer",
            "smtp_password_file": tmp_path / "missing",
        }
    )
    with pytest.raises(MailConfigError, match="AUTH_SMTP_PASSWORD_FILE"):
        create_app(broken)
