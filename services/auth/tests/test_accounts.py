"""Registration, login and /auth/me against the real database."""

from __future__ import annotations

import hashlib

import httpx
import jwt
import pytest
from auth_factories import LoginFn, RegisterFn, SqlFn


async def test_register_login_me_round_trip(
    client: httpx.AsyncClient, register: RegisterFn, login: LoginFn
) -> None:
    account = await register(email="Alice@Example.COM", username="alice_1")
    tokens = await login(account)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_expires_in"] == 7 * 86_400
    assert len(tokens["refresh_token"]) >= 43  # 256 bits, base64url

    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    body = me.json()
    assert body["id"] == account.id
    assert body["username"] == "alice_1"
    assert body["email"] == "Alice@example.com"  # domain lower-cased, local part kept
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert body["email_verified"] is False
    assert body["created_at"].endswith("Z") or "+00:00" in body["created_at"]
    assert "password" not in me.text


async def test_register_answers_the_public_user_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        json={"email": "bob@example.com", "username": "bob.builder", "password": "s3cret-pass"},
    )
    assert response.status_code == 201
    assert set(response.json()) == {
        "id",
        "email",
        "username",
        "role",
        "is_active",
        "email_verified",
        "pending_email",
        "created_at",
    }


@pytest.mark.parametrize(
    ("second", "code"),
    [
        ({"username": "CAROL_X", "email": "other@example.com"}, "username_taken"),
        ({"username": "someone", "email": "CAROL@EXAMPLE.com"}, "email_taken"),
    ],
)
async def test_duplicates_in_another_case_conflict(
    client: httpx.AsyncClient, register: RegisterFn, second: dict[str, str], code: str
) -> None:
    await register(username="carol_x", email="carol@example.com")
    response = await client.post("/auth/register", json={**second, "password": "password-123"})
    assert response.status_code == 409
    assert response.json()["code"] == code
    assert response.json()["detail"]


async def test_login_by_email_in_any_case(client: httpx.AsyncClient, register: RegisterFn) -> None:
    account = await register(email="dave@example.com")
    for identifier in ("dave@example.com", "DAVE@Example.com"):
        response = await client.post(
            "/auth/login", json={"username": identifier, "password": account.password}
        )
        assert response.status_code == 200, identifier
    response = await client.post(
        "/auth/login", json={"email": "dave@example.com", "password": account.password}
    )
    assert response.status_code == 200


async def test_login_by_username_ignores_case(
    client: httpx.AsyncClient, register: RegisterFn
) -> None:
    account = await register(username="Erin.Smith")
    response = await client.post(
        "/auth/login", json={"username": "erin.smith", "password": account.password}
    )
    assert response.status_code == 200


async def test_wrong_password_and_unknown_user_look_the_same(
    client: httpx.AsyncClient, register: RegisterFn
) -> None:
    account = await register()
    wrong = await client.post(
        "/auth/login", json={"username": account.username, "password": "not-the-password"}
    )
    unknown = await client.post(
        "/auth/login", json={"username": "nobody_here", "password": "not-the-password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "detail": "Incorrect username or password",
            "code": "invalid_credentials",
        }
    )
    assert wrong.headers["www-authenticate"].startswith("Bearer")


async def test_oauth2_password_form_login(client: httpx.AsyncClient, register: RegisterFn) -> None:
    account = await register()
    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": account.username, "password": account.password},
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    me = await client.get(
        "/auth/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
    )
    assert me.json()["id"] == account.id


async def test_oauth2_form_with_wrong_password_is_invalid_grant(
    client: httpx.AsyncClient, register: RegisterFn
) -> None:
    """RFC 6749 section 5.2 at the token endpoint; the JSON API's code stays beside it."""
    account = await register()
    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": account.username, "password": "wrong-pass"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert response.json()["code"] == "invalid_credentials"


