"""The OAuth 2.0 token endpoint (RFC 6749) and token revocation (RFC 7009), request by request.

Third-party clients are in test_oauth_clients.py (in process) and tests/e2e (through the gateway).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from auth_factories import Account, MakeAccountFn, SqlFn, bearer
from fastapi import FastAPI
from limits_support import client as client_from
from limits_support import limited_app

from auth_service.api.oauth_errors import GRANT_REFUSALS, rfc_error
from auth_service.core.config import Settings
from auth_service.main import create_app
from taskgate_common.errors import ApiError
from taskgate_devstack.api_fuzzing import BASE_URL, fuzz_api

COOKIE = "taskgate_refresh"
FORM = "application/x-www-form-urlencoded"


def _password_form(account: Account, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "password",
        "username": account.username,
        "password": account.password,
        **extra,
    }


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def assert_oauth_error(
    response: httpx.Response, status: int, error: str, code: str | None = None
) -> dict[str, Any]:
    """RFC 6749 section 5.2: the status, JSON with `error` and `error_description`, not cached;
    and the design's `detail` and `code` beside them."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert body["detail"] == body["error_description"]
    assert body["code"] == (code or error)
    return body


async def _token(
    client: httpx.AsyncClient, data: dict[str, str], query: str = "", **kwargs: Any
) -> httpx.Response:
    return await client.post(f"/auth/token{query}", data=data, **kwargs)


# --------------------------------------------------------------------------------------------
# The password grant
# --------------------------------------------------------------------------------------------


async def test_password_grant(client: httpx.AsyncClient, make_account: MakeAccountFn) -> None:
    account = await make_account()
    response = await _token(client, _password_form(account))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] == 900
    assert body["refresh_token"]
    assert "scope" not in body
    me = await client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.json()["id"] == account.id


@pytest.mark.parametrize(
    ("extra", "headers"),
    [
        ({"client_id": "any-public-client"}, {}),
        ({"scope": "openid profile tasks"}, {}),  # ignored: there are no scopes
        ({"unknown_parameter": "x"}, {}),  # RFC 6749 section 3.2: ignored
        ({"client_secret": ""}, {}),  # a parameter without a value is omitted
        ({}, _basic("", "")),  # what Swagger UI's Authorize button sends by default
        ({}, _basic("swagger", "")),
        ({}, bearer("an old access token")),  # not client authentication: ignored
    ],
)
async def test_password_grant_tolerates(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    extra: dict[str, str],
    headers: dict[str, str],
) -> None:
    account = await make_account()
    response = await _token(client, _password_form(account, **extra), headers=headers)
    assert response.status_code == 200, response.text
    assert "scope" not in response.json()


