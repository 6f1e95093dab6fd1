"""The series the alert rules and the auth dashboard read (deploy/prometheus, deploy/grafana)
that need the built app: the signing keys' age, the pool and the schema's lag."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from auth_service.context import AuthContext
from auth_service.core.config import Settings
from auth_service.core.signing_keys import write_new_key
from auth_service.main import create_app


async def samples(client: httpx.AsyncClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of `name` on /metrics, by its sorted labels."""
    response = await client.get("/metrics")
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = float(sample.value)
    return found


async def test_the_active_signing_key_reports_when_its_file_was_written(
    app: FastAPI, client: httpx.AsyncClient, signing_key_file: Path
) -> None:
    ctx: AuthContext = app.state.ctx
    series = await samples(client, "auth_signing_key_timestamp_seconds")
    assert series == {
        (("active", "true"), ("kid", ctx.keys.active.kid)): os.stat(signing_key_file).st_mtime
    }


async def test_a_published_key_that_no_longer_signs_is_marked_inactive(
    settings: Settings, tmp_path: Path
) -> None:
    old = write_new_key(tmp_path / "2026-01.pem")
    new = write_new_key(tmp_path / "2026-07.pem")
    month_ago = time.time() - 30 * 86_400
    os.utime(tmp_path / "2026-01.pem", (month_ago, month_ago))
    rotated = settings.model_copy(update={"signing_keys_dir": tmp_path, "active_key_id": "2026-07"})
    app = create_app(rotated)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        series = await samples(client, "auth_signing_key_timestamp_seconds")
    assert series == {
        (("active", "false"), ("kid", old.kid)): month_ago,
        (("active", "true"), ("kid", new.kid)): os.stat(tmp_path / "2026-07.pem").st_mtime,
    }


async def test_the_pool_limit_and_pending_migrations_are_exposed(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    limit = await samples(client, "taskgate_db_pool_connections_limit")
    assert limit == {(): settings.db_pool_size + settings.db_max_overflow}
    assert set(await samples(client, "taskgate_db_pool_connections_in_use")) == {()}

    # Checked in the background right after startup; the suite's database is migrated.
    deadline = time.monotonic() + 20
    while await samples(client, "taskgate_migrations_pending") != {(): 0.0}:
        assert time.monotonic() < deadline, "the migrations were never checked"
        await asyncio.sleep(0.05)
