"""One case-folding rule for storage, uniqueness and look-ups (issue 13, finding 8).

Before: an address with `İ` registered (PostgreSQL's `lower()` left it alone) but could never
log in or reset (Python's `.lower()` made it `i̇` before comparing).
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from auth_factories import SqlFn
from limits_support import client as limited_client
from limits_support import limited_app
from limits_support import login as limited_login
from mail_support import MailTest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from auth_service.core.config import Settings
from auth_service.core.identity_keys import identity_key
from auth_service.migrate import upgrade
from taskgate_devstack.pytest_plugin import PostgresForTests

DOTTED = "\u0130rem@example.com"  # İrem
SHARP = "stra\u00dfe@example.com"  # straße
FULLWIDTH_ALICE = "\uff41\uff4c\uff49\uff43\uff45"  # "alice" in fullwidth letters


def test_the_rule() -> None:
    assert identity_key(DOTTED) == identity_key("i\u0307rem@example.com")
    assert identity_key(SHARP) == identity_key("STRASSE@example.com") == "strasse@example.com"
    assert identity_key(FULLWIDTH_ALICE) == "alice"
    assert identity_key("  Alice ") == "alice"


async def _register(client: httpx.AsyncClient, email: str, username: str) -> httpx.Response:
    return await client.post(
        "/auth/register",
        json={"email": email, "username": username, "password": "unicode password 1"},
    )


async def _login(client: httpx.AsyncClient, identifier: str) -> int:
    response = await client.post(
        "/auth/login", json={"username": identifier, "password": "unicode password 1"}
    )
    return response.status_code


async def test_an_address_with_a_dotted_capital_i_registers_logs_in_and_resets(
    mail: MailTest,
) -> None:
    assert (await _register(mail.http, DOTTED, "irem_1")).status_code == 201
    assert await _login(mail.http, DOTTED) == 200
    assert await _login(mail.http, DOTTED.lower()) == 200  # Python's spelling of it
    await mail.http.post("/auth/forgot-password", json={"email": DOTTED})
    subjects = [m["Subject"] for m in await mail.delivered()]
    assert subjects == ["Confirm your email address for taskgate", "Reset your taskgate password"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (SHARP, "strasse@example.com"),
        ("alice@example.com", f"{FULLWIDTH_ALICE}@example.com"),
        (DOTTED, "i\u0307rem@example.com"),
    ],
)
async def test_addresses_that_fold_alike_are_one_account(
    client: httpx.AsyncClient, first: str, second: str
) -> None:
    assert (await _register(client, first, "first_one")).status_code == 201
    taken = await _register(client, second, "second_one")
    assert (taken.status_code, taken.json()["code"]) == (409, "email_taken")
    assert await _login(client, second) == 200


async def test_a_fullwidth_username_logs_in_as_its_ascii_twin(client: httpx.AsyncClient) -> None:
    assert (await _register(client, "fw@example.com", "alice")).status_code == 201
    assert await _login(client, FULLWIDTH_ALICE) == 200
    assert await _login(client, "ALICE") == 200


async def test_the_lockout_counts_every_spelling_of_a_name_together(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    assert (await _register(client, "locked@example.com", "alice")).status_code == 201
    options = {"lockout_threshold": 2, "rate_limit_login_per_account": "1000/minute"}
    async with limited_app(settings, **options) as app, limited_client(app) as http:
        for spelling in (FULLWIDTH_ALICE, "ALICE"):
            assert (await limited_login(http, spelling, "wrong")).status_code == 401
        locked = await limited_login(http, "alice", "unicode password 1")
    assert locked.json()["code"] == "login_locked"


def test_the_migration_keys_existing_accounts(postgres_server: PostgresForTests) -> None:
    """Rows written by the previous schema (0003) get their keys, and then log in."""
    url = postgres_server.fresh_database("auth_migration")
    upgrade(url, "0003")
    ids = [uuid.uuid4() for _ in range(3)]
    rows = [(ids[0], DOTTED, "Irem_X"), (ids[1], SHARP, "strasse"), (ids[2], "a@B.example", "Ab")]

    async def insert() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            for user_id, email, username in rows:
                await connection.execute(
                    text(
                        "INSERT INTO users (id, email, username, password_hash) "
                        "VALUES (:id, :email, :username, 'x')"
                    ),
                    {"id": user_id, "email": email, "username": username},
                )
        await engine.dispose()

    async def keys() -> dict[uuid.UUID, str]:
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            result = await connection.execute(
                text("SELECT id, email_key || ' ' || username_key FROM users")
            )
            found = {row[0]: row[1] for row in result}
        await engine.dispose()
        return found

    asyncio.run(insert())
    upgrade(url)
    assert asyncio.run(keys()) == {
        ids[0]: f"{identity_key(DOTTED)} irem_x",
        ids[1]: "strasse@example.com strasse",
        ids[2]: "a@b.example ab",
    }


def test_the_migration_refuses_accounts_that_fold_alike(postgres_server: PostgresForTests) -> None:
    url = postgres_server.fresh_database("auth_migration_clash")
    upgrade(url, "0003")

    async def insert() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            for email, username in ((SHARP, "one_1"), ("strasse@example.com", "two_2")):
                await connection.execute(
                    text(
                        "INSERT INTO users (id, email, username, password_hash) "
                        "VALUES (gen_random_uuid(), :email, :username, 'x')"
                    ),
                    {"email": email, "username": username},
                )
        await engine.dispose()

    asyncio.run(insert())
    with pytest.raises(RuntimeError, match="same email under the case-folding rule"):
        upgrade(url)


async def test_keys_follow_a_username_change(client: httpx.AsyncClient, sql: SqlFn) -> None:
    registered = await _register(client, "mover@example.com", "mover_1")
    user_id = registered.json()["id"]
    login = await client.post(
        "/auth/login", json={"username": "mover_1", "password": "unicode password 1"}
    )
    access = login.json()["access_token"]
    renamed = await client.patch(
        "/auth/me", json={"username": "Moved_2"}, headers={"Authorization": f"Bearer {access}"}
    )
    assert renamed.status_code == 200
    assert await sql(f"SELECT username_key FROM users WHERE id = '{user_id}'") == [  # noqa: S608
        ("moved_2",)
    ]
