"""Refresh-token rotation, reuse detection and the refusals, against the real database."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest
from auth_factories import LoginFn, MakeAccountFn, SqlFn, bearer, claims_of


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


def _hash_literal(token: str) -> str:
    return "'\\x" + hashlib.sha256(token.encode()).hexdigest() + "'::bytea"


async def test_rotation_returns_a_new_pair_and_spends_the_old_token(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    account = await make_account()
    first = await open_session(account)

    response = await _refresh(client, first["refresh_token"])

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["token_type"] == "bearer"
    assert second["expires_in"] == 900
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    old, new = claims_of(first["access_token"]), claims_of(second["access_token"])
    assert new["sid"] == old["sid"]  # same login, same family
    assert new["sub"] == account.id
    me = await client.get("/auth/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200
    [(spent_at,)] = await sql(
        f"SELECT spent_at FROM refresh_tokens WHERE token_hash = {_hash_literal(first['refresh_token'])}"  # noqa: S608, E501
    )
    assert spent_at is not None
    # And the new one works in turn.
    third = await _refresh(client, second["refresh_token"])
    assert third.status_code == 200


async def test_refresh_carries_the_current_role_and_token_version(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    account = await make_account()
    tokens = await open_session(account)
    await sql("UPDATE users SET role = 'admin', token_version = 3")

    response = await _refresh(client, tokens["refresh_token"])

    assert response.status_code == 200
    claims = claims_of(response.json()["access_token"])
    assert claims["role"] == "admin"
    assert claims["ver"] == 3


# A spent token replayed after the grace window (test_refresh_grace.py covers the window).
AGE_SPENT_TOKENS = (
    "UPDATE refresh_tokens SET spent_at = spent_at - interval '31 seconds' "
    "WHERE spent_at IS NOT NULL"
)


async def test_reusing_a_spent_token_revokes_the_whole_family(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    account = await make_account()
    stolen = (await open_session(account))["refresh_token"]
    rotated = (await _refresh(client, stolen)).json()  # the legitimate client moves on
    await sql(AGE_SPENT_TOKENS)

    reuse = await _refresh(client, stolen)  # the thief (or a confused client) replays

    assert reuse.status_code == 401
    assert reuse.json()["code"] == "refresh_token_reused"
    assert reuse.headers["www-authenticate"].startswith("Bearer")
    sibling = await _refresh(client, rotated["refresh_token"])
    assert sibling.status_code == 401
    assert sibling.json()["code"] == "refresh_token_revoked"
    # The family's access token is refused by the auth service too.
    me = await client.get("/auth/me", headers=bearer(rotated["access_token"]))
    assert me.status_code == 401
    assert me.json()["code"] == "token_revoked"


async def test_reuse_leaves_the_users_other_logins_alone(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    account = await make_account()
    phone, laptop = await open_session(account), await open_session(account)
    await _refresh(client, phone["refresh_token"])
    await sql(AGE_SPENT_TOKENS)
    assert (await _refresh(client, phone["refresh_token"])).status_code == 401

    assert (await _refresh(client, laptop["refresh_token"])).status_code == 200


async def test_reuse_is_counted(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    def reuse_count(text: str) -> float:
        match = re.search(r"^auth_refresh_reuse_detected_total (\S+)$", text, re.MULTILINE)
        assert match, "metric missing"
        return float(match.group(1))

    before = reuse_count((await client.get("/metrics")).text)
    token = (await open_session(await make_account()))["refresh_token"]
    await _refresh(client, token)
    await sql(AGE_SPENT_TOKENS)
    await _refresh(client, token)
    after = (await client.get("/metrics")).text
    assert reuse_count(after) == before + 1
    assert 'auth_refreshes_total{result="reused"}' in after
    assert 'auth_sessions_revoked_total{reason="reuse"}' in after


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("x" * 43, "invalid_refresh_token"),  # never issued
        ("not even base64 !", "invalid_refresh_token"),
    ],
)
async def test_unknown_refresh_tokens_are_401(
    client: httpx.AsyncClient, token: str, code: str
) -> None:
    response = await _refresh(client, token)
    assert response.status_code == 401
    assert response.json()["code"] == code


async def test_an_access_token_is_not_a_refresh_token(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    tokens = await open_session(await make_account())
    response = await _refresh(client, tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"


EXPIRE_TOKEN = "UPDATE refresh_tokens SET expires_at = now() - interval '1 second'"
EXPIRE_FAMILY = "UPDATE refresh_sessions SET expires_at = now() - interval '1 second'"
REVOKE_FAMILY = "UPDATE refresh_sessions SET revoked_at = now(), revoked_reason = 'logout'"


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        (EXPIRE_TOKEN, "refresh_token_expired"),
        (EXPIRE_FAMILY, "refresh_token_expired"),
        (REVOKE_FAMILY, "refresh_token_revoked"),
        ("UPDATE users SET is_active = false", "user_inactive"),
    ],
)
async def test_dead_refresh_tokens_are_401_with_a_code_saying_why(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    sql: SqlFn,
    statement: str,
    code: str,
) -> None:
    tokens = await open_session(await make_account())
    await sql(statement)

    response = await _refresh(client, tokens["refresh_token"])

    assert response.status_code == 401
    assert response.json()["code"] == code
    # Refused, not spent: presenting it again is not mistaken for reuse.
    again = await _refresh(client, tokens["refresh_token"])
    assert again.json()["code"] == code


async def test_rotation_slides_the_expiry_but_not_past_the_session_max_age(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn, sql: SqlFn
) -> None:
    tokens = await open_session(await make_account())
    # Pretend the login is 29 days and 23 hours old (max age is 30 days).
    await sql("UPDATE refresh_sessions SET created_at = now() - interval '29 days 23 hours'")

    response = await _refresh(client, tokens["refresh_token"])

    assert response.status_code == 200
    assert 3_000 < response.json()["refresh_expires_in"] <= 3_600
    [(left,)] = await sql("SELECT extract(epoch FROM expires_at - now()) FROM refresh_sessions")
    assert 3_000 < left <= 3_600


@pytest.mark.parametrize(
    "body",
    [{}, {"refresh_token": None}, {"grant_type": "refresh_token"}],
)
async def test_a_missing_refresh_token_is_401(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    response = await client.post("/auth/refresh", json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "refresh_token_missing"
    assert (await client.post("/auth/refresh")).json()["code"] == "refresh_token_missing"


@pytest.mark.parametrize(
    "body",
    [{"refresh_token": ""}, {"refresh_token": 42}, {"refresh_token": "x" * 4097}, ["a", "b"]],
)
async def test_malformed_refresh_bodies_are_422(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post("/auth/refresh", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
