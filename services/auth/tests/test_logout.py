"""Logout, logout everywhere and password change: each ends what it should and nothing else."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from auth_factories import Account, LoginFn, MakeAccountFn, SqlFn, bearer


async def _refresh(client: httpx.AsyncClient, tokens: dict[str, Any]) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})


async def _me(client: httpx.AsyncClient, tokens: dict[str, Any]) -> httpx.Response:
    return await client.get("/auth/me", headers=bearer(tokens["access_token"]))


async def _assert_alive(client: httpx.AsyncClient, tokens: dict[str, Any]) -> None:
    assert (await _me(client, tokens)).status_code == 200
    assert (await _refresh(client, tokens)).status_code == 200


async def _assert_dead(client: httpx.AsyncClient, tokens: dict[str, Any]) -> None:
    me = await _me(client, tokens)
    assert me.status_code == 401
    assert me.json()["code"] == "token_revoked"
    refresh = await _refresh(client, tokens)
    assert refresh.status_code == 401
    assert refresh.json()["code"] == "refresh_token_revoked"


async def test_logout_ends_that_session_only(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    alice, bob = await make_account(), await make_account()
    phone, laptop, bobs = (
        await open_session(alice),
        await open_session(alice),
        await open_session(bob),
    )

    response = await client.post("/auth/logout", json={"refresh_token": phone["refresh_token"]})

    assert response.status_code == 204
    assert response.content == b""
    await _assert_dead(client, phone)
    await _assert_alive(client, laptop)
    await _assert_alive(client, bobs)


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"json": {"refresh_token": "never-issued-token"}},
        {"json": {}},
        {},  # no body at all
    ],
)
async def test_logout_is_204_whatever_the_token(
    client: httpx.AsyncClient, request_kwargs: dict[str, Any]
) -> None:
    response = await client.post("/auth/logout", **request_kwargs)
    assert response.status_code == 204


async def test_logout_is_idempotent_and_works_with_a_spent_token(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    first = await open_session(await make_account())
    second = (await _refresh(client, first)).json()

    # The spent token still names the family, so it ends the session too.
    for _ in range(2):
        response = await client.post("/auth/logout", json={"refresh_token": first["refresh_token"]})
        assert response.status_code == 204
    assert (await _refresh(client, second)).json()["code"] == "refresh_token_revoked"


async def test_logout_all_ends_every_session_of_the_user_only(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    login: LoginFn,
    sql: SqlFn,
) -> None:
    alice, bob = await make_account(), await make_account()
    phone, laptop, bobs = (
        await open_session(alice),
        await open_session(alice),
        await open_session(bob),
    )

    response = await client.post("/auth/logout-all", headers=bearer(phone["access_token"]))

    assert response.status_code == 204
    await _assert_dead(client, phone)
    await _assert_dead(client, laptop)
    await _assert_alive(client, bobs)
    rows = await sql("SELECT username, token_version FROM users ORDER BY username")
    assert dict(rows) == {alice.username: 1, bob.username: 0}
    # A new login works and carries the new version.
    again = await login(alice)  # a password login, through the API
    await _assert_alive(client, again)


async def test_logout_all_needs_a_bearer_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/logout-all")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


async def _change(
    client: httpx.AsyncClient, tokens: dict[str, Any], body: dict[str, Any], path: str
) -> httpx.Response:
    return await client.post(path, json=body, headers=bearer(tokens["access_token"]))


async def test_change_password_ends_every_session_and_swaps_the_password(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    login: LoginFn,
) -> None:
    alice, bob = await make_account(), await make_account()
    phone, laptop, bobs = (
        await open_session(alice),
        await open_session(alice),
        await open_session(bob),
    )

    response = await _change(
        client,
        phone,
        {"current_password": alice.password, "new_password": "a brand new secret"},
        "/auth/change-password",
    )

    assert response.status_code == 204, response.text
    await _assert_dead(client, phone)
    await _assert_dead(client, laptop)
    await _assert_alive(client, bobs)
    old = await client.post(
        "/auth/login", json={"username": alice.username, "password": alice.password}
    )
    assert old.status_code == 401
    new = Account(alice.id, alice.email, alice.username, "a brand new secret")
    await login(new)


async def test_users_me_password_alias_accepts_old_password_as_the_field_name(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    alice = await make_account()
    tokens = await open_session(alice)
    response = await _change(
        client,
        tokens,
        {"old_password": alice.password, "new_password": "another secret!"},
        "/auth/users/me/password",
    )
    assert response.status_code == 204


async def test_wrong_current_password_is_401_and_changes_nothing(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    alice = await make_account()
    tokens = await open_session(alice)

    response = await _change(
        client,
        tokens,
        {"current_password": "not my password", "new_password": "a brand new secret"},
        "/auth/change-password",
    )

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    await _assert_alive(client, tokens)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"current_password": "whatever1", "new_password": "short"}, "new_password"),
        ({"current_password": "whatever1", "new_password": "x" * 129}, "new_password"),
        ({"current_password": "whatever1"}, "new_password"),
        ({"new_password": "long enough"}, "current_password"),
    ],
)
async def test_change_password_rule_breaks_are_422(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    body: dict[str, str],
    field: str,
) -> None:
    tokens = await open_session(await make_account())
    response = await _change(client, tokens, body, "/auth/change-password")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert any(error["loc"][-1] == field for error in response.json()["errors"])