async def test_login_stores_only_a_hash_of_the_refresh_token(
    client: httpx.AsyncClient, register: RegisterFn, login: LoginFn, sql: SqlFn
) -> None:
    account = await register()
    tokens = await login(account)
    rows = await sql(
        "SELECT t.token_hash, t.expires_at - t.created_at AS ttl, s.user_id::text "
        "FROM refresh_tokens t JOIN refresh_sessions s ON s.id = t.session_id"
    )
    assert len(rows) == 1
    token_hash, ttl, user_id = rows[0]
    assert bytes(token_hash) == hashlib.sha256(tokens["refresh_token"].encode()).digest()
    assert tokens["refresh_token"].encode() not in bytes(token_hash)
    assert abs(ttl.total_seconds() - 7 * 86_400) < 5
    assert user_id == account.id


async def test_each_login_opens_its_own_session(
    client: httpx.AsyncClient, register: RegisterFn, login: LoginFn
) -> None:
    account = await register()
    first, second = await login(account), await login(account)
    assert first["refresh_token"] != second["refresh_token"]
    sid = [
        jwt.decode(t["access_token"], options={"verify_signature": False})["sid"]
        for t in (first, second)
    ]
    assert sid[0] != sid[1]


async def test_password_is_hashed_with_argon2id(
    register: RegisterFn, auth_database_url: str
) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    account = await register()
    engine = create_async_engine(auth_database_url)
    async with engine.connect() as connection:
        stored = (await connection.execute(text("SELECT password_hash FROM users"))).scalar_one()
    await engine.dispose()
    assert stored.startswith("$argon2id$")
    assert account.password not in stored


async def test_bcrypt_hash_is_verified_and_upgraded_on_login(
    client: httpx.AsyncClient, register: RegisterFn, sql: SqlFn
) -> None:
    import bcrypt

    account = await register()
    legacy = bcrypt.hashpw(account.password.encode(), bcrypt.gensalt(rounds=4)).decode()
    await sql(f"UPDATE users SET password_hash = '{legacy}'")  # noqa: S608 - test-made value

    response = await client.post(
        "/auth/login", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 200
    [(stored,)] = await sql("SELECT password_hash FROM users")
    assert stored.startswith("$argon2id$")
    again = await client.post(
        "/auth/login", json={"username": account.username, "password": account.password}
    )
    assert again.status_code == 200


async def test_concurrent_registrations_of_one_username_give_one_account(
    client: httpx.AsyncClient, sql: SqlFn
) -> None:
    import asyncio

    responses = await asyncio.gather(
        *(
            client.post(
                "/auth/register",
                json={
                    "email": f"racer{i}@example.com",
                    "username": "Racer_One" if i % 2 else "racer_one",
                    "password": "password-123",
                },
            )
            for i in range(6)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409, 409, 409]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"username_taken"}
    [(count,)] = await sql("SELECT count(*) FROM users")
    assert count == 1


async def test_argon2_hash_with_old_parameters_is_upgraded_on_login(
    client: httpx.AsyncClient, register: RegisterFn, sql: SqlFn
) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher

    account = await register()
    old = Argon2Hasher(time_cost=3, memory_cost=65_536, parallelism=4).hash(account.password)
    await sql(f"UPDATE users SET password_hash = '{old}'")  # noqa: S608 - test-made value

    response = await client.post(
        "/auth/login", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 200
    [(stored,)] = await sql("SELECT password_hash FROM users")
    assert stored.startswith("$argon2id$v=19$m=65536,t=2,p=1$")


async def test_identifier_with_a_nul_character_is_just_unknown(
    client: httpx.AsyncClient,
) -> None:
    json_login = await client.post(
        "/auth/login", json={"username": "nul\x00user", "password": "whatever-1"}
    )
    form_login = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": "nul\x00user", "password": "whatever-1"},
    )
    assert json_login.status_code == 401
    assert form_login.status_code == 400  # the OAuth token endpoint: invalid_grant
    for response in (json_login, form_login):
        assert response.json()["code"] == "invalid_credentials"
