"""Prometheus `/metrics` at the service root: HTTP metrics plus the service's own counters.

Each app gets its own registry, so an app factory can be called many times (tests) without
"duplicated timeseries" errors, and a scrape shows exactly one service.

The alert rules and dashboards in deploy/ read these series; tests/e2e/test_observability_metrics.py
checks that every name they use is exposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from alembic.script import ScriptDirectory
from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from taskgate_common.migrations import pending_migrations

logger = logging.getLogger("taskgate.metrics")

# The label values of requests that match no route, and of methods no route could have.
UNMATCHED_HANDLER = "none"
OTHER_METHOD = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class HttpMetrics:
    """Requests by handler, method and status, and latency by handler and method: the two HTTP
    series the dashboards, alerts and SLOs read (`http_requests_total`,
    `http_request_duration_seconds`, Prometheus' default buckets).

    Recorded by `RequestContextMiddleware` in the same pass as the request ID and the access
    log. Both labels come from closed sets: `handler` is the template of the route that
    answered (Starlette leaves it in `scope["route"]`), else "none"; `method` a standard one,
    else "other". A label value is a new series per metric, and both come from the client: a
    scan of made-up paths or methods never grows a scrape. `/metrics` and `/health…` are not
    counted (probes would drown the traffic).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ["method", "status", "handler"],
            registry=registry,
        )
        self._latency = Histogram(
            "http_request_duration_seconds",
            "Latency of requests by handler and method (the whole answer, streamed ones too).",
            ["method", "handler"],
            registry=registry,
        )
        # Label look-ups cost more than the increments: the children are kept per label set.
        self._children: dict[tuple[str, int, str], tuple[Any, Any]] = {}

    def observe(self, route: object, method: str, status: int, seconds: float) -> None:
        template = getattr(route, "path", None)
        if not isinstance(template, str):
            template = UNMATCHED_HANDLER
        elif template == "/metrics" or template.startswith("/health"):
            return
        if method not in _METHODS:
            method = OTHER_METHOD
        key = (template, status, method)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(method, str(status), template),
                self._latency.labels(method, template),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


@runtime_checkable
class ContextMetrics(Protocol):
    """A service's own metrics that also report on parts of its context built after them (the
    engine, the signing keys). `install_metrics` hands them the app's context (`app.state.ctx`)
    once the app is built and runs `watch()` while the app serves: each service says what it
    reports in its metrics module, and its app factory needs no extra wiring."""

    def bind(self, ctx: Any) -> None: ...

    async def watch(self) -> None: ...


def install_metrics(app: FastAPI, registry: CollectorRegistry) -> HttpMetrics:
    """`/metrics` (the registry in Prometheus' text format) and the HTTP series, which the
    caller hands to `RequestContextMiddleware`; binds the service's own metrics to its
    context."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    http_metrics = HttpMetrics(registry)
    ctx = getattr(app.state, "ctx", None)
    service_metrics = getattr(ctx, "metrics", None)
    if isinstance(service_metrics, ContextMetrics):
        service_metrics.bind(ctx)
        run_while_serving(app, service_metrics.watch)
    return http_metrics


def run_while_serving(app: FastAPI, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `job` in the background from the end of the app's startup to its shutdown (before
    the service's own lifespan closes the engine it may use)."""
    lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def with_job(application: Any) -> AsyncIterator[Any]:
        async with lifespan(application) as state:
            task = asyncio.create_task(job(), name="metrics-watch")
            try:
                yield state
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app.router.lifespan_context = with_job


class DatabaseMetrics:
    """The connection pool's use and the schema's lag behind the code, for the
    `DatabasePoolExhausted` and `MigrationsPending` alerts (deploy/prometheus/rules/alerts.yml).

    Unprefixed by service (like `http_*`): one rule covers both, the `job` label tells them
    apart. The pool is read at scrape time, so a scrape shows it as it is, not as it was.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        engine: AsyncEngine,
        max_connections: int,
        migrations: Path,
        *,
        recheck_seconds: float = 300.0,
        retry_seconds: float = 30.0,
    ) -> None:
        self._engine = engine
        self._script = ScriptDirectory(str(migrations))  # revisions are read on first use
        self._recheck_seconds = recheck_seconds
        self._retry_seconds = retry_seconds
        in_use = Gauge(
            "taskgate_db_pool_connections_in_use",
            "Database connections checked out of the pool right now",
            registry=registry,
        )
        in_use.set_function(self._in_use)
        Gauge(
            "taskgate_db_pool_connections_limit",
            "Most connections the pool opens (DB_POOL_SIZE + DB_MAX_OVERFLOW); beyond it "
            "requests wait up to DB_POOL_TIMEOUT_SECONDS, then get 503",
            registry=registry,
        ).set(max_connections)
        self.migrations_pending = Gauge(
            "taskgate_migrations_pending",
            "Migrations of this code not applied to its database (-1: the database is at a "
            "revision this code does not know; NaN: not checked yet)",
            registry=registry,
        )
        self.migrations_pending.set(math.nan)

    def _in_use(self) -> float:
        pool = self._engine.sync_engine.pool
        return float(pool.checkedout()) if isinstance(pool, QueuePool) else 0.0

    async def check_migrations(self) -> int:
        """Compare the database's Alembic revision with the code's and set the gauge."""
        async with self._engine.connect() as connection:
            pending = await connection.run_sync(pending_migrations, self._script)
        self.migrations_pending.set(pending)
        return pending

    async def watch_migrations(self) -> None:
        """Check at startup, then every few minutes, so a migration applied later (a
        Kubernetes Job finishing after the pods started) clears the alert without a restart."""
        while True:
            try:
                pending = await self.check_migrations()
            except Exception as exc:  # the database may be down: try again soon
                logger.warning("could not compare the schema with the migrations: %r", exc)
                await asyncio.sleep(self._retry_seconds)
                continue
            if pending:
                logger.warning(
                    "the database schema does not match this code's migrations",
                    extra={"migrations_pending": pending},
                )
            await asyncio.sleep(self._recheck_seconds)
