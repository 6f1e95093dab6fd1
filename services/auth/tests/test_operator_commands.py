"""Operator commands against the real database: purging sessions, and the first admin."""

from __future__ import annotations

import asyncio
import io
import re
import sys
from pathlib import Path

import httpx
import pytest
from auth_factories import Account, LoginFn, MakeAccountFn, SqlFn, bearer, claims_of
from pydantic import SecretStr

from auth_service.__main__ import main
from auth_service.core.config import Settings
from auth_service.main import create_app


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, auth_database_url: str) -> pytest.MonkeyPatch:
    """The commands read their settings from the environment, as under cron or in a container."""
    monkeypatch.setenv("AUTH_DATABASE_URL", auth_database_url)
    return monkeypatch


async def _run(*argv: str) -> int:
    """`python -m auth_service ...` (it runs its own event loop, so in a thread here)."""
    return await asyncio.to_thread(main, list(argv))


async def test_purge_removes_finished_sessions_and_keeps_live_ones(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    sql: SqlFn,
    cli_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    account = await make_account()
    live, expired, revoked, recently_revoked = [await open_session(account) for _ in range(4)]
    rotated = await client.post("/auth/refresh", json={"refresh_token": live["refresh_token"]})
    live = rotated.json()  # the live family now holds a spent token as well
    expired_sid = claims_of(expired["access_token"])["sid"]
    revoked_sid = claims_of(revoked["access_token"])["sid"]
    await sql(
        f"UPDATE refresh_sessions SET expires_at = now() - interval '1 day' "  # noqa: S608
        f"WHERE id = '{expired_sid}'"
    )
    await sql(
        f"UPDATE refresh_sessions SET revoked_at = now() - interval '2 hours', "  # noqa: S608
        f"revoked_reason = 'logout' WHERE id = '{revoked_sid}'"
    )
    await client.post("/auth/logout", json={"refresh_token": recently_revoked["refresh_token"]})

    assert await _run("sessions", "purge", "--older-than", "3600", "--batch-size", "1") == 0
    assert capsys.readouterr().out.startswith("purged 2 sessions and 2 refresh tokens in 2 batches")
    assert await _run("sessions", "purge") == 0
    assert capsys.readouterr().out.startswith("purged 1 sessions and 1 refresh tokens")
    assert await _run("sessions", "purge") == 0  # idempotent: nothing left to do
    assert capsys.readouterr().out.startswith("purged 0 sessions and 0 refresh tokens")

    [(families, tokens)] = await sql(
        "SELECT (SELECT count(*) FROM refresh_sessions), (SELECT count(*) FROM refresh_tokens)"
    )
    assert (families, tokens) == (1, 2)
    ok = await client.post("/auth/refresh", json={"refresh_token": live["refresh_token"]})
    assert ok.status_code == 200


async def test_access_tokens_of_purged_sessions_stay_refused(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    sql: SqlFn,
    cli_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A logged-out and a reuse-revoked login, purged: their unexpired access tokens must not
    come back to life when the session rows are gone (a missing row is not "not revoked")."""
    account = await make_account()
    logged_out, stolen = await open_session(account), await open_session(account)
    await client.post("/auth/logout", json={"refresh_token": logged_out["refresh_token"]})
    successor = await client.post("/auth/refresh", json={"refresh_token": stolen["refresh_token"]})
    await client.post("/auth/refresh", json={"refresh_token": successor.json()["refresh_token"]})
    reuse = await client.post("/auth/refresh", json={"refresh_token": stolen["refresh_token"]})
    assert reuse.json()["code"] == "refresh_token_reused"
    for tokens in (logged_out, stolen):
        refused = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
        assert refused.status_code == 401

    assert await _run("sessions", "purge") == 0
    assert capsys.readouterr().out.startswith("purged 2 sessions")
    assert await sql("SELECT count(*) FROM refresh_sessions") == [(0,)]
    for tokens in (logged_out, stolen):
        after_purge = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
        assert after_purge.status_code == 401
        assert after_purge.json()["code"] == "token_revoked"


async def test_purge_stops_at_max_batches_and_says_so(
    make_account: MakeAccountFn,
    open_session: LoginFn,
    sql: SqlFn,
    cli_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    account = await make_account()
    for _ in range(3):
        await open_session(account)
    await sql("UPDATE refresh_sessions SET expires_at = now() - interval '1 minute'")

    assert await _run("sessions", "purge", "--batch-size", "1", "--max-batches", "2") == 0

    out = capsys.readouterr().out
    assert out.startswith("purged 2 sessions")
    assert "more remain" in out
    [(left,)] = await sql("SELECT count(*) FROM refresh_sessions")
    assert left == 1


def test_purge_reports_an_unreachable_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from taskgate_devstack.postgres import free_port

    monkeypatch.setenv(
        "AUTH_DATABASE_URL", f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    )
    monkeypatch.setenv("AUTH_DB_CONNECT_TIMEOUT_SECONDS", "2")
    assert main(["sessions", "purge"]) == 1
    assert capsys.readouterr().err.startswith("error: database")


async def test_create_admin_reads_the_password_from_stdin(
    client: httpx.AsyncClient,
    login: LoginFn,
    cli_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env.setattr(sys, "stdin", io.StringIO("root password 1\n"))

    code = await _run("users", "create-admin", "--email", "root@example.com", "--username", "root")

    assert code == 0, capsys.readouterr().err
    match = re.fullmatch(r"created admin root \(([0-9a-f-]{36})\)\n", capsys.readouterr().out)
    assert match
    tokens = await login(Account(match.group(1), "root@example.com", "root", "root password 1"))
    assert claims_of(tokens["access_token"])["role"] == "admin"
    listing = await client.get("/auth/users", headers=bearer(tokens["access_token"]))
    assert listing.status_code == 200

    cli_env.setattr(sys, "stdin", io.StringIO("another password\n"))
    again = await _run("users", "create-admin", "--email", "r2@example.com", "--username", "ROOT")
    assert again == 1
    assert "username is already taken" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("stdin", "email", "message"),
    [
        ("short\n", "ok@example.com", "password"),
        ("long enough\n", "not-an-email", "email"),
        ("", "ok@example.com", "no password given"),
    ],
)
async def test_create_admin_refuses_bad_input(
    cli_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sql: SqlFn,
    stdin: str,
    email: str,
    message: str,
) -> None:
    cli_env.setattr(sys, "stdin", io.StringIO(stdin))
    assert await _run("users", "create-admin", "--email", email, "--username", "boss") == 1
    assert message in capsys.readouterr().err
    assert await sql("SELECT 1 FROM users") == []


def test_create_admin_takes_no_password_argument() -> None:
    with pytest.raises(SystemExit):
        main(
            ["users", "create-admin", "--email", "a@b.co", "--username", "boss", "--password", "x"]
        )


async def _start_and_stop(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass


async def test_env_bootstrap_creates_the_first_admin_once(
    settings: Settings, login: LoginFn, tmp_path: Path, sql: SqlFn
) -> None:
    password_file = tmp_path / "admin-password"
    password_file.write_text("bootstrap secret\n")
    bootstrap = {
        "bootstrap_admin_email": "ops@example.com",
        "bootstrap_admin_username": "ops_admin",
    }

    await _start_and_stop(
        settings.model_copy(update={**bootstrap, "bootstrap_admin_password_file": password_file})
    )
    # A later start with another password changes nothing: an admin exists already.
    await _start_and_stop(
        settings.model_copy(
            update={**bootstrap, "bootstrap_admin_password": SecretStr("different secret")}
        )
    )

    rows = await sql("SELECT id::text, role::text FROM users")
    assert [role for _, role in rows] == ["admin"]
    account = Account(rows[0][0], "ops@example.com", "ops_admin", "bootstrap secret")
    assert claims_of((await login(account))["access_token"])["role"] == "admin"


async def test_env_bootstrap_does_not_promote_an_existing_account(
    settings: Settings, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    account = await make_account()
    await _start_and_stop(
        settings.model_copy(
            update={
                "bootstrap_admin_email": account.email,
                "bootstrap_admin_username": account.username,
                "bootstrap_admin_password": SecretStr("some password"),
            }
        )
    )
    assert await sql("SELECT role::text FROM users") == [("user",)]
