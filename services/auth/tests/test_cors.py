"""CORS as a frontend on another origin meets it (taskgate_common/cors.py).

A preflight costs nothing (no limit counts it), every answer an allowed origin gets is readable
(its 429 and `Retry-After` included), and a refusal says why in the design's JSON.
"""

from __future__ import annotations

import httpx
from auth_factories import MakeAccountFn
from limits_support import client, limited_app, login

from auth_service.core.config import Settings

SPA = "http://localhost:5173"
PREFLIGHT = {
    "Origin": SPA,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}


def _readable_by(response: httpx.Response, origin: str, header: str) -> bool:
    """What a browser checks before it lets the page see the answer and one of its headers."""
    exposed = response.headers.get("access-control-expose-headers", "").lower().split(", ")
    return (
        response.headers.get("access-control-allow-origin") == origin
        and response.headers.get("access-control-allow-credentials") == "true"
        and header.lower() in exposed
    )


async def test_preflights_do_not_count_against_the_login_limit(
    settings: Settings, make_account: MakeAccountFn
) -> None:
    account = await make_account()
    async with (
        limited_app(settings, cors_origins=[SPA], rate_limit_login_per_ip="3/minute") as app,
        client(app) as http,
    ):
        preflights = [await http.options("/auth/login", headers=PREFLIGHT) for _ in range(50)]
        logins = [
            await http.post(
                "/auth/login",
                json={"username": account.username, "password": account.password},
                headers={"Origin": SPA},
            )
            for _ in range(3)
        ]

    assert {p.status_code for p in preflights} == {200}
    assert all(p.headers["access-control-allow-origin"] == SPA for p in preflights)
    assert [answer.status_code for answer in logins] == [200, 200, 200]


async def test_a_429_is_readable_by_an_allowed_origin_with_its_retry_after(
    settings: Settings,
) -> None:
    async with (
        limited_app(settings, cors_origins=[SPA], rate_limit_login_per_ip="1/minute") as app,
        client(app) as http,
    ):
        http.headers["Origin"] = SPA
        await login(http, "nobody", "wrong password")
        refused = await login(http, "nobody", "wrong password")

    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert _readable_by(refused, SPA, "Retry-After")
    assert _readable_by(refused, SPA, "X-Request-ID")


async def test_a_preflight_from_an_origin_nobody_listed_says_so(settings: Settings) -> None:
    async with limited_app(settings, cors_origins=[SPA]) as app, client(app) as http:
        refused = await http.options(
            "/auth/login", headers={**PREFLIGHT, "Origin": "http://evil.example"}
        )

    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/json"
    body = refused.json()
    assert body["code"] == "origin_not_allowed"
    assert "http://evil.example" in body["detail"]
    assert "AUTH_CORS_ORIGINS" in body["detail"]
    assert "access-control-allow-origin" not in refused.headers


async def test_with_no_origins_configured_a_preflight_is_refused_clearly_too(
    settings: Settings,
) -> None:
    async with limited_app(settings, cors_origins=[]) as app, client(app) as http:
        refused = await http.options("/auth/login", headers=PREFLIGHT)

    assert refused.status_code == 403
    assert refused.json()["code"] == "origin_not_allowed"
    assert "empty" in refused.json()["detail"]


async def test_a_preflight_asking_for_a_header_the_api_does_not_take_names_it(
    settings: Settings,
) -> None:
    async with limited_app(settings, cors_origins=[SPA]) as app, client(app) as http:
        refused = await http.options(
            "/auth/login",
            headers={**PREFLIGHT, "Access-Control-Request-Headers": "content-type, x-debug"},
        )

    assert refused.status_code == 400
    assert refused.json()["code"] == "cors_preflight_refused"
    assert "the headers x-debug;" in refused.json()["detail"]
