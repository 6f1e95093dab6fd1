"""Prometheus `/metrics` at the service root: HTTP metrics plus the service's own counters.

Each app gets its own registry, so an app factory can be called many times (tests) without
"duplicated timeseries" errors, and a scrape shows exactly one service.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info, latency, requests

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


class _BoundedLabels:
    """Passes a request to the metrics with its `handler` one of the app's route templates
    (else "none") and its `method` a standard one (else "other").

    Why: a label value is a new series per metric (a counter and ~15 histogram buckets), and
    both come from the client. The instrumentator names a path that only a trailing-slash
    redirect would have matched by the raw path itself, so `/api/tasks/<anything>/` used to add
    series without authentication; a made-up method did the same. With a closed set, no request
    can grow a scrape. The templates are read once, at the first request, when all routes exist.
    """

    def __init__(self, app: FastAPI, metrics: list[Callable[[Info], None]]) -> None:
        self.app = app
        self.metrics = metrics
        self.handlers: frozenset[str] | None = None

    def __call__(self, info: Info) -> None:
        if self.handlers is None:
            self.handlers = frozenset(
                path
                for route in self.app.routes
                if isinstance(path := getattr(route, "path", None), str)
            )
        if info.modified_handler not in self.handlers:
            info.modified_handler = UNMATCHED_HANDLER
        if info.method not in _METHODS:
            info.method = OTHER_METHOD
        for metric in self.metrics:
            metric(info)


def install_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    """Request counts by handler, method and status, and latency by handler and method.

    Only these two: the instrumentator's default set also measures request and response sizes
    and a second latency histogram, work done on every request that no dashboard here reads.
    Requests that match no route are counted under the one handler "none" (a scan shows as
    404s there), never under their path.
    """
    instrumentator = Instrumentator(
        registry=registry,
        excluded_handlers=["/metrics", "/health.*"],
        should_group_status_codes=False,
        should_ignore_untemplated=False,
        should_group_untemplated=True,
    )
    metrics = [
        requests(registry=registry),
        latency(registry=registry, should_include_status=False),
    ]
    instrumentator.add(_BoundedLabels(app, [metric for metric in metrics if metric is not None]))
    instrumentator.instrument(app).expose(app, include_in_schema=False)
