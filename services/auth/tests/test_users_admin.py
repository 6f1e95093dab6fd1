"""Roles and the admin endpoints, deactivation, and users editing their own profile."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from auth_factories import Account, LoginFn, MakeAccountFn, SqlFn, bearer, claims_of


@pytest.fixture
async def admin_token(make_admin: MakeAccountFn, open_session: LoginFn) -> str:
    token: str = (await open_session(await make_admin()))["access_token"]
    return token


async def test_admin_endpoints_refuse_a_user_with_403(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account()
    headers = bearer((await open_session(account))["access_token"])
    new_user = {"email": "x@example.com", "username": "someone", "password": "long enough"}
    for method, path, body in [
        ("GET", "/auth/users", None),
        ("POST", "/auth/users", new_user),
        ("GET", f"/auth/users/{account.id}", None),
        ("PATCH", f"/auth/users/{account.id}", {"role": "admin"}),
    ]:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == "admin_required"
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
    me = await client.get("/auth/me", headers=headers)
    assert me.json()["role"] == "user"  # the self-promotion attempt changed nothing


async def test_list_users_is_paged_with_a_total(
    client: httpx.AsyncClient, make_account: MakeAccountFn, admin_token: str
) -> None:
    for _ in range(3):
        await make_account()
    headers = bearer(admin_token)

    first = await client.get("/auth/users?limit=2", headers=headers)
    second = await client.get("/auth/users?limit=2&offset=2", headers=headers)

    assert first.status_code == second.status_code == 200
    assert first.json()["total"] == second.json()["total"] == 4
    assert (first.json()["limit"], first.json()["offset"]) == (2, 0)
    ids = [u["id"] for u in first.json()["items"] + second.json()["items"]]
    assert len(ids) == len(set(ids)) == 4
    assert "password_hash" not in first.text
    default = (await client.get("/auth/users", headers=headers)).json()
    assert default["limit"] == 50
    assert len(default["items"]) == 4


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=abc"])
async def test_list_users_bounds_are_422(
    client: httpx.AsyncClient, admin_token: str, query: str
) -> None:
    response = await client.get(f"/auth/users?{query}", headers=bearer(admin_token))
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_admin_creates_a_user_with_a_role(
    client: httpx.AsyncClient, admin_token: str, login: LoginFn
) -> None:
    body = {
        "email": "helper@example.com",
        "username": "helper",
        "password": "helper password",
        "role": "admin",
    }
    response = await client.post("/auth/users", json=body, headers=bearer(admin_token))

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["role"] == "admin"
    assert response.headers["location"].endswith(f"/auth/users/{created['id']}")
    fetched = await client.get(f"/auth/users/{created['id']}", headers=bearer(admin_token))
    assert fetched.json() == created
    tokens = await login(Account(created["id"], body["email"], body["username"], body["password"]))
    assert claims_of(tokens["access_token"])["role"] == "admin"

    duplicate = await client.post(
        "/auth/users", json={**body, "email": "other@example.com"}, headers=bearer(admin_token)
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "username_taken"
    bad_role = await client.post(
        "/auth/users",
        json={**body, "username": "helper2", "email": "h2@example.com", "role": "root"},
        headers=bearer(admin_token),
    )
    assert bad_role.status_code == 422


async def test_role_change_takes_effect_at_the_next_refresh(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, admin_token: str
) -> None:
    account = await make_account()
    tokens = await open_session(account)

    response = await client.patch(
        f"/auth/users/{account.id}", json={"role": "admin"}, headers=bearer(admin_token)
    )

    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    # Access tokens carrying the old role are refused here at once...
    stale = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert stale.json()["code"] == "token_revoked"
    # ...but the session lives on: a refresh brings a token with the new role.
    refreshed = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert claims_of(refreshed.json()["access_token"])["role"] == "admin"
    listing = await client.get("/auth/users", headers=bearer(refreshed.json()["access_token"]))
    assert listing.status_code == 200


async def test_deactivation_blocks_login_and_refresh_and_reactivation_restores_login(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, admin_token: str
) -> None:
    account, bystander = await make_account(), await make_account()
    tokens, others = await open_session(account), await open_session(bystander)

    response = await client.patch(
        f"/auth/users/{account.id}", json={"is_active": False}, headers=bearer(admin_token)
    )

    assert response.status_code == 200
    assert response.json()["is_active"] is False
    credentials = {"username": account.username, "password": account.password}
    blocked = await client.post("/auth/login", json=credentials)
    assert (blocked.status_code, blocked.json()["code"]) == (401, "user_inactive")
    refresh = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert (refresh.status_code, refresh.json()["code"]) == (401, "user_inactive")
    me = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert (me.status_code, me.json()["code"]) == (401, "user_inactive")
    ok = await client.post("/auth/refresh", json={"refresh_token": others["refresh_token"]})
    assert ok.status_code == 200

    await client.patch(
        f"/auth/users/{account.id}", json={"is_active": True}, headers=bearer(admin_token)
    )
    # The old sessions stay revoked; logging in again works.
    stale = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert stale.json()["code"] == "refresh_token_revoked"
    assert (await client.post("/auth/login", json=credentials)).status_code == 200


async def test_the_last_active_admin_cannot_be_demoted_or_deactivated(
    client: httpx.AsyncClient, make_admin: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    admin = await make_admin()
    token = (await open_session(admin))["access_token"]
    for change in ({"role": "user"}, {"is_active": False}):
        response = await client.patch(f"/auth/users/{admin.id}", json=change, headers=bearer(token))
        assert response.status_code == 400
        assert response.json()["code"] == "last_admin"

    second = await make_admin()
    response = await client.patch(
        f"/auth/users/{second.id}", json={"role": "user"}, headers=bearer(token)
    )
    assert response.status_code == 200
    [(admins,)] = await sql("SELECT count(*) FROM users WHERE role = 'admin'")
    assert admins == 1


@pytest.mark.parametrize(
    ("path_id", "body", "status"),
    [
        (str(uuid.uuid4()), {"role": "admin"}, 404),
        ("not-a-uuid", {"role": "admin"}, 422),
        ("{self}", {}, 422),
        ("{self}", {"role": "superuser"}, 422),
        ("{self}", {"is_active": "perhaps"}, 422),
        ("{self}", {"email": "x@example.com"}, 422),
    ],
)
async def test_patch_user_bad_input(
    client: httpx.AsyncClient,
    make_admin: MakeAccountFn,
    open_session: LoginFn,
    path_id: str,
    body: dict[str, Any],
    status: int,
) -> None:
    admin = await make_admin()
    token = (await open_session(admin))["access_token"]
    response = await client.patch(
        f"/auth/users/{path_id.format(self=admin.id)}", json=body, headers=bearer(token)
    )
    assert response.status_code == status
    assert response.json()["code"] in ("user_not_found", "validation_error")


async def test_patch_me_changes_the_username_at_once(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account(username="frank_1", email="frank@example.com")
    tokens = await open_session(account)
    headers = bearer(tokens["access_token"])

    # Re-casing your own name is not a conflict; no password is needed for a username.
    recased = await client.patch("/auth/me", json={"username": "Frank_1"}, headers=headers)
    assert recased.status_code == 200, recased.text
    assert recased.json()["username"] == "Frank_1"
    # Tokens stay valid: they name the user by id, not by name.
    assert (await client.get("/auth/me", headers=headers)).json()["username"] == "Frank_1"
    renamed = await client.post(
        "/auth/login", json={"username": "FRANK_1", "password": account.password}
    )
    assert renamed.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"username": "GRACE_O"}, 409, "username_taken"),
        # An email change needs the password; the address's owner is never revealed (a 409
        # here was an oracle of registered addresses: test_email_change.py).
        ({"email": "Grace@Example.com"}, 422, "validation_error"),
        ({"username": "no spaces"}, 422, "validation_error"),
        ({"email": "not-an-email"}, 422, "validation_error"),
        ({}, 422, "validation_error"),
        ({"role": "admin"}, 422, "validation_error"),
    ],
)
async def test_patch_me_refusals(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    body: dict[str, str],
    status: int,
    code: str,
) -> None:
    await make_account(username="grace_o", email="grace@example.com")
    tokens = await open_session(await make_account())
    response = await client.patch("/auth/me", json=body, headers=bearer(tokens["access_token"]))
    assert response.status_code == status
    assert response.json()["code"] == code
