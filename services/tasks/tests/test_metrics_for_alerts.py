"""The series the alert rules read (deploy/prometheus/rules/alerts.yml) move when they should:
the JWKS cache's staleness, the pool's use, and the schema's lag behind the migrations."""

from __future__ import annotations

import asyncio

import httpx
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy import text
from tasks_factories import AuthServer, eventually, metric, tasks_settings

from taskgate_common.database import create_driver_connections, create_engine
from taskgate_common.metrics import DatabaseMetrics, new_registry
from taskgate_devstack.pytest_plugin import PostgresForTests
from tasks_service.context import TasksContext
from tasks_service.core.config import Settings
from tasks_service.core.jwks_cache import JwksCache
from tasks_service.metrics import TasksMetrics
from tasks_service.migrate import MIGRATIONS, upgrade


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_jwks_staleness_and_last_success_follow_the_cache(
    auth_server: AuthServer, tasks_database_url: str
) -> None:
    settings = tasks_settings(tasks_database_url, auth_server)
    registry = new_registry()
    clock, wall_clock = FakeClock(1000.0), FakeClock(1_800_000_000.0)
    async with httpx.AsyncClient() as http:
        cache = JwksCache(
            settings, TasksMetrics(registry), client=http, clock=clock, wall_clock=wall_clock
        )
        # Never fetched: stale, and no success yet (what TasksJwksStale fires on).
        assert registry.get_sample_value("tasks_jwks_stale") == 1
        assert registry.get_sample_value("tasks_jwks_last_success_timestamp_seconds") == 0

        assert await cache.refresh()
        assert registry.get_sample_value("tasks_jwks_stale") == 0
        assert registry.get_sample_value("tasks_jwks_last_success_timestamp_seconds") == (
            1_800_000_000.0
        )

        # Past the key set's max-age without a successful refresh: stale again.
        clock.now += settings.jwks_max_ttl_seconds + 1
        assert registry.get_sample_value("tasks_jwks_stale") == 1
        assert cache.state()["stale"] is True


async def test_the_app_exposes_its_pool_limit(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    limit = await metric(client, "taskgate_db_pool_connections_limit")
    assert limit == settings.db_pool_size + settings.db_max_overflow
    ctx: TasksContext = app.state.ctx
    assert ctx.metrics.database is not None  # bound by install_metrics


async def test_the_pool_gauge_counts_connections_in_use(settings: Settings) -> None:
    """On an engine of its own, so that no background work of the app's shares the pool."""
    engine = create_engine(settings, application_name="taskgate-tasks-pool-gauge-test")
    registry = new_registry()
    DatabaseMetrics(registry, engine, settings.db_pool_size, MIGRATIONS)
    db = create_driver_connections(engine, settings)
    try:
        assert registry.get_sample_value("taskgate_db_pool_connections_in_use") == 0
        async with db.connect(), db.connect():
            assert registry.get_sample_value("taskgate_db_pool_connections_in_use") == 2
        assert registry.get_sample_value("taskgate_db_pool_connections_in_use") == 0
    finally:
        await engine.dispose()


async def test_the_app_reports_no_pending_migration_on_a_migrated_database(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def checked() -> bool:
        return await metric(client, "taskgate_migrations_pending") == 0

    await eventually(checked)  # checked in the background right after startup


async def test_pending_migrations_count_what_the_database_lacks(
    postgres_server: PostgresForTests, settings: Settings
) -> None:
    url = await asyncio.to_thread(postgres_server.fresh_database, "tasks_pending_migrations")
    engine = create_engine(settings.model_copy(update={"database_url": url}), "pending-test")
    registry = new_registry()
    database = DatabaseMetrics(registry, engine, 1, MIGRATIONS)
    revisions = [rev.revision for rev in ScriptDirectory(str(MIGRATIONS)).walk_revisions()]
    try:
        # Not migrated at all: every revision is pending.
        assert await database.check_migrations() == len(revisions)
        assert registry.get_sample_value("taskgate_migrations_pending") == len(revisions)

        # Up to the first revision only (walk_revisions goes from the head down).
        await asyncio.to_thread(upgrade, url, revisions[-1])
        assert await database.check_migrations() == len(revisions) - 1

        await asyncio.to_thread(upgrade, url)
        assert await database.check_migrations() == 0
        assert registry.get_sample_value("taskgate_migrations_pending") == 0

        # A revision this code does not know (a newer schema, the code rolled back): -1.
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
        assert await database.check_migrations() == -1
        assert registry.get_sample_value("taskgate_migrations_pending") == -1
    finally:
        await engine.dispose()
