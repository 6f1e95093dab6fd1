"""The JWKS cache against the real auth service over HTTP: cooldown, outages, rotation."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from tasks_factories import (
    AuthServer,
    SpareAuth,
    bearer,
    claims_for,
    eventually,
    metric,
    running_app,
    sign,
    tasks_settings,
)

from auth_service.core.signing_keys import KeyRing, SigningKey, write_new_key
from taskgate_common.metrics import new_registry
from taskgate_devstack.postgres import free_port
from tasks_service.core.config import Settings
from tasks_service.core.jwks_cache import JwksCache, cache_ttl
from tasks_service.metrics import TasksMetrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_unknown_kids_refetch_at_most_once_per_cooldown(
    auth_server: AuthServer, tasks_database_url: str
) -> None:
    settings = tasks_settings(tasks_database_url, auth_server)
    assert settings.jwks_unknown_kid_cooldown_seconds == 30
    clock = FakeClock()
    async with httpx.AsyncClient() as http:
        cache = JwksCache(settings, TasksMetrics(new_registry()), client=http, clock=clock)
        assert await cache.refresh()
        assert auth_server.log is not None
        fetches = auth_server.log.count("/jwks.json")

        # A flood of forged kids, some of them concurrent: one fetch toward auth.
        forged = [f"forged-{i}" for i in range(20)]
        assert await asyncio.gather(*(cache.key_for(kid) for kid in forged)) == [None] * 20
        for kid in forged:
            assert await cache.key_for(kid) is None
        assert auth_server.log.count("/jwks.json") == fetches + 1

        clock.now += 29
        assert await cache.key_for("forged-again") is None
        assert auth_server.log.count("/jwks.json") == fetches + 1

        clock.now += 2  # the cooldown is over: one more fetch is allowed
        assert await cache.key_for("forged-again") is None
        assert await cache.key_for("forged-once-more") is None
        assert auth_server.log.count("/jwks.json") == fetches + 2


async def test_forged_kids_do_not_flood_auth_through_the_api(
    auth_server: AuthServer, tasks_database_url: str
) -> None:
    async with running_app(tasks_settings(tasks_database_url, auth_server)) as (app, client):
        assert await app.state.ctx.jwks.refresh()
        assert auth_server.log is not None
        fetches = auth_server.log.count("/jwks.json")
        forger = _new_key()
        for i in range(25):
            token = sign(forger, claims_for(auth_server.issuer, uuid.uuid4()), kid=f"k{i}")
            response = await client.get("/api/tasks", headers=bearer(token))
            assert response.status_code == 401
        assert auth_server.log.count("/jwks.json") <= fetches + 1
        assert await metric(client, "tasks_token_rejections_total", reason="unknown_key") == 25


async def test_auth_down_keeps_the_last_good_keys(
    spare_auth: SpareAuth, tasks_database_url: str
) -> None:
    auth = spare_auth(jwks_max_age_seconds=1)
    auth.start()
    user = auth.new_user()
    unseen_token = auth.login(user)  # verified for the first time only after auth is gone
    settings = tasks_settings(
        tasks_database_url, auth, jwks_min_ttl_seconds=1, jwks_retry_max_seconds=1
    )
    async with running_app(settings) as (app, client):
        ctx = app.state.ctx
        await eventually(lambda: _loaded(ctx.jwks))
        assert (await client.get("/api/tasks", headers=user.headers)).status_code == 200

        auth.stop()
        # The background refresh fails, the key set's TTL (1 s) runs out: keys are kept.
        await eventually(lambda: _failing_and_stale(ctx.jwks))
        assert await metric(client, "tasks_jwks_fetch_failures_total", trigger="scheduled") >= 1

        for token in (user.token, unseen_token):
            response = await client.get("/api/tasks", headers=bearer(token))
            assert response.status_code == 200, response.text
        created = await client.post("/api/tasks", json={"title": "offline"}, headers=user.headers)
        assert created.status_code == 201

        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        jwks = ready.json()["checks"]["jwks"]
        assert jwks["status"] == "ok"
        assert jwks["details"]["stale"] is True
        assert jwks["details"]["keys"] == 1
        assert jwks["details"]["consecutive_failures"] >= 1
        assert jwks["details"]["last_error"]


async def test_a_key_added_at_auth_is_picked_up_and_a_removed_one_dropped(
    spare_auth: SpareAuth, tasks_database_url: str, auth_key: SigningKey
) -> None:
    new_key = _new_key()
    auth = spare_auth(jwks_max_age_seconds=1)
    auth.start()
    user = auth.new_user()
    old_token = user.token
    settings = tasks_settings(
        tasks_database_url, auth, jwks_min_ttl_seconds=1, jwks_retry_max_seconds=1
    )
    async with running_app(settings) as (app, client):
        jwks = app.state.ctx.jwks
        await eventually(lambda: _loaded(jwks))
        assert (await client.get("/api/tasks", headers=bearer(old_token))).status_code == 200
        assert not jwks.has_key(new_key.kid)

        # Auth restarts publishing both keys and signing with the new one.
        auth.stop()
        auth.keys = KeyRing(active=new_key, published=(auth_key, new_key))
        auth.start()
        await eventually(lambda: _has(jwks, new_key.kid))  # the background refresh alone
        new_token = auth.login(user)
        assert new_key.kid in _kid(new_token)
        assert (await client.get("/api/tasks", headers=bearer(new_token))).status_code == 200
        assert (await client.get("/api/tasks", headers=bearer(old_token))).status_code == 200

        # The old key is withdrawn: its tokens stop working, even the ones verified before.
        auth.stop()
        auth.keys = KeyRing.single(new_key)
        auth.start()
        await eventually(lambda: _lacks(jwks, auth_key.kid))
        rejected = await client.get("/api/tasks", headers=bearer(old_token))
        assert rejected.status_code == 401
        assert (await client.get("/api/tasks", headers=bearer(new_token))).status_code == 200


async def test_an_unknown_kid_fetches_a_key_published_since(
    spare_auth: SpareAuth, tasks_database_url: str, auth_key: SigningKey
) -> None:
    """With a long TTL only the unknown-`kid` path can learn the new key, at once."""
    new_key = _new_key()
    auth = spare_auth()
    auth.start()
    settings = tasks_settings(tasks_database_url, auth, jwks_min_ttl_seconds=3600)
    async with running_app(settings) as (app, client):
        await eventually(lambda: _loaded(app.state.ctx.jwks))
        auth.stop()
        auth.keys = KeyRing(active=new_key, published=(auth_key, new_key))
        auth.start()
        user = auth.new_user()
        assert new_key.kid in _kid(user.token)
        response = await client.get("/api/tasks", headers=user.headers)
        assert response.status_code == 200, response.text
        assert await metric(client, "tasks_jwks_refreshes_total", trigger="unknown_kid") == 1


async def test_starts_while_auth_is_down_and_recovers(
    spare_auth: SpareAuth, tasks_database_url: str
) -> None:
    auth = spare_auth(port=free_port())  # not started yet
    settings = tasks_settings(
        tasks_database_url,
        auth,
        auth_jwks_url=None,  # discovered from the issuer's openid-configuration
        jwks_unknown_kid_cooldown_seconds=0,
    )
    async with running_app(settings) as (_, client):
        live = await client.get("/health/live")
        assert live.status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["code"] == "not_ready"
        assert body["checks"]["jwks"] == {
            "status": "fail",
            "duration_ms": body["checks"]["jwks"]["duration_ms"],
            "error": "JwksNotLoaded",
            "details": None,
        }
        assert body["checks"]["database"]["status"] == "ok"

        auth.start()
        user = auth.new_user()
        auth.stop()
        # Auth is down again and no key was ever fetched: the token cannot be checked yet.
        waiting = await client.get("/api/tasks", headers=user.headers)
        assert waiting.status_code == 503
        assert waiting.json()["code"] == "auth_keys_unavailable"
        assert waiting.headers["Retry-After"]

        auth.start()
        response = await client.get("/api/tasks", headers=user.headers)
        assert response.status_code == 200, response.text
        assert auth.log is not None
        assert auth.log.count("/.well-known/openid-configuration") >= 1
        assert (await client.get("/health/ready")).status_code == 200


def test_cache_ttl_honours_max_age_within_bounds() -> None:
    settings = Settings(jwks_min_ttl_seconds=60, jwks_max_ttl_seconds=3600)
    assert cache_ttl("public, max-age=300", settings) == 300
    assert cache_ttl("max-age=5", settings) == 60
    assert cache_ttl("public, max-age=999999", settings) == 3600
    assert cache_ttl("no-store", settings) == 60
    assert cache_ttl(None, settings) == settings.jwks_default_ttl_seconds
    assert cache_ttl("private, s-maxage=10", settings) == settings.jwks_default_ttl_seconds


def _new_key() -> SigningKey:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as directory:
        return write_new_key(Path(directory) / "key.pem")


def _kid(token: str) -> str:
    import jwt

    return str(jwt.get_unverified_header(token)["kid"])


async def _loaded(jwks: JwksCache) -> bool:
    return jwks.loaded


async def _has(jwks: JwksCache, kid: str) -> bool:
    return jwks.has_key(kid)


async def _lacks(jwks: JwksCache, kid: str) -> bool:
    return jwks.loaded and not jwks.has_key(kid)


async def _failing_and_stale(jwks: JwksCache) -> bool:
    state = jwks.state()
    return bool(state["stale"] and state["consecutive_failures"] >= 1)
