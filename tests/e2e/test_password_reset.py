"""Forgotten password and email verification through the gateway, with the launcher's SMTP sink.

The mail travels for real: auth sends it over SMTP to the sink the launcher started, which
stores it under the stack's data directory; the test reads the link out of that file.
"""

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


async def _mail_file(stack: DevStack, to: str, link_path: str) -> Path:
    """The stored mail to `to` carrying a `link_path` link, once the sink has it."""
    sink = stack.mail_sink
    assert sink is not None

    def match(message: EmailMessage) -> bool:
        return message["To"] == to and f"{link_path}?token=" in plain_text(message)

    [path] = await asyncio.to_thread(sink.wait_for, match)
    return path


def _token(path: Path, link_path: str) -> str:
    pattern = rf"https?://\S+{re.escape(link_path)}\?token=([A-Za-z0-9_-]+)"
    match = re.search(pattern, plain_text(read_mail(path)))
    assert match is not None
    return match.group(1)


async def test_forgot_and_reset_password_through_the_gateway(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    account = await new_account(gateway)
    forgot = await gateway.post("/auth/forgot-password", json={"email": _email(account)})
    assert forgot.status_code == 202
    unknown = await gateway.post("/auth/forgot-password", json={"email": "nobody@example.com"})
    assert (unknown.status_code, unknown.json()) == (202, forgot.json())

    path = await _mail_file(stack, _email(account), "/reset-password")
    assert stack.mail_dir is not None
    assert path.parent == stack.mail_dir
    assert path.is_relative_to(stack.data_dir)
    token = _token(path, "/reset-password")

    new_password = "reset through the gateway"
    reset = await gateway.post(
        "/auth/reset-password", json={"token": token, "new_password": new_password}
    )
    assert reset.status_code == 204
    again = await gateway.post(
        "/auth/reset-password", json={"token": token, "new_password": "once more please"}
    )
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_reset_token"

    old_session = await gateway.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert old_session.status_code == 401
    old_access = await gateway.get("/auth/me", headers=account.headers)
    assert old_access.status_code == 401
    old_password = await gateway.post(
        "/auth/login", json={"username": account.username, "password": account.password}
    )
    assert old_password.status_code == 401
    login = await gateway.post(
        "/auth/login", json={"username": account.username, "password": new_password}
    )
    assert login.status_code == 200
    tasks = await gateway.get(
        "/api/tasks", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert tasks.status_code == 200


async def test_the_registration_mail_verifies_the_address_through_the_gateway(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    account = await new_account(gateway)
    path = await _mail_file(stack, _email(account), "/verify-email")
    verified = await gateway.post(
        "/auth/verify-email", json={"token": _token(path, "/verify-email")}
    )
    assert verified.status_code == 204
    me = await gateway.get("/auth/me", headers=account.headers)
    assert me.json()["email_verified"] is True
