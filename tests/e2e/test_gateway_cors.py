"""A frontend on another origin through the gateway: CORS preflights never spend the edge rate
limits, and the gateway's own 429 is readable by an allowed origin.

A browser sends a preflight (`OPTIONS` with `Access-Control-Request-Method`) before most of an
SPA's cross-origin requests. Routed with the requests they precede, they spent the same per-IP
buckets: the credential routes' burst of 10 was gone after five preflighted calls, and an SPA's
register, login and a few refreshes met a 429. The gateway now routes preflights through
routers of their own (`auth-preflight`, `tasks-preflight`) with a separate flood-guard bucket;
the services still answer them (their CORS middleware decides which origins may call).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from reliability_support import own_ip_client, private_gateway

from taskgate_devstack.stack import DevStack

FRONTEND = "http://localhost:5173"  # an origin the e2e stack's services allow
CREDENTIAL_BURST = 10  # gateway/dynamic/taskgate.yml, credential-rate-limit


def preflight_headers(method: str, headers: str) -> dict[str, str]:
    return {
        "Origin": FRONTEND,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def assert_preflight_allowed(response: httpx.Response, method: str) -> None:
    """The service's own answer to an allowed preflight, through the gateway's first two
    middlewares (request ID, security headers)."""
    assert response.status_code == 200, (response.status_code, response.text[:200])
    assert response.headers["access-control-allow-origin"] == FRONTEND
    assert response.headers["access-control-allow-credentials"] == "true"
    assert method in response.headers["access-control-allow-methods"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.headers.get_list("x-request-id")) == 1


def assert_edge_429(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert "ratelimit-limit" not in response.headers  # the gateway's 429, not a service's


async def test_preflights_to_a_credential_route_never_spend_its_rate_limit(
    gateway: httpx.AsyncClient,
) -> None:
    """50 preflights from one address, all answered; that address then still has the
    credential routes' whole burst for real logins, and no more than it."""
    preflights = await asyncio.gather(
        *(
            gateway.options("/auth/login", headers=preflight_headers("POST", "content-type"))
            for _ in range(50)
        )
    )
    for response in preflights:
        assert_preflight_allowed(response, "POST")
    # The burst, one at a time (validation errors: no password hashing needed).
    for _ in range(CREDENTIAL_BURST):
        response = await gateway.post("/auth/login", json={}, headers={"Origin": FRONTEND})
        assert response.status_code == 422, response.text
    # The limit itself still holds for real requests.
    more = await asyncio.gather(
        *(gateway.post("/auth/login", json={}) for _ in range(2 * CREDENTIAL_BURST))
    )
    limited = [r for r in more if r.status_code == 429]
    assert limited, [r.status_code for r in more]
    for response in limited:
        assert_edge_429(response)


async def test_preflights_to_the_tasks_api_never_spend_its_rate_limit(
    stack: DevStack, tmp_path: Path
) -> None:
    """The same for /api, whose general limit (100/s, burst 200) is too wide to exhaust here:
    on a gateway of the test's own with a general limit of 1/s, burst 10, 50 preflights are
    all answered and the address then still has its 10 real requests."""
    tight = {"TASKGATE_GENERAL_RATE_AVERAGE": "1", "TASKGATE_GENERAL_RATE_BURST": "10"}
    async with (
        private_gateway(stack, tmp_path, tight) as own,
        own_ip_client(own.url) as client,
    ):
        preflights = await asyncio.gather(
            *(
                client.options(
                    "/api/tasks", headers=preflight_headers("POST", "authorization, content-type")
                )
                for _ in range(50)
            )
        )
        for response in preflights:
            assert_preflight_allowed(response, "POST")
        for _ in range(10):
            response = await client.get("/api/tasks", headers={"Origin": FRONTEND})
            assert response.status_code == 401, response.text  # the service's, no token
        more = await asyncio.gather(*(client.get("/api/tasks") for _ in range(20)))
        limited = [r for r in more if r.status_code == 429]
        assert limited, [r.status_code for r in more]
        for response in limited:
            assert_edge_429(response)


async def test_a_preflight_from_a_refused_origin_is_still_the_services_answer(
    gateway: httpx.AsyncClient,
) -> None:
    """The preflight routers only spare the rate limits: the service's CORS middleware still
    refuses an origin it does not know, and no CORS header lets the browser go on."""
    response = await gateway.options(
        "/auth/login",
        headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code in (400, 403), response.status_code
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code == 403:
        assert response.json()["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("allowed", [True, False])
async def test_an_edge_429_is_readable_by_an_allowed_origin_only(
    gateway: httpx.AsyncClient, allowed: bool
) -> None:
    """A frontend on an allowed origin can read the gateway's 429 and its Retry-After and
    X-Request-ID; another origin gets no CORS headers."""
    origin = FRONTEND if allowed else "http://evil.test"
    responses = await asyncio.gather(
        *(gateway.post("/auth/login", json={}, headers={"Origin": origin}) for _ in range(25))
    )
    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    for response in limited:
        assert_edge_429(response)
        assert response.headers["retry-after"]
        if allowed:
            assert response.headers["access-control-allow-origin"] == FRONTEND
            assert response.headers["access-control-allow-credentials"] == "true"
            assert "Origin" in response.headers["vary"].split(", ")
            exposed = {
                h.strip().lower()
                for h in response.headers["access-control-expose-headers"].split(",")
            }
            assert {"retry-after", "x-request-id"} <= exposed
        else:
            assert "access-control-allow-origin" not in response.headers
            assert "access-control-allow-credentials" not in response.headers