async def test_wrong_password_and_unknown_account_are_one_invalid_grant(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    wrong = await _token(client, _password_form(account, password="wrong password"))
    unknown = await _token(client, {**_password_form(account), "username": "nobody-here"})
    for response in (wrong, unknown):
        assert_oauth_error(response, 400, "invalid_grant", "invalid_credentials")
        assert "www-authenticate" not in response.headers
    assert wrong.json() == unknown.json()


async def test_a_deactivated_account_is_invalid_grant(
    client: httpx.AsyncClient, make_account: MakeAccountFn, sql: SqlFn
) -> None:
    account = await make_account()
    await sql(f"UPDATE users SET is_active = false WHERE id = '{account.id}'")  # noqa: S608
    response = await _token(client, _password_form(account))
    assert_oauth_error(response, 400, "invalid_grant", "user_inactive")


# --------------------------------------------------------------------------------------------
# Malformed requests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "error", "code"),
    [
        (b"", FORM, "invalid_request", None),  # no grant_type
        (b"username=a&password=b", FORM, "invalid_request", None),
        (b"grant_type=&username=a&password=b", FORM, "invalid_request", None),
        (b"grant_type=password&username=a", FORM, "invalid_request", None),
        (b"grant_type=password&password=b", FORM, "invalid_request", None),
        (b"grant_type=password&username=a&password=", FORM, "invalid_request", None),
        (
            b"grant_type=password&grant_type=password&username=a&password=b",
            FORM,
            "invalid_request",
            None,
        ),
        (b"grant_type=password&username=a&password=b&password=c", FORM, "invalid_request", None),
        (b"grant_type=password&username=a&password=" + b"x" * 129, FORM, "invalid_request", None),
        (b"grant_type=password&username=%FF&password=b", FORM, "invalid_request", None),
        (
            b"grant_type=password&" + b"&".join(b"p%d=1" % n for n in range(40)),
            FORM,
            "invalid_request",
            None,
        ),
        (b"grant_type=refresh_token", FORM, "invalid_request", "refresh_token_missing"),
        (b"grant_type=authorization_code&code=x", FORM, "unsupported_grant_type", None),
        (b"grant_type=client_credentials", FORM, "unsupported_grant_type", None),
        (b"grant_type=PASSWORD&username=a&password=b", FORM, "unsupported_grant_type", None),
        (
            b'{"grant_type": "password", "username": "a", "password": "b"}',
            "application/json",
            "invalid_request",
            None,
        ),
        (b"grant_type=password&username=a&password=b", "text/plain", "invalid_request", None),
        (b"grant_type=password&username=a&password=b", "", "invalid_request", None),
    ],
)
async def test_malformed_requests(
    client: httpx.AsyncClient, content: bytes, content_type: str, error: str, code: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/auth/token", content=content, headers=headers)
    assert_oauth_error(response, 400, error, code)


async def test_multipart_is_not_a_form_here(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/token", files={"grant_type": (None, "password")}, data={"username": "a"}
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_a_bad_query_parameter_is_invalid_request(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    for query in ("?cookie=perhaps", "?cookie=true&cookie=false"):
        response = await _token(client, _password_form(account), query)
        assert_oauth_error(response, 400, "invalid_request")


async def test_the_charset_parameter_is_accepted(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    response = await client.post(
        "/auth/token",
        content=str(httpx.QueryParams(_password_form(account))).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
    )
    assert response.status_code == 200, response.text


async def test_only_post(client: httpx.AsyncClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(method, "/auth/token")
        assert response.status_code == 405, method
    assert (await client.get("/auth/revoke")).status_code == 405


# --------------------------------------------------------------------------------------------
# Client authentication: public clients only
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "headers"),
    [
        ({"client_secret": "s3cret"}, {}),
        ({"client_id": "app", "client_secret": "s3cret"}, {}),
        ({"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, {}),
        ({}, _basic("app", "s3cret")),
        ({}, _basic("", "s3cret")),
        ({}, {"Authorization": "Basic not base64!"}),
        ({}, {"Authorization": "Basic " + base64.b64encode(b"no colon").decode()}),
    ],
)
async def test_a_client_secret_is_invalid_client(
    client: httpx.AsyncClient,
    make_account: MakeAccountFn,
    extra: dict[str, str],
    headers: dict[str, str],
) -> None:
    account = await make_account()
    response = await _token(client, _password_form(account, **extra), headers=headers)
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")
    revoke = await client.post("/auth/revoke", data={"token": "x", **extra}, headers=headers)
    assert_oauth_error(revoke, 401, "invalid_client")


# --------------------------------------------------------------------------------------------
# The refresh_token grant
# --------------------------------------------------------------------------------------------


async def _refresh(client: httpx.AsyncClient, token: str, query: str = "") -> httpx.Response:
    return await _token(client, {"grant_type": "refresh_token", "refresh_token": token}, query)


async def test_refresh_grant_rotates_and_a_reused_token_is_invalid_grant(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    first = (await _token(client, _password_form(account))).json()

    second = await _refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    assert second.headers["cache-control"] == "no-store"
    assert second.headers["pragma"] == "no-cache"
    second_body = second.json()
    assert second_body["refresh_token"] != first["refresh_token"]
    assert second_body["token_type"].lower() == "bearer"
    assert second_body["expires_in"] == 900
    assert (await client.get("/auth/me", headers=bearer(second_body["access_token"]))).is_success

    third = await _refresh(client, second_body["refresh_token"])
    assert third.status_code == 200, third.text

    # The first token again, after its successor was spent too: reuse ends the login.
    reused = await _refresh(client, first["refresh_token"])
    assert_oauth_error(reused, 400, "invalid_grant", "refresh_token_reused")
    revoked = await _refresh(client, third.json()["refresh_token"])
    assert_oauth_error(revoked, 400, "invalid_grant", "refresh_token_revoked")


async def test_an_unknown_refresh_token_is_invalid_grant(client: httpx.AsyncClient) -> None:
    response = await _refresh(client, "never-issued")
    assert_oauth_error(response, 400, "invalid_grant", "invalid_refresh_token")
    assert "www-authenticate" not in response.headers


async def test_the_json_api_keeps_its_shape(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    """/auth/login and /auth/refresh are not OAuth endpoints: 401 `{detail, code}` as before."""
    account = await make_account()
    login = await client.post(
        "/auth/login", json={"username": account.username, "password": "wrong password"}
    )
    refresh = await client.post("/auth/refresh", json={"refresh_token": "never-issued"})
    for response in (login, refresh):
        assert response.status_code == 401
        assert "error" not in response.json()


# --------------------------------------------------------------------------------------------
# Browser (cookie) mode
# --------------------------------------------------------------------------------------------


def _cookie_of(response: httpx.Response) -> str:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    return header.split(";", 1)[0].partition("=")[2].strip('"')


async def test_cookie_mode_for_both_grants(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    login = await _token(client, _password_form(account), "?cookie=true")
    assert login.status_code == 200, login.text
    assert "refresh_token" not in login.json()
    first = _cookie_of(login)

    # The refresh grant without refresh_token reads the cookie, and answers in cookie mode.
    refresh_form = {"grant_type": "refresh_token"}
    second = await _token(
        client, refresh_form, "?cookie=true", headers={"Cookie": f"{COOKIE}={first}"}
    )
    assert second.status_code == 200, second.text
    assert "refresh_token" not in second.json()
    assert second.headers["cache-control"] == "no-store"
    second_cookie = _cookie_of(second)
    assert second_cookie != first

    # A client holding the token may also switch to cookie mode on the refresh grant.
    third = await _refresh(client, second_cookie, "?cookie=true")
    assert third.status_code == 200, third.text
    assert "refresh_token" not in third.json()

    # A dead cookie is invalid_grant, and the answer drops the cookie.
    reused = await _token(
        client, refresh_form, "?cookie=true", headers={"Cookie": f"{COOKIE}={first}"}
    )
    assert_oauth_error(reused, 400, "invalid_grant", "refresh_token_reused")
    assert 'taskgate_refresh=""' in reused.headers["set-cookie"]


async def test_the_cookie_is_read_only_in_cookie_mode(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    cookie = _cookie_of(await _token(client, _password_form(account), "?cookie=true"))
    response = await _token(
        client, {"grant_type": "refresh_token"}, headers={"Cookie": f"{COOKIE}={cookie}"}
    )
    assert_oauth_error(response, 400, "invalid_request", "refresh_token_missing")
    without_cookie = await _token(client, {"grant_type": "refresh_token"}, "?cookie=true")
    assert_oauth_error(without_cookie, 400, "invalid_request", "refresh_token_missing")


@pytest.mark.parametrize("grant", ["password", "refresh_token"])
async def test_cookie_mode_from_another_site_is_refused(
    client: httpx.AsyncClient, make_account: MakeAccountFn, grant: str
) -> None:
    account = await make_account()
    cookie = _cookie_of(await _token(client, _password_form(account), "?cookie=true"))
    form = _password_form(account) if grant == "password" else {"grant_type": grant}
    response = await _token(
        client,
        form,
        "?cookie=true",
        headers={
            "Origin": "https://evil.example",
            "Sec-Fetch-Site": "cross-site",
            "Cookie": f"{COOKIE}={cookie}",
        },
    )
    assert_oauth_error(response, 403, "invalid_request", "cross_site_request")
    assert "set-cookie" not in response.headers


# --------------------------------------------------------------------------------------------
# Rate limits and lockout
# --------------------------------------------------------------------------------------------


async def test_rate_limits_are_429_slow_down(settings: Settings) -> None:
    async with (
        limited_app(settings, rate_limit_login_per_ip="2/minute") as app,
        client_from(app) as http,
    ):
        form = {"grant_type": "password", "username": "nobody", "password": "x"}
        await http.post("/auth/login", json={"username": "nobody", "password": "x"})
        await _token(http, form)  # the same buckets as /auth/login
        limited = await _token(http, form)
        body = assert_oauth_error(limited, 429, "slow_down", "rate_limited")
        assert int(limited.headers["retry-after"]) > 0
        assert body["error_description"]


async def test_a_locked_login_name_is_invalid_grant_with_retry_after(
    settings: Settings, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    async with (
        limited_app(
            settings,
            rate_limit_login_per_ip="1000/minute",
            rate_limit_login_per_account="1000/minute",
        ) as app,
        client_from(app) as http,
    ):
        wrong = _password_form(account, password="wrong password")
        for _ in range(10):
            assert_oauth_error(
                await _token(http, wrong), 400, "invalid_grant", "invalid_credentials"
            )
        locked = await _token(http, _password_form(account))
        assert_oauth_error(locked, 400, "invalid_grant", "login_locked")
        assert int(locked.headers["retry-after"]) > 0


async def test_an_unreachable_database_is_503_temporarily_unavailable(settings: Settings) -> None:
    down = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://nobody@127.0.0.1:9/nothing"}
    )
    app = create_app(down)
    async with app.router.lifespan_context(app), client_from(app) as http:
        form = {"grant_type": "password", "username": "someone", "password": "x"}
        token = await _token(http, form)
        revoke = await http.post("/auth/revoke", data={"token": "some-refresh-token"})
    for response in (token, revoke):
        assert_oauth_error(response, 503, "temporarily_unavailable", "database_unavailable")
        assert response.headers["retry-after"] == "5"


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        *[(401, code, (400, "invalid_grant")) for code in sorted(GRANT_REFUSALS)],
        (403, "email_not_verified", (400, "invalid_grant")),
        (429, "login_locked", (400, "invalid_grant")),
        (401, "some_future_401", (400, "invalid_grant")),
        (429, "rate_limited", (429, "slow_down")),
        (403, "cross_site_request", (403, "invalid_request")),
        (403, "csrf_check_failed", (403, "invalid_request")),
        (503, "rate_limiter_unavailable", (503, "temporarily_unavailable")),
        (500, "internal_error", (500, "server_error")),
        (422, "validation_error", (400, "invalid_request")),
    ],
)
def test_every_json_api_error_has_its_rfc_error(
    status: int, code: str, expected: tuple[int, str]
) -> None:
    assert rfc_error(ApiError(status, code, "x")) == expected


# --------------------------------------------------------------------------------------------
# Revocation (RFC 7009)
# --------------------------------------------------------------------------------------------


async def test_revoking_a_refresh_token_ends_its_login(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    tokens = (await _token(client, _password_form(account))).json()
    other = (await _token(client, _password_form(account))).json()  # another login

    response = await client.post(
        "/auth/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
    )
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"

    refused = await _refresh(client, tokens["refresh_token"])
    assert_oauth_error(refused, 400, "invalid_grant", "refresh_token_revoked")
    me = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401
    assert (await _refresh(client, other["refresh_token"])).status_code == 200

    again = await client.post("/auth/revoke", data={"token": tokens["refresh_token"]})
    assert again.status_code == 200


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token", "something_else"])
async def test_revoking_an_unknown_token_is_200(
    client: httpx.AsyncClient, hint: str | None
) -> None:
    data = {"token": "never-issued", **({"token_type_hint": hint} if hint else {})}
    response = await client.post("/auth/revoke", data=data)
    assert response.status_code == 200
    assert response.content == b""


async def test_the_hint_does_not_stop_a_refresh_token_being_revoked(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    tokens = (await _token(client, _password_form(account))).json()
    response = await client.post(
        "/auth/revoke", data={"token": tokens["refresh_token"], "token_type_hint": "access_token"}
    )
    assert response.status_code == 200
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 400


async def test_an_access_token_cannot_be_revoked_alone(
    client: httpx.AsyncClient, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    tokens = (await _token(client, _password_form(account))).json()
    response = await client.post(
        "/auth/revoke", data={"token": tokens["access_token"], "token_type_hint": "access_token"}
    )
    assert_oauth_error(response, 400, "unsupported_token_type")
    # Nothing was revoked.
    assert (await client.get("/auth/me", headers=bearer(tokens["access_token"]))).is_success
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", FORM),
        (b"token=", FORM),
        (b"token_type_hint=refresh_token", FORM),
        (b"token=a&token=b", FORM),
        (b'{"token": "x"}', "application/json"),
    ],
)
async def test_revoke_without_one_token_is_invalid_request(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    response = await client.post(
        "/auth/revoke", content=content, headers={"Content-Type": content_type}
    )
    assert_oauth_error(response, 400, "invalid_request")


# --------------------------------------------------------------------------------------------
# The OpenAPI document describes the OAuth operations as they answer
# --------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_the_oauth_operations_survive_fuzzing(app: FastAPI) -> None:
    """Schemathesis, as test_fuzz_openapi.py, on these operations only: every answer is
    documented, and every error has `detail` and `code` as well as `error`."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:

        async def prepare(operation: Any) -> tuple[dict[str, str], None]:
            return {}, None

        report = await fuzz_api(
            http,
            "/auth/openapi.json",
            prepare,
            routed=lambda operation: (
                operation.path
                in {
                    "/auth/token",
                    "/auth/revoke",
                    "/auth/.well-known/oauth-authorization-server",
                    "/auth/.well-known/openid-configuration",
                }
            ),
        )
    assert report.operations == 4
    assert not report.failures, "\n\n".join(report.failures)
