"""Prometheus `/metrics` at the service root: HTTP metrics plus the service's own counters.

Each app gets its own registry, so an app factory can be called many times (tests) without
"duplicated timeseries" errors, and a scrape shows exactly one service.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def install_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    Instrumentator(
        registry=registry,
        excluded_handlers=["/metrics", "/health.*"],
        should_group_status_codes=False,
        should_ignore_untemplated=True,
    ).instrument(app).expose(app, include_in_schema=False)
