"""Issue 13's findings, tried again as the reviewer tried them: through the real gateway."""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage
from pathlib import Path

import httpx
from e2e_support import GatewayAccount, new_account

from taskgate_devstack.mail_sink import plain_text, read_mail
from taskgate_devstack.stack import DevStack


def _email(account: GatewayAccount) -> str:
    return f"{account.username}@example.com"  # what `new_account` registers


async def _mail_to(stack: DevStack, to: str, subject: str) -> Path:
    sink = stack.mail_sink
    assert sink is not None

    def match(message: EmailMessage) -> bool:
        return bool(message["To"] == to and message["Subject"] == subject)

    [path] = await asyncio.to_thread(sink.wait_for, match)
    return path


async def test_a_stolen_access_token_cannot_move_the_account_to_another_mailbox(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    victim = await new_account(gateway)
    attacker_mailbox = f"thief-{victim.username}@evil.example"

    no_password = await gateway.patch(
        "/auth/me", json={"email": attacker_mailbox}, headers=victim.headers
    )
    assert no_password.status_code == 422
    guessed = await gateway.patch(
        "/auth/me",
        json={"email": attacker_mailbox, "current_password": "guess"},
        headers=victim.headers,
    )
    assert (guessed.status_code, guessed.json()["code"]) == (401, "invalid_credentials")

    # The owner asks, with the password: pending until the new mailbox confirms.
    new_mailbox = f"moved-{victim.username}@example.org"
    asked = await gateway.patch(
        "/auth/me",
        json={"email": new_mailbox, "current_password": victim.password},
        headers=victim.headers,
    )
    assert asked.status_code == 200
    assert (asked.json()["email"], asked.json()["pending_email"]) == (_email(victim), new_mailbox)
    notice = read_mail(
        await _mail_to(
            stack, _email(victim), "Your taskgate account's email address is about to change"
        )
    )
    assert "token=" not in plain_text(notice)
    pending_login = await gateway.post(
        "/auth/login", json={"email": new_mailbox, "password": victim.password}
    )
    assert pending_login.status_code == 401

    confirmation = plain_text(
        read_mail(
            await _mail_to(
                stack, new_mailbox, "Confirm the new email address of your taskgate account"
            )
        )
    )
    match = re.search(r"/confirm-email-change\?token=([A-Za-z0-9_-]+)", confirmation)
    assert match is not None
    confirmed = await gateway.post("/auth/confirm-email-change", json={"token": match.group(1)})
    assert confirmed.status_code == 204
    moved_login = await gateway.post(
        "/auth/login", json={"email": new_mailbox, "password": victim.password}
    )
    assert moved_login.status_code == 200


async def test_current_password_guesses_meet_the_strict_credential_limit(
    gateway: httpx.AsyncClient,
) -> None:
    """Before, 30 wrong guesses through the gateway were 30 answers of 401."""
    account = await new_account(gateway)
    wrong = {"current_password": "a wrong guess", "new_password": "another password 1"}
    answers = [
        await gateway.post("/auth/change-password", json=wrong, headers=account.headers)
        for _ in range(30)
    ]
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {401, 429}
    assert statuses.count(429) >= 15
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.json()["code"] in {"rate_limited", "login_locked"}
    assert "Retry-After" in limited.headers


async def test_another_site_cannot_log_the_browser_in_through_the_token_form(
    gateway: httpx.AsyncClient, gateway_url: str
) -> None:
    account = await new_account(gateway)
    form = {"grant_type": "password", "username": account.username, "password": account.password}
    forged = await gateway.post(
        "/auth/token?cookie=true",
        data=form,
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert (forged.status_code, forged.json()["code"]) == (403, "cross_site_request")
    assert "set-cookie" not in forged.headers
    own_page = await gateway.post(
        "/auth/token?cookie=true",
        data=form,
        headers={"Origin": gateway_url, "Sec-Fetch-Site": "same-origin"},
    )
    assert own_page.status_code == 200
    assert "taskgate_refresh=" in own_page.headers["set-cookie"]


async def test_no_redirect_reflects_the_host_header(gateway: httpx.AsyncClient) -> None:
    for path in ("/auth/login/", "/api/tasks/", "/auth/me/"):
        response = await gateway.get(path, headers={"Host": "evil.example"})
        assert response.status_code == 404, path
        assert "location" not in response.headers
        assert response.json()["code"] == "not_found"
