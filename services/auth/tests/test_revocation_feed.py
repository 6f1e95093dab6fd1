"""The revocation feed `GET /revocations`: what each revocation publishes, the cursor, the
commit-safe order, retention and purge, the optional shared secret."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from auth_factories import Account, LoginFn, MakeAccountFn, SqlFn, bearer, claims_of
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth_service.context import AuthContext
from auth_service.core.config import Settings
from auth_service.main import create_app
from auth_service.services.revocation_feed import RevocationFeed

Page = dict[str, Any]
FAST_PASSWORD = "fast password 1"  # conftest's `make_account` password


async def _feed(client: httpx.AsyncClient, after: str | None = None, **params: Any) -> Page:
    query = {**params, **({"after": after} if after is not None else {})}
    response = await client.get("/revocations", params=query)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    page: Page = response.json()
    return page


async def _tail(client: httpx.AsyncClient, after: str | None) -> tuple[list[dict[str, Any]], str]:
    """Every entry after `after`, following `more`; and the cursor to read on from."""
    entries: list[dict[str, Any]] = []
    while True:
        page = await _feed(client, after)
        entries += page["entries"]
        after = page["next"]
        if not page["more"]:
            return entries, page["next"]


def _summary(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["kind"], e["user_id"], e["session_id"], e["token_version"], e["is_active"])
        for e in entries
    ]


async def _session_of(open_session: LoginFn, account: Account) -> tuple[str, dict[str, Any]]:
    tokens = await open_session(account)
    return str(claims_of(tokens["access_token"])["sid"]), tokens


async def test_each_revocation_publishes_what_it_revoked(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    make_admin: MakeAccountFn,
    open_session: LoginFn,
    sql: SqlFn,
) -> None:
    start = (await _feed(client))["next"]
    alice = await make_account()
    sid_1, tokens_1 = await _session_of(open_session, alice)
    sid_2, tokens_2 = await _session_of(open_session, alice)

    # Logout: that session only.
    response = await client.post("/auth/logout", json={"refresh_token": tokens_1["refresh_token"]})
    assert response.status_code == 204
    entries, cursor = await _tail(client, start)
    assert _summary(entries) == [("session", alice.id, sid_1, None, None)]
    assert "T" in entries[0]["created_at"]

    # Reading on from the cursor: nothing new.
    assert (await _feed(client, cursor))["entries"] == []
    assert (await _feed(client, cursor))["next"] == cursor

    # Logout-all: the user's version moves on (tokens below 1 are dead) and the live session.
    response = await client.post("/auth/logout-all", headers=bearer(tokens_2["access_token"]))
    assert response.status_code == 204
    entries, cursor = await _tail(client, cursor)
    assert sorted(_summary(entries), key=str) == sorted(
        [("user", alice.id, None, 1, True), ("session", alice.id, sid_2, None, None)], key=str
    )

    # An admin deactivates and reactivates; each moves the version on.
    admin = await make_admin()
    admin_token = (await open_session(admin))["access_token"]
    bob = await make_account()
    sid_bob, _ = await _session_of(open_session, bob)
    for active in (False, True):
        response = await client.patch(
            f"/auth/users/{bob.id}", json={"is_active": active}, headers=bearer(admin_token)
        )
        assert response.status_code == 200, response.text
    entries, cursor = await _tail(client, cursor)
    assert _summary(entries) == [
        ("user", bob.id, None, 1, False),
        ("session", bob.id, sid_bob, None, None),
        ("user", bob.id, None, 2, True),
    ]

    # Deleted (no API does it; the trigger covers it anyway): every token is dead.
    await sql(f"DELETE FROM users WHERE id = '{bob.id}'")  # noqa: S608
    entries, _ = await _tail(client, cursor)
    assert _summary(entries) == [("user", bob.id, None, 2, False)]


async def test_change_password_publishes_the_new_version(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    start = (await _feed(client))["next"]
    account = await make_account()
    sid, tokens = await _session_of(open_session, account)
    response = await client.post(
        "/auth/change-password",
        json={"current_password": FAST_PASSWORD, "new_password": "a brand new password 1"},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 204, response.text
    entries, _ = await _tail(client, start)
    assert sorted(_summary(entries), key=str) == sorted(
        [("user", account.id, None, 1, True), ("session", account.id, sid, None, None)], key=str
    )


async def test_pages_are_bounded_and_follow_on(
    client: httpx.AsyncClient, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    start = (await _feed(client))["next"]
    accounts = [await make_account() for _ in range(3)]
    for account in accounts:
        await sql(
            f"UPDATE users SET token_version = token_version + 1 WHERE id = '{account.id}'"  # noqa: S608
        )
    seen: list[str] = []
    after = start
    for expect_more in (True, True, True, False):
        page = await _feed(client, after, limit=1)
        assert page["more"] is expect_more
        seen += [entry["user_id"] for entry in page["entries"]]
        after = page["next"]
    assert seen == [account.id for account in accounts]
    for limit in (0, 1001, "x"):
        response = await client.get("/revocations", params={"limit": limit})
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("after", ["abc", "1", "1-", "-1", "1-2-3", "1 -2", "9" * 21 + "-1"])
async def test_a_malformed_cursor_is_422(client: httpx.AsyncClient, after: str) -> None:
    response = await client.get("/revocations", params={"after": after})
    assert response.status_code == 422
    assert set(response.json()) == {"detail", "code", "errors"}


async def test_a_cursor_from_another_database_is_410(client: httpx.AsyncClient) -> None:
    """A transaction id this database has not reached: e.g. the feed's database was restored
    from a backup. The reader must read the feed again from the start."""
    for after in (f"{2**62}-1", f"{2**64 - 1}-1"):
        response = await client.get("/revocations", params={"after": after})
        assert response.status_code == 410
        assert response.json()["code"] == "revocation_cursor_unknown"
    response = await client.get("/revocations", params={"after": f"{2**64}-1"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"


async def _revoke_in(connection: AsyncConnection, session_id: str) -> None:
    await connection.execute(
        text(
            "UPDATE refresh_sessions SET revoked_at = now(), revoked_reason = 'logout' "
            "WHERE id = :id"
        ),
        {"id": session_id},
    )


@pytest.fixture
async def two_connections(sql_engine: AsyncEngine) -> AsyncIterator[list[AsyncConnection]]:
    async with sql_engine.connect() as first, sql_engine.connect() as second:
        yield [first, second]


async def test_an_entry_is_not_handed_out_while_an_earlier_transaction_may_commit(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    two_connections: list[AsyncConnection],
) -> None:
    """T1 revokes and stays open; T2 revokes later and commits. The feed hands out neither
    until T1 ends, then both: a reader's cursor never passes an entry that may still commit."""
    t1, t2 = two_connections
    start = (await _feed(client))["next"]
    account = await make_account()
    sid_1, _ = await _session_of(open_session, account)
    sid_2, _ = await _session_of(open_session, account)

    await t1.begin()
    await _revoke_in(t1, sid_1)
    await t2.begin()
    await _revoke_in(t2, sid_2)
    await t2.commit()

    page = await _feed(client, start)
    assert page["entries"] == []
    assert page["next"] == start

    await t1.commit()
    entries, _ = await _tail(client, start)
    assert [entry["session_id"] for entry in entries] == [sid_1, sid_2]


