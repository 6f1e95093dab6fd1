"""What every taskgate service app has around its own routes, built the same way in each.

The FastAPI app with its docs (Swagger UI served locally, the public OpenAPI document shaped for
code generators) under the service's prefix and the design's error handlers; then the
platform parts: request size limits (innermost, so their refusals are counted, logged and carry
CORS headers), health and metrics at the root, CORS, rate-limit headers, and request IDs
(added last, so outermost).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry

from taskgate_common.api_docs import docs_router
from taskgate_common.cors import BrowserCors
from taskgate_common.database import DriverConnections
from taskgate_common.errors import install_error_handlers
from taskgate_common.graceful_shutdown import install_graceful_shutdown
from taskgate_common.health import HealthCheck, health_router
from taskgate_common.metrics import install_metrics
from taskgate_common.openapi_document import install_public_document, operation_id, server_url
from taskgate_common.rate_limits import RateLimitHeadersMiddleware
from taskgate_common.request_context import RequestContextMiddleware
from taskgate_common.request_limits import RequestLimitsMiddleware
from taskgate_common.tracing import install_tracing


def new_service_app(
    *,
    title: str,
    summary: str,
    version: str,
    prefix: str,
    public_url: str,
    docs_enabled: bool,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> FastAPI:
    """`public_url`: a URL under the gateway (the issuer), whose origin the document names as
    its server, so that Swagger UI and generated clients call the gateway."""

    @asynccontextmanager
    async def lifespan_then_settle(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            settle_startup_heap()
            yield

    # No trailing-slash redirects: Starlette builds their `Location` from the request's `Host`
    # (an open redirect on an exposed port), and the metrics would name each redirected path.
    # `/api/tasks/` is a 404 like any other unknown path; the documented URLs have no slash.
    # FastAPI's own docs pages are off: they load Swagger UI from a CDN (api_docs.py).
    app = FastAPI(
        title=title,
        version=version,
        summary=summary,
        lifespan=lifespan_then_settle,
        redirect_slashes=False,
        openapi_url=f"{prefix}/openapi.json" if docs_enabled else None,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    if docs_enabled:
        install_public_document(app, server_url(public_url))
        add_routes(app, docs_router(prefix, title))
    return app


_heap_settled = False


def settle_startup_heap() -> None:
    """Hide everything allocated before serving from the garbage collector, once per process.

    Why: a full collection walks every tracked object, about 120,000 after startup (FastAPI,
    Pydantic, SQLAlchemy), and stalls the event loop for 50-100 ms: that was most of the list's
    p99. Frozen objects are never scanned again; what requests allocate is collected as before.
    Once per process, so test runs that build many apps do not pin each of them in memory.
    """
    global _heap_settled
    if _heap_settled:
        return
    _heap_settled = True
    gc.collect()
    gc.freeze()


def add_routes(app: FastAPI, *routers: APIRouter) -> None:
    """Register the routers' routes on the app itself, in order (routers carry full prefixes).

    Why not `include_router`: since FastAPI 0.116 an included router stays a lazy node that is
    re-validated on every request and walked again by the metrics middleware to name the
    handler, about 0.1 ms of a 0.6 ms request here; flat routes are matched directly.

    The routes' operationIds are named here too (`openapi_document.operation_id`): FastAPI
    names them when a router is built, with the router's default, unreadable scheme.
    """
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.operation_id is None:
                route.operation_id = operation_id(route)
        app.router.routes.extend(router.routes)


def database_check(db: DriverConnections) -> HealthCheck:
    async def database() -> dict[str, Any] | None:
        await db.ping()
        return None

    return database


def install_platform(
    app: FastAPI,
    *,
    service: str,
    version: str,
    checks: Callable[[], dict[str, HealthCheck]],
    registry: CollectorRegistry,
    cors_origins: Sequence[str],
    cors_setting: str,
    expose_headers: Sequence[str],
    rate_limit_headers: bool,
    max_body_bytes: int,
    max_header_bytes: int,
) -> None:
    """Call after the service's own routes are included."""
    drain = install_graceful_shutdown(app, service)  # SIGTERM: readiness 503, drain, then stop
    add_routes(app, health_router(service, version, checks, drain.is_draining))
    app.add_middleware(
        RequestLimitsMiddleware, max_body_bytes=max_body_bytes, max_header_bytes=max_header_bytes
    )
    http_metrics = install_metrics(app, registry)
    # Installed with no origins too, so that a preflight from any page is refused clearly
    # (403 `origin_not_allowed`) rather than answered 405 by the router.
    app.add_middleware(
        BrowserCors,
        origins=cors_origins,
        origins_setting=cors_setting,
        expose_headers=expose_headers,
    )
    if rate_limit_headers:
        app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware, metrics=http_metrics)
    # Only with an OTLP endpoint configured; its span then wraps all of the above, so the
    # access-log line carries the request's trace and span IDs.
    install_tracing(app, service=service, version=version)
