"""The tasks service's app factory: `uvicorn --factory tasks_service.main:create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from taskgate_common.database import (
    create_engine,
    create_read_session_factory,
    create_session_factory,
    ping,
)
from taskgate_common.errors import install_error_handlers
from taskgate_common.health import HealthCheck, health_router
from taskgate_common.json_logs import configure_logging
from taskgate_common.metrics import install_metrics, new_registry
from taskgate_common.rate_limits import RATE_HEADERS, RateLimitHeadersMiddleware, build_limiter
from taskgate_common.request_context import RequestContextMiddleware
from tasks_service.api.routes import board, compat, tasks
from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import TokenVerifier
from tasks_service.core.config import Settings
from tasks_service.core.jwks_cache import JwksCache, JwksNotLoaded
from tasks_service.core.write_limits import WriteLimits
from tasks_service.metrics import TasksMetrics

PREFIX = "/api"
SERVICE = "tasks"
VERSION = version("taskgate-tasks")


def build_context(settings: Settings) -> TasksContext:
    engine = create_engine(settings, application_name="taskgate-tasks")
    registry = new_registry()
    metrics = TasksMetrics(registry)
    jwks = JwksCache(settings, metrics)
    limiter = build_limiter(settings, registry, SERVICE)
    return TasksContext(
        settings=settings,
        engine=engine,
        sessions=create_session_factory(engine),
        read_sessions=create_read_session_factory(engine),
        registry=registry,
        metrics=metrics,
        jwks=jwks,
        verifier=TokenVerifier(settings, jwks),
        write_limits=WriteLimits(settings, limiter) if limiter else None,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(SERVICE, settings.log_level)
    ctx = build_context(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Returns at once: the keys arrive in the background, auth being down is no reason
        # not to start (liveness answers; readiness reports the key cache).
        await ctx.jwks.start()
        yield
        await ctx.jwks.stop()
        await ctx.engine.dispose()

    docs: dict[str, Any] = (
        {
            "docs_url": f"{PREFIX}/docs",
            "redoc_url": f"{PREFIX}/redoc",
            "openapi_url": f"{PREFIX}/openapi.json",
            "swagger_ui_oauth2_redirect_url": f"{PREFIX}/docs/oauth2-redirect",
        }
        if settings.docs_enabled
        else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    )
    app = FastAPI(
        title="taskgate tasks",
        version=VERSION,
        summary="Per-user tasks for Kanban and todo frontends; JWTs verified locally from the JWKS",
        lifespan=lifespan,
        **docs,
    )
    app.state.ctx = ctx
    install_error_handlers(app)

    api = APIRouter(prefix=PREFIX)
    # `/api/tasks/…` before `/api/{user_id}/tasks/…`, so the fixed segment wins.
    api.include_router(tasks.router)
    api.include_router(board.router)
    api.include_router(compat.router)
    app.include_router(api)

    async def database() -> dict[str, Any] | None:
        await ping(ctx.engine)
        return None

    async def jwks() -> dict[str, Any] | None:
        state = ctx.jwks.state()
        if not state["loaded"]:
            raise JwksNotLoaded("no JWKS fetched from the auth service yet")
        return state

    def checks() -> dict[str, HealthCheck]:
        return {"database": database, "jwks": jwks}

    app.include_router(health_router(SERVICE, VERSION, checks))
    install_metrics(app, ctx.registry)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "X-Request-ID"],
            expose_headers=[
                "ETag",
                "Location",
                "Link",
                "X-Next-Cursor",
                "X-Request-ID",
                "Retry-After",
                *RATE_HEADERS,
            ],
        )
    if ctx.write_limits is not None:
        app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware)
    return app
