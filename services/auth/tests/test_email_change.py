"""Changing the email address: the password now, the new mailbox's confirmation later.

The attack these guard against (issue 13, finding 1): with a stolen access token alone,
`PATCH /auth/me {"email": attacker}` moved the account, `forgot-password` then mailed a reset
link to the attacker's unconfirmed address, and the reset marked it verified.
"""

from __future__ import annotations

import re
from email.message import EmailMessage

import httpx
from auth_factories import LoginFn, MakeAccountFn, SqlFn, bearer
from mail_support import MailTest, html_body, link_token, metric, text_body

NEW_PASSWORD = "a brand new password"


async def _request_change(
    http: httpx.AsyncClient, access: str, email: str, password: str | None
) -> httpx.Response:
    body = {"email": email} if password is None else {"email": email, "current_password": password}
    return await http.patch("/auth/me", json=body, headers=bearer(access))


async def _login(http: httpx.AsyncClient, identifier: str, password: str) -> httpx.Response:
    return await http.post("/auth/login", json={"username": identifier, "password": password})


async def _confirm(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/auth/confirm-email-change", json={"token": token})


def _has_no_link(message: EmailMessage) -> bool:
    text = text_body(message) + html_body(message)
    return "token=" not in text and not re.search(r"https?://", text)


async def test_changing_the_email_needs_the_current_password(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account()
    access = (await open_session(account))["access_token"]

    missing = await _request_change(client, access, "thief@evil.example", None)
    assert missing.status_code == 422
    assert "current_password" in missing.text
    wrong = await _request_change(client, access, "thief@evil.example", "a guess")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_credentials"

    me = (await client.get("/auth/me", headers=bearer(access))).json()
    assert (me["email"], me["pending_email"]) == (account.email, None)


async def test_the_new_address_stays_pending_until_its_owner_confirms(
    mail: MailTest, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account()
    access = (await open_session(account))["access_token"]
    new = "new-home@example.net"

    asked = await _request_change(mail.http, access, new, account.password)
    assert asked.status_code == 200, asked.text
    assert (asked.json()["email"], asked.json()["pending_email"]) == (account.email, new)

    # The old address hears of it, with no link and nothing the requester chose.
    [notice] = await mail.delivered(to=account.email)
    assert _has_no_link(notice)
    assert "new-home" not in text_body(notice) + html_body(notice)
    [confirmation] = await mail.delivered(to=new)
    token = link_token(confirmation, "/confirm-email-change")

    # Until confirmed: login and resets use the old address only.
    assert (await _login(mail.http, new, account.password)).status_code == 401
    assert (await _login(mail.http, account.email, account.password)).status_code == 200
    await mail.http.post("/auth/forgot-password", json={"email": new})
    assert len(await mail.delivered(to=new)) == 1  # still only the confirmation

    assert (await _confirm(mail.http, token)).status_code == 204
    me = (await mail.http.get("/auth/me", headers=bearer(access))).json()
    assert (me["email"], me["pending_email"], me["email_verified"]) == (new, None, True)
    assert (await _login(mail.http, new, account.password)).status_code == 200
    assert (await _login(mail.http, account.email, account.password)).status_code == 401
    again = await _confirm(mail.http, token)  # single use
    assert (again.status_code, again.json()["code"]) == (400, "invalid_email_change_token")


async def test_a_stolen_access_token_cannot_take_the_account(
    mail: MailTest, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    """The reported chain, step by step, as the attacker (token, no password) tries it."""
    victim = await make_account()
    stolen = (await open_session(victim))["access_token"]
    attacker = "attacker@evil.example"

    for guess in ("password", "123456", "letmein"):
        assert (await _request_change(mail.http, stolen, attacker, guess)).status_code == 401
    await mail.http.post("/auth/forgot-password", json={"email": attacker})
    assert await mail.delivered(to=attacker) == []
    me = (await mail.http.get("/auth/me", headers=bearer(stolen))).json()
    assert (me["email"], me["pending_email"]) == (victim.email, None)
    assert (await _login(mail.http, victim.username, victim.password)).status_code == 200


async def test_the_answer_does_not_tell_whether_the_address_is_registered(
    mail: MailTest, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    owner = await make_account()
    asker = await make_account()
    access = (await open_session(asker))["access_token"]

    # The owner's address in other letters: the same account under the case-folding rule.
    owners_address = owner.email.upper().replace("@EXAMPLE.COM", "@example.com")
    free = await _request_change(mail.http, access, "nobody-has-this@example.com", asker.password)
    taken = await _request_change(mail.http, access, owners_address, asker.password)
    assert free.status_code == taken.status_code == 200
    assert set(free.json()) == set(taken.json())
    assert taken.json()["pending_email"] == owners_address

    # The owner of the address is told it has an account, with no link to act on; the
    # confirmation link went only to the free address (and died when the second request
    # replaced the pending address).
    [note] = await mail.delivered(to=owners_address)
    assert note["Subject"] == "This address already has a taskgate account"
    assert _has_no_link(note)
    assert await sql("SELECT count(*) FROM email_tokens WHERE purpose = 'email_change'") == [(0,)]
    assert await metric(mail.http, 'auth_email_changes_total{result="taken"}') == 1


async def test_a_reset_never_verifies_another_address_and_ends_the_pending_change(
    mail: MailTest, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account()
    access = (await open_session(account))["access_token"]
    new = "pending@example.org"
    await _request_change(mail.http, access, new, account.password)
    [confirmation] = await mail.delivered(to=new)

    await mail.http.post("/auth/forgot-password", json={"email": account.email})
    [reset_mail] = [m for m in await mail.delivered(to=account.email) if "token=" in str(m)]
    reset = await mail.http.post(
        "/auth/reset-password",
        json={"token": link_token(reset_mail, "/reset-password"), "new_password": NEW_PASSWORD},
    )
    assert reset.status_code == 204

    tokens = await _login(mail.http, account.email, NEW_PASSWORD)
    me = (await mail.http.get("/auth/me", headers=bearer(tokens.json()["access_token"]))).json()
    assert (me["email"], me["email_verified"], me["pending_email"]) == (account.email, True, None)
    late = await _confirm(mail.http, link_token(confirmation, "/confirm-email-change"))
    assert late.json()["code"] == "invalid_email_change_token"


async def test_a_password_change_ends_the_pending_change(
    mail: MailTest, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account()
    access = (await open_session(account))["access_token"]
    await _request_change(mail.http, access, "pending2@example.org", account.password)
    [confirmation] = await mail.delivered(to="pending2@example.org")
    changed = await mail.http.post(
        "/auth/change-password",
        json={"current_password": account.password, "new_password": NEW_PASSWORD},
        headers=bearer(access),
    )
    assert changed.status_code == 204
    late = await _confirm(mail.http, link_token(confirmation, "/confirm-email-change"))
    assert late.json()["code"] == "invalid_email_change_token"


async def test_confirming_an_address_taken_in_the_meantime_is_a_conflict(
    mail: MailTest, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    account = await make_account()
    access = (await open_session(account))["access_token"]
    await _request_change(mail.http, access, "contested@example.org", account.password)
    [confirmation] = await mail.delivered(to="contested@example.org")
    await make_account(email="contested@example.org")

    conflict = await _confirm(mail.http, link_token(confirmation, "/confirm-email-change"))
    assert (conflict.status_code, conflict.json()["code"]) == (409, "email_taken")
    me = (await mail.http.get("/auth/me", headers=bearer(access))).json()
    assert me["email"] == account.email


async def test_recasing_the_own_address_needs_no_confirmation(
    mail: MailTest, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    account = await make_account(email="casey@example.com")
    await sql(f"UPDATE users SET email_verified = true WHERE id = '{account.id}'")  # noqa: S608
    access = (await open_session(account))["access_token"]
    recased = await _request_change(mail.http, access, "Casey@example.com", account.password)
    assert recased.status_code == 200
    body = recased.json()
    assert (body["email"], body["pending_email"], body["email_verified"]) == (
        "Casey@example.com",
        None,
        True,
    )
    assert await mail.delivered() == []


async def test_mails_carry_no_text_the_user_chose(mail: MailTest) -> None:
    """A username is the attacker's to choose (`visit.evil.example` is a valid one): no mail
    repeats it, so nothing in a mailbox reads as the service's own link or instruction."""
    registered = await mail.http.post(
        "/auth/register",
        json={
            "email": "target@example.com",
            "username": "visit.evil.example",
            "password": "a long password",
        },
    )
    assert registered.status_code == 201
    [verification] = await mail.delivered(to="target@example.com")
    assert "evil" not in text_body(verification) + html_body(verification)
    assert "evil" not in str(verification["Subject"])
