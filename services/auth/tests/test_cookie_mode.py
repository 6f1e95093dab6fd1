"""Browser mode: the refresh token travels in an HttpOnly cookie, guarded against CSRF."""

from __future__ import annotations

import httpx
import pytest
from auth_factories import Account, MakeAccountFn, bearer
from fastapi import Response

from auth_service.api.cookies import set_refresh_cookie
from auth_service.core.config import Settings
from auth_service.main import create_app
from auth_service.schemas import TokenPair

COOKIE = "taskgate_refresh"
JSON = {"Content-Type": "application/json"}


def _set_cookie(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """(value, attributes with lower-cased names) of the refresh cookie the response sets."""
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    first, *rest = (part.strip() for part in header.split(";"))
    attributes = {}
    for part in rest:
        name, _, value = part.partition("=")
        attributes[name.lower()] = value
    return first.partition("=")[2].strip('"'), attributes


def _with_cookie(value: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}", **headers}


async def _cookie_login(client: httpx.AsyncClient, account: Account) -> httpx.Response:
    return await client.post(
        "/auth/login?cookie=true",
        json={"username": account.username, "password": account.password},
    )


async def test_cookie_mode_round_trip(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()

    login = await _cookie_login(client, account)

    assert login.status_code == 200
    body = login.json()
    assert "refresh_token" not in body  # only in the cookie, out of reach of page scripts
    assert body["refresh_expires_in"] == 7 * 86_400
    first, attributes = _set_cookie(login)
    assert len(first) >= 43
    assert attributes == {
        "httponly": "",
        "secure": "",
        "samesite": attributes["samesite"],
        "path": "/auth",
        "max-age": str(7 * 86_400),
    }
    assert attributes["samesite"].lower() == "strict"
    me = await client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200

    # The refresh reads the cookie and answers in cookie mode, rotating the cookie.
    refreshed = await client.post("/auth/refresh", json={}, headers=_with_cookie(first))
    assert refreshed.status_code == 200, refreshed.text
    assert "refresh_token" not in refreshed.json()
    second, attributes = _set_cookie(refreshed)
    assert second != first
    assert attributes["path"] == "/auth"
    assert "httponly" in attributes
    assert "secure" in attributes
    assert refreshed.headers["cache-control"] == "no-store"

    # Once the new cookie has been used in turn, the old one is spent for good: replaying it
    # revokes the family and drops the cookie (test_refresh_grace.py: replays before that).
    third = await client.post("/auth/refresh", json={}, headers=_with_cookie(second))
    assert third.status_code == 200, third.text
    replay = await client.post("/auth/refresh", json={}, headers=_with_cookie(first))
    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"
    value, attributes = _set_cookie(replay)
    assert value == ""
    assert attributes["max-age"] == "0"
    dead = await client.post("/auth/refresh", json={}, headers=_with_cookie(_set_cookie(third)[0]))
    assert dead.json()["code"] == "refresh_token_revoked"


async def test_logout_by_cookie_ends_the_session_and_clears_the_cookie(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    login = await _cookie_login(client, await make_account())
    token, _ = _set_cookie(login)

    response = await client.post("/auth/logout", json={}, headers=_with_cookie(token))

    assert response.status_code == 204
    value, attributes = _set_cookie(response)
    assert value == ""
    assert attributes["max-age"] == "0"
    assert attributes["path"] == "/auth"
    refresh = await client.post("/auth/refresh", json={}, headers=_with_cookie(token))
    assert refresh.status_code == 401
    assert refresh.json()["code"] == "refresh_token_revoked"


async def test_a_json_client_can_switch_to_cookie_mode_on_refresh(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    tokens = (
        await client.post(
            "/auth/login", json={"username": account.username, "password": account.password}
        )
    ).json()
    response = await client.post(
        "/auth/refresh?cookie=true", json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 200
    assert "refresh_token" not in response.json()
    assert _set_cookie(response)[0]


async def test_oauth_form_login_has_cookie_mode_too(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    response = await client.post(
        "/auth/token?cookie=1",
        data={"grant_type": "password", "username": account.username, "password": account.password},
    )
    assert response.status_code == 200
    assert "refresh_token" not in response.json()
    assert _set_cookie(response)[0]


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {},  # an empty cross-site POST
        {"data": {"refresh_token": ""}},  # an HTML form
        {"content": b"{}", "headers": {"Content-Type": "text/plain"}},  # a no-preflight fetch
    ],
)
@pytest.mark.parametrize("path", ["/auth/refresh", "/auth/logout"])
async def test_cookie_requests_without_a_json_content_type_are_refused(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    path: str,
    request_kwargs: dict[str, object],
) -> None:
    login = await _cookie_login(client, await make_account())
    token, _ = _set_cookie(login)
    kwargs: dict[str, object] = dict(request_kwargs)
    headers = {**_with_cookie(token), **kwargs.pop("headers", {})}  # type: ignore[dict-item]

    response = await client.post(path, headers=headers, **kwargs)  # type: ignore[arg-type]

    # An empty POST reaches the CSRF rule; a non-JSON body already fails body validation.
    expected = (403, "csrf_check_failed") if not kwargs else (422, "validation_error")
    assert (response.status_code, response.json()["code"]) == expected
    # Nothing happened to the session.
    ok = await client.post("/auth/refresh", json={}, headers=_with_cookie(token))
    assert ok.status_code == 200


async def test_a_token_in_the_body_wins_over_the_cookie(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    cookie_token, _ = _set_cookie(await _cookie_login(client, account))
    body_tokens = (
        await client.post(
            "/auth/login", json={"username": account.username, "password": account.password}
        )
    ).json()

    response = await client.post(
        "/auth/refresh",
        json={"refresh_token": body_tokens["refresh_token"]},
        headers=_with_cookie(cookie_token),
    )

    assert response.status_code == 200
    assert response.json()["refresh_token"]  # answered in body mode, as it was asked
    ok = await client.post("/auth/refresh", json={}, headers=_with_cookie(cookie_token))
    assert ok.status_code == 200  # the cookie's token was not touched


def test_secure_is_dropped_only_by_the_explicit_dev_setting(settings: Settings) -> None:
    pair = TokenPair(access_token="a", refresh_token="r", expires_in=900, refresh_expires_in=60)
    for secure in (True, False):
        response = Response()
        set_refresh_cookie(response, settings.model_copy(update={"cookie_secure": secure}), pair)
        header = response.headers["set-cookie"].lower()
        assert ("; secure" in header) is secure
        assert "httponly" in header
        assert "samesite=strict" in header


EVIL = "https://evil.example"


def _form(account: Account) -> dict[str, str]:
    return {"grant_type": "password", "username": account.username, "password": account.password}


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},  # a sandboxed frame or a data: page
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},  # a browser that left Origin out
        {"Origin": "http://localhost:6666", "Sec-Fetch-Site": "same-site"},  # another port
    ],
)
async def test_login_csrf_through_the_oauth_form_is_refused(
    client: httpx.AsyncClient, make_account: MakeAccountFn, headers: dict[str, str]
) -> None:
    """Issue 13, finding 6: a form another site posts to /auth/token?cookie=true used to log
    the victim's browser into the attacker's account (200 and a refresh cookie)."""
    account = await make_account()
    response = await client.post("/auth/token?cookie=true", data=_form(account), headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "cross_site_request"
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "headers",
    [
        {},  # not a browser: curl, a mobile app, an OAuth library
        {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},  # the issuer's origin
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
    ],
)
async def test_same_origin_and_non_browser_cookie_logins_still_work(
    client: httpx.AsyncClient, make_account: MakeAccountFn, headers: dict[str, str]
) -> None:
    account = await make_account()
    response = await client.post("/auth/token?cookie=true", data=_form(account), headers=headers)
    assert response.status_code == 200, response.text
    _set_cookie(response)


async def test_allowed_cors_origins_may_use_the_cookie(
    settings: Settings, make_account: MakeAccountFn
) -> None:
    spa = "http://localhost:5173"
    app = create_app(settings.model_copy(update={"cors_origins": [spa]}))
    account = await make_account()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost:8080"
        ) as http,
    ):
        headers = {"Origin": spa, "Sec-Fetch-Site": "same-site"}
        login = await http.post(
            "/auth/login?cookie=true",
            json={"username": account.username, "password": account.password},
            headers=headers,
        )
        assert login.status_code == 200
        cookie, _ = _set_cookie(login)
        refreshed = await http.post(
            "/auth/refresh", headers=_with_cookie(cookie, **JSON, **headers)
        )
        assert refreshed.status_code == 200
        other = await http.post(
            "/auth/refresh",
            headers=_with_cookie(cookie, **JSON, Origin="http://localhost:3001"),
        )
        assert other.status_code == 403


@pytest.mark.parametrize("path", ["/auth/refresh", "/auth/logout"])
async def test_cross_site_requests_cannot_use_the_cookie(
    client: httpx.AsyncClient, make_account: MakeAccountFn, path: str
) -> None:
    account = await make_account()
    cookie, _ = _set_cookie(await _cookie_login(client, account))
    refused = await client.post(path, headers=_with_cookie(cookie, **JSON, Origin=EVIL))
    assert refused.status_code == 403
    assert refused.json()["code"] == "cross_site_request"
    # The session was not touched: the cookie still refreshes from the right origin.
    fine = await client.post("/auth/refresh", headers=_with_cookie(cookie, **JSON))
    assert fine.status_code == 200


async def test_json_login_in_cookie_mode_refuses_other_sites_too(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    refused = await client.post(
        "/auth/login?cookie=true",
        json={"username": account.username, "password": account.password},
        headers={"Origin": EVIL},
    )
    assert refused.status_code == 403
    # Without cookie mode nothing is set, so nothing to forge: the body tokens are the
    # caller's own (and CORS keeps another origin from reading them).
    plain = await client.post(
        "/auth/login",
        json={"username": account.username, "password": account.password},
        headers={"Origin": EVIL},
    )
    assert plain.status_code == 200
