"""Health, metrics, docs, and the database going away (503, never a 500 or a hang)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from tasks_factories import AuthServer, User, create_task, metric, running_app, tasks_settings

from taskgate_common.database import DriverConnections
from taskgate_devstack.databases import recreate_database
from taskgate_devstack.postgres import EmbeddedPostgres, free_port
from tasks_service.migrate import upgrade


async def test_database_unreachable_is_503(
    auth_server: AuthServer, alice: User, tasks_database_url: str
) -> None:
    closed = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/tasks"
    settings = tasks_settings(
        closed, auth_server, db_connect_timeout_seconds=2, db_pool_timeout_seconds=2
    )
    async with running_app(settings) as (app, client):
        assert await app.state.ctx.jwks.refresh()
        for method, path, body in [
            ("GET", "/api/tasks", None),
            ("POST", "/api/tasks", {"title": "x"}),
            ("GET", "/api/board", None),
            ("GET", f"/api/{alice.id}/tasks", None),
        ]:
            response = await client.request(method, path, json=body, headers=alice.headers)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["code"] == "database_unavailable"
            assert response.headers["Retry-After"]
        assert (await client.get("/health/live")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"]["status"] == "fail"
        assert checks["jwks"]["status"] == "ok"


@pytest.fixture
def dedicated_postgres() -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL server of its own (that the test stops), with a migrated database.

    Its files live in a directory of its own, not under pytest's `tmp_path`: pytest prunes
    old `tmp_path` roots of other runs, which must never take a live cluster's files.
    """
    root = Path(tempfile.mkdtemp(prefix="taskgate-outage-"))
    server = EmbeddedPostgres(root / "data", free_port(), fast_unsafe=True)
    server.start()
    url = recreate_database(server.admin_url, "tasks_outage")
    upgrade(url)
    yield server, url
    server.destroy()
    shutil.rmtree(root, ignore_errors=True)


async def test_database_lost_and_back(
    auth_server: AuthServer, alice: User, dedicated_postgres: tuple[EmbeddedPostgres, str]
) -> None:
    server, url = dedicated_postgres
    settings = tasks_settings(
        url, auth_server, db_connect_timeout_seconds=2, db_pool_timeout_seconds=2
    )
    async with running_app(settings) as (app, client):
        assert await app.state.ctx.jwks.refresh()
        await create_task(client, alice, title="before the outage")

        server.stop()
        during = await client.get("/api/tasks", headers=alice.headers)
        assert during.status_code == 503
        assert during.json()["code"] == "database_unavailable"
        assert (await client.get("/health/ready")).status_code == 503

        server.start()
        after = await client.get("/api/tasks", headers=alice.headers)
        assert after.status_code == 200
        assert [task["title"] for task in after.json()["items"]] == ["before the outage"]
        assert (await client.get("/health/ready")).status_code == 200


async def test_health_reports_database_and_keys(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["service"] == "tasks"
    assert set(body["checks"]) == {"database", "jwks", "revocations"}
    assert body["checks"]["jwks"]["details"]["loaded"] is True
    assert body["checks"]["jwks"]["details"]["keys"] >= 1


async def test_metrics_count_task_changes(client: httpx.AsyncClient, alice: User) -> None:
    created = await metric(client, "tasks_tasks_created_total")
    patched = await metric(client, "tasks_tasks_updated_total", operation="patch")
    moved = await metric(client, "tasks_tasks_updated_total", operation="move")
    deleted = await metric(client, "tasks_tasks_deleted_total")
    task = await create_task(client, alice)
    url = f"/api/tasks/{task['id']}"
    await client.patch(url, json={"title": "changed"}, headers=alice.headers)
    await client.post(f"{url}/move", json={"status": "done"}, headers=alice.headers)
    await client.delete(url, headers=alice.headers)
    assert await metric(client, "tasks_tasks_created_total") == created + 1
    assert await metric(client, "tasks_tasks_updated_total", operation="patch") == patched + 1
    assert await metric(client, "tasks_tasks_updated_total", operation="move") == moved + 1
    assert await metric(client, "tasks_tasks_deleted_total") == deleted + 1
    text = (await client.get("/metrics")).text
    for name in (
        "tasks_jwks_refreshes_total",
        "tasks_jwks_fetch_failures_total",
        "tasks_token_rejections_total",
        "http_requests_total",
    ):
        assert name in text


async def test_docs_and_schema(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/docs")).status_code == 200
    spec = (await client.get("/api/openapi.json")).json()
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            assert "401" in operation["responses"], where
            assert "503" in operation["responses"], where
            success = [code for code in operation["responses"] if code.startswith("2")]
            assert success, where
            if success != ["204"]:
                media = "text/event-stream" if path == "/api/events" else "application/json"
                content = operation["responses"][success[0]]["content"]
                assert list(content) == [media], where
                assert content[media]["schema"], where
            assert operation.get("security") == [{"OAuth2": []}], where
            if method != "get":  # every write counts against the caller's write limit
                assert "Retry-After" in operation["responses"]["429"]["headers"], where


async def test_request_ids_are_echoed(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.get("/api/tasks", headers={**alice.headers, "X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    generated = await client.get("/api/tasks", headers=alice.headers)
    assert len(generated.headers["X-Request-ID"]) == 32


async def test_connections_the_server_closed_are_skipped_without_an_error(
    client: httpx.AsyncClient, alice: User, tasks_db: AsyncEngine
) -> None:
    """An operator killing the service's sessions (or a failover) costs no failed request:
    the pool hands out only connections whose socket is still open."""
    await create_task(client, alice, title="kept")
    async with tasks_db.connect() as admin:
        killed = await admin.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'taskgate-tasks'"
            )
        )
    assert killed
    await asyncio.sleep(0.2)  # asyncpg sees the sockets close
    for _ in range(3):
        response = await client.get("/api/tasks", headers=alice.headers)
        assert response.status_code == 200
        assert "kept" in [task["title"] for task in response.json()["items"]]


async def test_a_connection_abandoned_inside_a_transaction_is_not_reused(
    tasks_database_url: str,
) -> None:
    """A request cancelled between BEGIN and COMMIT must not hand its open transaction (and
    its locks) to the next request on that connection."""
    engine = create_async_engine(tasks_database_url, pool_size=1, max_overflow=0)
    connections = DriverConnections(engine, attempts=3)

    async def cancelled_mid_transaction() -> None:
        async with connections.connect() as connection:
            await connection.execute("BEGIN; SELECT pg_advisory_xact_lock(42)")
            raise asyncio.CancelledError

    try:
        with pytest.raises(asyncio.CancelledError):
            await cancelled_mid_transaction()
        async with connections.connect() as connection:
            assert not connection.is_in_transaction()
            assert await connection.fetchval("SELECT pg_try_advisory_xact_lock(42)")
    finally:
        await engine.dispose()
