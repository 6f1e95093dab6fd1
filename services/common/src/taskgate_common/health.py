"""`/health/live`, `/health/ready` and `/health`, at the service root (not behind the gateway).

Liveness never touches a dependency, so an orchestrator does not restart a healthy process
because its database blinked; readiness runs every check and names the one that failed. While
the process drains before a graceful shutdown (graceful_shutdown.py), readiness fails with the
code `shutting_down`, so that the balancer takes the replica out; liveness stays 200.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

logger = logging.getLogger("taskgate.health")

# A check returns extra details on success and raises on failure.
HealthCheck = Callable[[], Awaitable[dict[str, Any] | None]]


class CheckResult(BaseModel):
    status: Literal["ok", "fail"]
    duration_ms: float
    error: str | None = None
    details: dict[str, Any] | None = None


class HealthReport(BaseModel):
    status: Literal["ok", "fail"]
    service: str
    version: str
    uptime_seconds: float | None = None
    checks: dict[str, CheckResult]


class LiveReport(BaseModel):
    status: Literal["ok"]


async def _run(check: HealthCheck, timeout: float) -> CheckResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            details = await check()
    except Exception as exc:  # a failing check is a report, not a crash
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        message = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        logger.warning("health check failed", extra={"error": message})
        return CheckResult(status="fail", duration_ms=elapsed, error=message)
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    return CheckResult(status="ok", duration_ms=elapsed, details=details or None)


def _shutting_down() -> CheckResult:
    return CheckResult(status="fail", duration_ms=0.0, error="draining before shutdown")


def health_router(
    service: str,
    version: str,
    checks: Callable[[], dict[str, HealthCheck]],
    draining: Callable[[], bool] = lambda: False,
    timeout: float = 3.0,
) -> APIRouter:
    """Routes for the three health endpoints; `checks` is read per request (app state);
    `draining` true adds a failing `shutdown` check (the replica is about to stop).

    Left out of the public OpenAPI document: the gateway does not route them, so "Try it out"
    could only fail; they are documented for operators in docs/operations.md."""
    router = APIRouter(tags=["health"], include_in_schema=False)
    started = time.monotonic()

    async def report() -> HealthReport:
        named = checks()
        results = await asyncio.gather(*(_run(check, timeout) for check in named.values()))
        by_name = dict(zip(named, results, strict=True))
        if draining():
            by_name["shutdown"] = _shutting_down()
        ok = all(result.status == "ok" for result in by_name.values())
        return HealthReport(
            status="ok" if ok else "fail",
            service=service,
            version=version,
            uptime_seconds=round(time.monotonic() - started, 1),
            checks=by_name,
        )

    @router.get("/health/live", summary="Liveness: the process answers", response_model=LiveReport)
    async def live() -> LiveReport:
        return LiveReport(status="ok")

    @router.get(
        "/health/ready",
        summary="Readiness: every dependency answers",
        response_model=HealthReport,
        responses={503: {"model": HealthReport, "description": "A check failed"}},
    )
    async def ready() -> JSONResponse:
        result = await report()
        body = result.model_dump(exclude={"uptime_seconds"})
        if "shutdown" in result.checks:
            body["detail"] = "Not ready: shutting down (finishing the requests in flight)"
            body["code"] = "shutting_down"
        elif result.status != "ok":
            failed = [name for name, check in result.checks.items() if check.status != "ok"]
            body["detail"] = f"Not ready: {', '.join(failed)} failed"
            body["code"] = "not_ready"
        return JSONResponse(body, status_code=200 if result.status == "ok" else 503)

    @router.get(
        "/health",
        summary="Health summary with version and checks",
        response_model=HealthReport,
        responses={503: {"model": HealthReport, "description": "A check failed"}},
    )
    async def summary() -> JSONResponse:
        result = await report()
        body = result.model_dump()
        return JSONResponse(body, status_code=200 if result.status == "ok" else 503)

    return router
