"""The tasks service's app factory: `uvicorn --factory tasks_service.main:create_app`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI

from taskgate_common.database import create_driver_connections, create_engine
from taskgate_common.health import HealthCheck
from taskgate_common.json_logs import configure_logging
from taskgate_common.metrics import new_registry
from taskgate_common.rate_limits import build_limiter
from taskgate_common.service_app import (
    add_routes,
    database_check,
    install_platform,
    new_service_app,
)
from tasks_service.api import PREFIX
from tasks_service.api.routes import board, boards, compat, events, tasks
from tasks_service.api.routes import changes as changes_routes
from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import TokenVerifier
from tasks_service.core.change_listener import ChangeListener
from tasks_service.core.config import Settings
from tasks_service.core.jwks_cache import JwksCache, JwksNotLoaded
from tasks_service.core.revocations import RevocationFollower, RevocationsNotLoaded
from tasks_service.core.write_limits import WriteLimits
from tasks_service.metrics import TasksMetrics
from tasks_service.services import changes

SERVICE = "tasks"
VERSION = version("taskgate-tasks")


def build_context(settings: Settings) -> TasksContext:
    engine = create_engine(settings, application_name="taskgate-tasks")
    registry = new_registry()
    metrics = TasksMetrics(registry)
    jwks = JwksCache(settings, metrics)
    limiter = build_limiter(settings, registry, SERVICE)
    revocations = RevocationFollower(settings, metrics)
    listener = ChangeListener(
        settings.database_url,
        metrics,
        max_streams_per_user=settings.events_max_streams_per_user,
        fallback_poll_seconds=settings.events_fallback_poll_seconds,
    )
    revocations.on_revoked = listener.wake_owners  # a logout ends its streams at once
    return TasksContext(
        settings=settings,
        engine=engine,
        db=create_driver_connections(engine, settings),
        registry=registry,
        metrics=metrics,
        jwks=jwks,
        verifier=TokenVerifier(settings, jwks),
        revocations=revocations,
        listener=listener,
        write_limits=WriteLimits(settings, limiter) if limiter else None,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(SERVICE, settings.log_level)
    ctx = build_context(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Returns at once: the keys and the revocations arrive in the background, auth being
        # down is no reason not to start (liveness answers; readiness reports both).
        await ctx.jwks.start()
        await ctx.revocations.start()
        await ctx.listener.start()
        purges = asyncio.create_task(changes.run_purges(ctx), name="change-log-purge")
        restore_signals = ctx.listener.close_streams_on_signals()
        yield
        restore_signals()
        ctx.listener.close_streams()
        purges.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purges
        await ctx.listener.stop()
        await ctx.revocations.stop()
        await ctx.jwks.stop()
        await ctx.engine.dispose()

    app = new_service_app(
        title="taskgate tasks",
        summary="Per-user tasks for Kanban and todo frontends; JWTs verified locally from the JWKS",
        version=VERSION,
        prefix=PREFIX,
        public_url=settings.auth_issuer,
        docs_enabled=settings.docs_enabled,
        lifespan=lifespan,
    )
    app.state.ctx = ctx

    # `/api/tasks/…` (and the boards') before `/api/{user_id}/tasks/…`: fixed segments win.
    add_routes(
        app,
        tasks.router,
        board.router,
        boards.router,
        changes_routes.router,
        events.router,
        compat.router,
    )

    async def jwks() -> dict[str, Any] | None:
        state = ctx.jwks.state()
        if not state["loaded"]:
            raise JwksNotLoaded("no JWKS fetched from the auth service yet")
        return state

    async def revocations() -> dict[str, Any] | None:
        # Ready once read to its end; afterwards ready whatever auth does (the last state is
        # kept), with the age and failures reported.
        state = ctx.revocations.state()
        if not state["loaded"]:
            raise RevocationsNotLoaded("the revocation feed was never read to its end")
        return state

    def checks() -> dict[str, HealthCheck]:
        return {"database": database_check(ctx.db), "jwks": jwks, "revocations": revocations}

    install_platform(
        app,
        service=SERVICE,
        version=VERSION,
        checks=checks,
        registry=ctx.registry,
        cors_origins=settings.cors_origins,
        cors_setting="TASKS_CORS_ORIGINS",
        expose_headers=["ETag", "Location", "Link", "X-Next-Cursor"],
        rate_limit_headers=ctx.write_limits is not None,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    return app
