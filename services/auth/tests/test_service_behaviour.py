"""Cross-cutting behaviour: error shape, request IDs, health, metrics, OpenAPI."""

from __future__ import annotations

import re

import httpx
import pytest
from auth_factories import LoginFn, RegisterFn
from fastapi import FastAPI

from auth_service.core.config import Settings
from auth_service.main import create_app
from taskgate_devstack.postgres import free_port


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/auth/nowhere", 404, "not_found"),
        ("GET", "/", 404, "not_found"),
        ("GET", "/auth/register", 405, "method_not_allowed"),
        ("DELETE", "/auth/me", 405, "method_not_allowed"),
    ],
)
async def test_framework_errors_use_the_error_shape(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": response.json()["detail"], "code": code}
    assert response.json()["detail"]


async def test_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    generated = await client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    passed = await client.get("/health/live", headers={"X-Request-ID": "frontend-abc.123"})
    assert passed.headers["x-request-id"] == "frontend-abc.123"


async def test_hostile_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "x" * 500})
    assert response.headers["x-request-id"] != "x" * 500
    response = await client.get("/health/live", headers={"X-Request-ID": "a b\tc"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_request_id_reaches_the_json_log(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    from taskgate_common.json_logs import JsonFormatter

    with caplog.at_level("INFO", logger="taskgate.access"):
        await client.get("/auth/nowhere", headers={"X-Request-ID": "trace-me-42"})
    records = [r for r in caplog.records if r.name == "taskgate.access"]
    assert records
    line = JsonFormatter("auth").format(records[-1])
    import json

    entry = json.loads(line)
    assert entry["request_id"] == "trace-me-42"
    assert entry["path"] == "/auth/nowhere"
    assert entry["status"] == 404


async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    live = await client.get("/health/live")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"]["status"] == "ok"
    summary = await client.get("/health")
    assert summary.status_code == 200
    assert summary.json()["service"] == "auth"
    assert summary.json()["version"] == "0.1.0"


@pytest.fixture
async def unreachable_db_client(settings: Settings) -> httpx.AsyncClient:
    """An auth app whose database is a port where nothing listens."""
    dead = settings.model_copy(
        update={
            "database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing",
            "db_connect_timeout_seconds": 2.0,
        }
    )
    app: FastAPI = create_app(dead)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_readiness_is_503_naming_the_database_when_it_is_down(
    unreachable_db_client: httpx.AsyncClient,
) -> None:
    async with unreachable_db_client as client:
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "fail"
    assert body["checks"]["database"]["status"] == "fail"
    assert body["code"] == "not_ready"
    assert "database" in body["detail"]
    assert live.status_code == 200


async def test_requests_needing_the_database_answer_503_when_it_is_down(
    unreachable_db_client: httpx.AsyncClient,
) -> None:
    async with unreachable_db_client as client:
        response = await client.post(
            "/auth/login", json={"username": "someone", "password": "password1"}
        )
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"]


async def test_metrics_count_registrations_logins_and_tokens(
    client: httpx.AsyncClient, register: RegisterFn, login: LoginFn
) -> None:
    def value(text: str, sample: str) -> float:
        match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    before = (await client.get("/metrics")).text
    account = await register()
    await login(account)
    await client.post("/auth/login", json={"username": account.username, "password": "wrong-pw"})
    after = (await client.get("/metrics")).text

    assert value(after, "auth_registrations_total") == value(before, "auth_registrations_total") + 1
    for sample, delta in [
        ('auth_logins_total{result="success"}', 1),
        ('auth_logins_total{result="invalid_credentials"}', 1),
        ('auth_tokens_issued_total{type="access"}', 1),
        ('auth_tokens_issued_total{type="refresh"}', 1),
    ]:
        assert value(after, sample) == value(before, sample) + delta, sample
    assert 'http_requests_total{handler="/auth/register",method="POST",status="201"}' in after
    assert "process_resident_memory_bytes" in after


async def test_openapi_documents_every_route_with_summary_and_errors(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/auth/openapi.json")).json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert {"200", "201", "202", "204"} & operation["responses"].keys(), f"{method} {path}"
    assert "409" in schema["paths"]["/auth/register"]["post"]["responses"]
    assert "401" in schema["paths"]["/auth/me"]["get"]["responses"]
    docs = await client.get("/auth/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
