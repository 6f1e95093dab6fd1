"""The gateway as a frontend sees it: one origin, JSON everywhere, safe headers, edge limits."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import jwt
import pytest
from e2e_support import new_account

from taskgate_devstack.stack import DevStack


async def test_discovery_through_the_gateway_names_the_gateway_as_issuer(
    gateway: httpx.AsyncClient, gateway_url: str
) -> None:
    config = (await gateway.get("/auth/.well-known/openid-configuration")).json()
    assert config["issuer"] == f"{gateway_url}/auth"
    assert config["jwks_uri"] == f"{gateway_url}/auth/.well-known/jwks.json"
    jwks = await gateway.get("/auth/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.json()["keys"]


async def test_token_issuer_matches_the_gateway_and_verifies_from_its_jwks(
    gateway: httpx.AsyncClient, gateway_url: str
) -> None:
    account = await new_account(gateway)
    token = account.access_token
    keys = jwt.PyJWKSet.from_dict((await gateway.get("/auth/.well-known/jwks.json")).json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience="tasks-api", issuer=f"{gateway_url}/auth"
    )
    assert claims["sub"] == account.user_id
    me = await gateway.get("/auth/me", headers=account.headers)
    assert me.status_code == 200
    assert me.json()["username"] == account.username


# `/` and the web app's pages are served by the gateway's `web` router (test_web_app.py).
@pytest.mark.parametrize("path", ["/apix", "/authx/login", "/nowhere", "/metrics", "/health"])
async def test_paths_outside_the_two_prefixes_are_json_404(
    gateway: httpx.AsyncClient, path: str
) -> None:
    response = await gateway.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "process_resident_memory_bytes" not in response.text


async def test_security_headers_and_no_server_banner(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/auth/.well-known/jwks.json")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "server" not in response.headers
    assert "strict-transport-security" not in response.headers  # plain HTTP: no HSTS


async def test_request_id_passes_through_the_gateway(gateway: httpx.AsyncClient) -> None:
    request_id = f"e2e-{uuid.uuid4().hex}"
    response = await gateway.get(
        "/auth/.well-known/jwks.json", headers={"X-Request-ID": request_id}
    )
    assert response.headers["x-request-id"] == request_id


async def test_large_responses_are_compressed(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/auth/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == "gzip"
    assert response.json()["info"]["title"] == "taskgate auth"


async def test_write_answers_skip_the_compress_layer(gateway: httpx.AsyncClient) -> None:
    """Writes answer one small object: their routers have no `compress` (decision 68), so the
    answer names no encoding and does not vary by Accept-Encoding; a large read still does."""
    account = await new_account(gateway)
    gzip = {**account.headers, "Accept-Encoding": "gzip"}
    created = await gateway.post(
        "/api/tasks", json={"title": "x" * 200, "description": "y" * 4000}, headers=gzip
    )
    assert created.status_code == 201
    assert "content-encoding" not in created.headers
    assert "accept-encoding" not in created.headers.get("vary", "").lower()
    listed = await gateway.get("/api/tasks", headers=gzip)
    assert listed.headers.get("content-encoding") == "gzip"


@pytest.mark.parametrize(
    ("docs", "schema"), [("/auth/docs", "/auth/openapi.json"), ("/api/docs", "/api/openapi.json")]
)
async def test_swagger_ui_is_reachable_through_the_gateway(
    gateway: httpx.AsyncClient, docs: str, schema: str
) -> None:
    response = await gateway.get(docs)
    assert response.status_code == 200
    assert "swagger-ui" in response.text
    assert schema in response.text  # the page loads its schema through the gateway too
    assert (await gateway.get(schema)).json()["paths"]


async def test_oversized_body_is_refused_at_the_edge(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/auth/register",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"  # JSON, though Traefik made it


async def test_burst_of_logins_from_one_ip_is_rate_limited(gateway: httpx.AsyncClient) -> None:
    body = {"username": "nobody_at_all", "password": "wrong-password"}
    responses = await asyncio.gather(*(gateway.post("/auth/login", json=body) for _ in range(30)))
    statuses = [r.status_code for r in responses]
    assert 429 in statuses
    assert set(statuses) <= {401, 429}
    assert {r.json()["code"] for r in responses if r.status_code == 429} == {"rate_limited"}
    assert statuses.count(401) <= 15  # burst 10, plus what refills during the burst


async def test_gateway_metrics_count_requests_per_router(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    await gateway.get("/auth/.well-known/jwks.json")
    metrics = (await gateway.get(f"{stack.url('gateway_metrics')}/metrics")).text
    assert re.search(r'traefik_router_requests_total\{[^}]*router="auth-idempotent@file"', metrics)
    assert re.search(r'traefik_service_requests_total\{[^}]*service="auth@file"', metrics)


async def test_each_service_exposes_its_own_request_counters(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    await gateway.get("/auth/.well-known/jwks.json")
    await gateway.get("/api/tasks")  # 401 without a token: still counted
    auth_metrics = (await gateway.get(f"{stack.url('auth')}/metrics")).text
    assert 'http_requests_total{handler="/auth/.well-known/jwks.json"' in auth_metrics
    tasks_metrics = (await gateway.get(f"{stack.url('tasks')}/metrics")).text
    assert re.search(
        r'http_requests_total\{handler="/api/tasks",method="GET",status="401"\}', tasks_metrics
    )
    gateway_ping = await gateway.get(f"{stack.url('gateway_ping')}/ping")
    assert gateway_ping.status_code == 200
