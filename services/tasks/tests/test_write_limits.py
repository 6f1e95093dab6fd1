"""The per-user limit on task writes, in memory and in a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tasks_factories import User

from taskgate_devstack.postgres import free_port
from taskgate_devstack.pytest_plugin import RedisForTests
from taskgate_devstack.redis import RedisServer
from tasks_service.context import TasksContext
from tasks_service.core.config import Settings
from tasks_service.main import create_app


@asynccontextmanager
async def limited_app(settings: Settings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A tasks app of its own with the limits on (the suite's shared app has them off)."""
    app = create_app(settings.model_copy(update={"rate_limit_enabled": True, **overrides}))
    async with app.router.lifespan_context(app):
        assert await app.state.ctx.jwks.refresh()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def metric(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    transport = http._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    assert isinstance(app, FastAPI)
    ctx: TasksContext = app.state.ctx
    return ctx.registry.get_sample_value(name, labels) or 0.0


async def create(http: httpx.AsyncClient, user: User) -> httpx.Response:
    return await http.post("/api/tasks", json={"title": "a task"}, headers=user.headers)


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    redis: RedisForTests = request.getfixturevalue("redis")
    return redis.url


async def test_writes_are_limited_per_user_with_headers(
    settings: Settings, alice: User, bob: User, store_url: str
) -> None:
    async with limited_app(
        settings, rate_limit_storage_url=store_url, rate_limit_writes_per_user="3/minute"
    ) as http:
        created = [await create(http, alice) for _ in range(3)]
        task_id = created[0].json()["id"]
        refused = await http.patch(
            f"/api/tasks/{task_id}", json={"title": "renamed"}, headers=alice.headers
        )
        read = await http.get(f"/api/tasks/{task_id}", headers=alice.headers)
        listed = await http.get("/api/tasks", headers=alice.headers)
        compat = await http.post(
            f"/api/{alice.id}/tasks", json={"title": "old style"}, headers=alice.headers
        )
        other_user = await create(http, bob)
    assert [r.status_code for r in created] == [201, 201, 201]
    assert [r.headers["RateLimit-Remaining"] for r in created] == ["2", "1", "0"]
    assert created[0].headers["RateLimit-Limit"] == "3"
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert compat.status_code == 429  # the per-user URL family counts too
    # Reads are not limited here, and carry no write quota.
    assert read.status_code == listed.status_code == 200
    assert "RateLimit-Limit" not in read.headers
    assert other_user.status_code == 201


async def test_two_instances_sharing_redis_enforce_one_write_limit(
    settings: Settings, alice: User, redis: RedisForTests
) -> None:
    options = {"rate_limit_storage_url": redis.url, "rate_limit_writes_per_user": "3/minute"}
    async with limited_app(settings, **options) as a, limited_app(settings, **options) as b:
        statuses = [(await create(http, alice)).status_code for http in (a, b, a, b)]
    assert statuses == [201, 201, 201, 429]


async def test_an_unauthenticated_write_is_a_401_and_costs_nothing(
    settings: Settings, alice: User
) -> None:
    async with limited_app(settings, rate_limit_writes_per_user="1/minute") as http:
        anonymous = await http.post("/api/tasks", json={"title": "x"})
        mine = await create(http, alice)
    assert anonymous.status_code == 401
    assert mine.status_code == 201


async def test_redis_down_lets_writes_through_and_counts_it(
    settings: Settings, alice: User, spare_redis: RedisServer
) -> None:
    async with limited_app(settings, rate_limit_storage_url=spare_redis.url) as http:
        assert (await create(http, alice)).status_code == 201
        spare_redis.stop()
        answers = [await create(http, alice) for _ in range(2)]
        assert metric(http, "tasks_rate_limit_store_errors_total", outcome="allowed") == 2
    assert [a.status_code for a in answers] == [201, 201]
    assert "RateLimit-Limit" not in answers[0].headers


async def test_redis_down_refuses_writes_when_failing_closed(
    settings: Settings, alice: User
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with limited_app(
        settings, rate_limit_storage_url=dead, rate_limit_fail_closed=True
    ) as http:
        write = await create(http, alice)
        read = await http.get("/api/tasks", headers=alice.headers)
        assert metric(http, "tasks_rate_limit_store_errors_total", outcome="refused") == 1
    assert write.status_code == 503
    assert write.json()["code"] == "rate_limiter_unavailable"
    assert read.status_code == 200  # reads never touch the store


async def test_a_write_from_another_user_id_in_the_url_is_still_refused(
    settings: Settings, alice: User
) -> None:
    async with limited_app(settings) as http:
        answer = await http.post(
            f"/api/{uuid.uuid4()}/tasks", json={"title": "x"}, headers=alice.headers
        )
    assert answer.status_code == 403


async def test_a_write_limit_429_is_readable_cross_origin_and_preflights_are_free(
    settings: Settings, alice: User
) -> None:
    """A page on an allowed origin sees the 429 and its Retry-After (CORS headers on it, the
    header exposed); the preflight before each write spends nothing of the write limit."""
    spa = "http://localhost:5173"
    preflight = {
        "Origin": spa,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with limited_app(
        settings, cors_origins=[spa], rate_limit_writes_per_user="2/minute"
    ) as http:
        answers = []
        for _ in range(3):
            assert (await http.options("/api/tasks", headers=preflight)).status_code == 200
            answers.append(
                await http.post(
                    "/api/tasks", json={"title": "x"}, headers={**alice.headers, "Origin": spa}
                )
            )
    assert [answer.status_code for answer in answers] == [201, 201, 429]
    refused = answers[-1]
    assert refused.headers["access-control-allow-origin"] == spa
    assert refused.headers["access-control-allow-credentials"] == "true"
    exposed = refused.headers["access-control-expose-headers"].split(", ")
    assert {"Retry-After", "RateLimit-Reset", "X-Request-ID", "ETag"} <= set(exposed)
