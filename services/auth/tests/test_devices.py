"""Devices: listing one's live logins and ending one of them; the same for admins."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from auth_factories import Account, LoginFn, MakeAccountFn, SqlFn, bearer, claims_of
from fastapi import FastAPI
from limits_support import metric
from starlette.requests import Request

from auth_service.api.routes.devices import describe_user_agent
from auth_service.context import AuthContext
from auth_service.services import login as password_login
from auth_service.services.refresh_sessions import coarse_address

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)


def _client_from(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50_000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _refresh(
    http: httpx.AsyncClient, tokens: dict[str, Any], user_agent: str | None = None
) -> dict[str, Any]:
    headers = {"User-Agent": user_agent} if user_agent else {}
    response = await http.post(
        "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _sessions(
    http: httpx.AsyncClient, tokens: dict[str, Any], path: str = "/auth/sessions"
) -> httpx.Response:
    return await http.get(path, headers=bearer(tokens["access_token"]))


def _sid(tokens: dict[str, Any]) -> str:
    return str(claims_of(tokens["access_token"])["sid"])


async def test_the_list_shows_my_live_logins_newest_used_first_and_which_is_this_one(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    open_session: LoginFn,
    sql: SqlFn,
) -> None:
    alice, bob = await make_account(), await make_account()
    phone, laptop, bobs = (
        await open_session(alice),
        await open_session(alice),
        await open_session(bob),
    )
    ended, expired = await open_session(alice), await open_session(alice)
    await client.post("/auth/logout", json={"refresh_token": ended["refresh_token"]})
    await sql(
        "UPDATE refresh_sessions SET expires_at = now() - interval '1 second' "  # noqa: S608
        f"WHERE id = '{_sid(expired)}'"
    )
    async with _client_from(app, "203.0.113.77") as on_the_train:
        phone = await _refresh(on_the_train, phone, CHROME_ANDROID)
    async with _client_from(app, "2001:db8:1234:5678::9") as at_home:
        laptop = await _refresh(at_home, laptop, FIREFOX_LINUX)  # the most recent

    response = await _sessions(client, laptop)

    assert response.status_code == 200, response.text
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)
    first, second = page["items"]
    assert first["id"] == _sid(laptop)
    assert first["current"] is True
    assert first["device"] == "Firefox on Linux"
    assert first["client_address"] == "2001:db8:1234::/48"
    assert second["id"] == _sid(phone)
    assert second["current"] is False
    assert second["device"] == "Chrome on Android"
    assert second["client_address"] == "203.0.113.0/24"
    for item in page["items"]:
        assert set(item) == {
            "id",
            "created_at",
            "last_used_at",
            "expires_at",
            "device",
            "client_address",
            "current",
        }
        assert item["created_at"] <= item["last_used_at"] < item["expires_at"]
    assert first["last_used_at"] > second["last_used_at"]
    # Bob sees only his own.
    bobs_page = (await _sessions(client, bobs)).json()
    assert [item["id"] for item in bobs_page["items"]] == [_sid(bobs)]
    assert bobs_page["items"][0]["current"] is True


async def test_a_login_records_its_device_and_coarse_address(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    """What the login route hands to the login service (`request`): the device shows before
    the first refresh."""
    account = await make_account()
    ctx: AuthContext = app.state.ctx
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/auth/login",
        "headers": [(b"user-agent", b"curl/8.5.0")],
        "client": ("198.51.100.23", 40_000),
    }
    pair = await password_login.login(ctx, account.username, account.password, Request(scope))

    [item] = (await _sessions(client, pair.model_dump())).json()["items"]

    assert item["device"] == "curl"
    assert item["client_address"] == "198.51.100.0/24"
    assert item["current"] is True
    assert item["last_used_at"] == item["created_at"]


async def test_the_list_is_paginated_and_bounded(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    account = await make_account()
    logins = [await open_session(account) for _ in range(3)]

    one = await client.get(
        "/auth/sessions?limit=1&offset=1", headers=bearer(logins[0]["access_token"])
    )
    too_many = await client.get(
        "/auth/sessions?limit=101", headers=bearer(logins[0]["access_token"])
    )

    assert one.status_code == 200
    assert one.json()["total"] == 3
    assert len(one.json()["items"]) == 1
    assert too_many.status_code == 422


async def test_the_list_needs_an_access_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/sessions")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_ending_one_login_leaves_the_others(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    alice, bob = await make_account(), await make_account()
    phone, laptop, bobs = (
        await open_session(alice),
        await open_session(alice),
        await open_session(bob),
    )
    before = metric(app, "auth_sessions_revoked_total", reason="device_revoked")

    response = await client.delete(
        f"/auth/sessions/{_sid(phone)}", headers=bearer(laptop["access_token"])
    )

    assert response.status_code == 204
    assert response.content == b""
    refresh = await client.post("/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refresh.json()["code"] == "refresh_token_revoked"
    me = await client.get("/auth/me", headers=bearer(phone["access_token"]))
    assert me.json()["code"] == "token_revoked"
    await _refresh(client, laptop)
    await _refresh(client, bobs)
    assert [i["id"] for i in (await _sessions(client, laptop)).json()["items"]] == [_sid(laptop)]
    assert metric(app, "auth_sessions_revoked_total", reason="device_revoked") == before + 1


async def test_ending_this_login_logs_this_device_out(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    tokens = await open_session(await make_account())

    response = await client.delete(
        f"/auth/sessions/{_sid(tokens)}", headers=bearer(tokens["access_token"])
    )

    assert response.status_code == 204
    me = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.json()["code"] == "token_revoked"


async def test_another_users_unknown_or_ended_login_is_404(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    alice, bob = await make_account(), await make_account()
    mine, bobs = await open_session(alice), await open_session(bob)
    ended = await open_session(alice)
    await client.post("/auth/logout", json={"refresh_token": ended["refresh_token"]})

    for session_id in (_sid(bobs), str(uuid.uuid4()), _sid(ended)):
        response = await client.delete(
            f"/auth/sessions/{session_id}", headers=bearer(mine["access_token"])
        )
        assert response.status_code == 404
        assert response.json()["code"] == "session_not_found"
    await _refresh(client, bobs)  # untouched
    not_a_uuid = await client.delete("/auth/sessions/42", headers=bearer(mine["access_token"]))
    assert not_a_uuid.status_code == 422


async def _admin_tokens(make_account: MakeAccountFn, open_session: LoginFn) -> dict[str, Any]:
    admin: Account = await make_account("admin")
    return await open_session(admin)


async def test_an_admin_lists_and_ends_any_users_logins(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    admin = await _admin_tokens(make_account, open_session)
    alice = await make_account()
    phone, laptop = await open_session(alice), await open_session(alice)
    before = metric(app, "auth_sessions_revoked_total", reason="admin_revoked")

    listed = await _sessions(client, admin, f"/auth/users/{alice.id}/sessions")

    assert listed.status_code == 200
    assert {item["id"] for item in listed.json()["items"]} == {_sid(phone), _sid(laptop)}
    assert not any(item["current"] for item in listed.json()["items"])
    ended = await client.delete(
        f"/auth/users/{alice.id}/sessions/{_sid(phone)}", headers=bearer(admin["access_token"])
    )
    assert ended.status_code == 204
    refresh = await client.post("/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refresh.json()["code"] == "refresh_token_revoked"
    await _refresh(client, laptop)
    assert metric(app, "auth_sessions_revoked_total", reason="admin_revoked") == before + 1
    again = await client.delete(
        f"/auth/users/{alice.id}/sessions/{_sid(phone)}", headers=bearer(admin["access_token"])
    )
    assert again.json()["code"] == "session_not_found"


async def test_admin_routes_404_for_an_unknown_user_or_a_login_of_someone_else(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    admin = await _admin_tokens(make_account, open_session)
    alice, bob = await make_account(), await make_account()
    bobs = await open_session(bob)
    nobody = uuid.uuid4()
    headers = bearer(admin["access_token"])

    listed = await client.get(f"/auth/users/{nobody}/sessions", headers=headers)
    ended = await client.delete(f"/auth/users/{nobody}/sessions/{_sid(bobs)}", headers=headers)
    crossed = await client.delete(f"/auth/users/{alice.id}/sessions/{_sid(bobs)}", headers=headers)

    assert (listed.status_code, listed.json()["code"]) == (404, "user_not_found")
    assert (ended.status_code, ended.json()["code"]) == (404, "user_not_found")
    assert (crossed.status_code, crossed.json()["code"]) == (404, "session_not_found")
    await _refresh(client, bobs)


async def test_admin_routes_are_for_admins_only(
    client: httpx.AsyncClient, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    alice, bob = await make_account(), await make_account()
    mine, bobs = await open_session(alice), await open_session(bob)

    listed = await _sessions(client, mine, f"/auth/users/{bob.id}/sessions")
    ended = await client.delete(
        f"/auth/users/{bob.id}/sessions/{_sid(bobs)}", headers=bearer(mine["access_token"])
    )

    assert (listed.status_code, listed.json()["code"]) == (403, "admin_required")
    assert (ended.status_code, ended.json()["code"]) == (403, "admin_required")
    await _refresh(client, bobs)


@pytest.mark.parametrize(
    ("user_agent", "device"),
    [
        (FIREFOX_LINUX, "Firefox on Linux"),
        (CHROME_ANDROID, "Chrome on Android"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari on iOS",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Safari/605.1.15",
            "Safari on macOS",
        ),
        ("curl/8.5.0", "curl"),
        ("python-httpx/0.28.1", "python-httpx"),
        ("okhttp/4.12.0", "okhttp"),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0)", "ChromeOS"),
        ("something odd", "something"),
        ("x" * 300 + "/1.0", "x" * 64),
        (None, None),
    ],
)
def test_user_agents_are_described_briefly(user_agent: str | None, device: str | None) -> None:
    assert describe_user_agent(user_agent) == device


@pytest.mark.parametrize(
    ("address", "coarse"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1234:5678::9", "2001:db8:1234::/48"),
        ("2001:db8:1234:5678::/64", "2001:db8:1234::/48"),  # what ClientIp gives for IPv6
        ("unknown", None),
    ],
)
def test_client_addresses_are_kept_coarse(address: str, coarse: str | None) -> None:
    assert coarse_address(address) == coarse