async def test_an_older_transaction_committing_a_later_seq_first_is_not_skipped(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    two_connections: list[AsyncConnection],
) -> None:
    """The interleaving a `seq` cursor gets wrong: T_old takes its transaction id first, T_new
    then writes entry n, T_old writes entry n+1 and commits while T_new is still open. T_old's
    entry can be handed out at once; a reader that then moved its cursor to `seq` n+1 would
    never see n. Read in `(txid, seq)` order, n comes on the next read once T_new commits."""
    t_old, t_new = two_connections
    start = (await _feed(client))["next"]
    account = await make_account()
    sid_new, _ = await _session_of(open_session, account)
    sid_old, _ = await _session_of(open_session, account)

    await t_old.begin()
    await t_old.execute(text("SELECT pg_current_xact_id()"))  # its transaction id, now
    await t_new.begin()
    await _revoke_in(t_new, sid_new)  # the smaller seq
    await _revoke_in(t_old, sid_old)  # the larger seq
    await t_old.commit()

    first, cursor = await _tail(client, start)
    assert [entry["session_id"] for entry in first] == [sid_old]

    await t_new.commit()
    second, _ = await _tail(client, cursor)
    assert [entry["session_id"] for entry in second] == [sid_new]
    assert second[0]["seq"] < first[0]["seq"]


async def test_old_entries_are_not_handed_out_and_get_purged(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    feed: RevocationFeed = app.state.revocation_feed
    ctx: AuthContext = app.state.ctx
    assert feed.retention_seconds == ctx.settings.access_token_ttl_seconds + 600
    start = (await _feed(client))["next"]
    old, recent = await make_account(), await make_account()
    for account in (old, recent):
        await sql(
            f"UPDATE users SET token_version = token_version + 1 WHERE id = '{account.id}'"  # noqa: S608
        )
    await sql(
        "UPDATE revocations SET created_at = now() - make_interval(secs => "  # noqa: S608
        f"{feed.retention_seconds + 5}) WHERE user_id = '{old.id}'"
    )
    page = await _feed(client)  # from the start: what is kept
    assert page["retention_seconds"] == feed.retention_seconds
    assert [entry["user_id"] for entry in page["entries"]] == [recent.id]
    entries, _ = await _tail(client, start)
    assert [entry["user_id"] for entry in entries] == [recent.id]

    assert await feed.purge() == 1
    assert await feed.purge() == 0
    rows = await sql("SELECT user_id::text FROM revocations")
    assert [row[0] for row in rows] == [recent.id]


async def test_not_under_the_public_prefix(client: httpx.AsyncClient) -> None:
    assert (await client.get("/auth/revocations")).status_code == 404


@pytest.fixture
async def secret_client(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("AUTH_REVOCATIONS_TOKEN", "feed-secret-1234")
    application = create_app(settings)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await application.state.ctx.engine.dispose()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", "Basic ZmVlZC1zZWNyZXQtMTIzNA==", "feed-secret-1234", "Bearer "],
)
async def test_with_a_secret_the_feed_refuses_everyone_else(
    secret_client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await secret_client.get("/revocations", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_with_a_secret_the_reader_that_has_it_reads(
    secret_client: httpx.AsyncClient,
) -> None:
    response = await secret_client.get("/revocations", headers=bearer("feed-secret-1234"))
    assert response.status_code == 200
    assert "entries" in response.json()


async def test_metrics_count_reads(client: httpx.AsyncClient) -> None:
    def value(text_: str, name: str) -> float:
        for line in text_.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    name = 'auth_revocation_feed_requests_total{result="ok"}'
    before = value((await client.get("/metrics")).text, name)
    await _feed(client)
    assert value((await client.get("/metrics")).text, name) == before + 1
