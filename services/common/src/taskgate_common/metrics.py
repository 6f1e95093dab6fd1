"""Prometheus `/metrics` at the service root: HTTP metrics plus the service's own counters.

Each app gets its own registry, so an app factory can be called many times (tests) without
"duplicated timeseries" errors, and a scrape shows exactly one service.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import latency, requests


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def install_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    """Request counts by handler, method and status, and latency by handler and method.

    Only these two: the instrumentator's default set also measures request and response sizes
    and a second latency histogram, work done on every request that no dashboard here reads.
    """
    instrumentator = Instrumentator(
        registry=registry,
        excluded_handlers=["/metrics", "/health.*"],
        should_group_status_codes=False,
        should_ignore_untemplated=True,
    )
    instrumentator.add(requests(registry=registry))
    instrumentator.add(latency(registry=registry, should_include_status=False))
    instrumentator.instrument(app).expose(app, include_in_schema=False)
