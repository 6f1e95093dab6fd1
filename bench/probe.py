"""A paced probe: what an orchestrator's health check sees while the service is under load.

wrk would flood the endpoint and steal the cores the measured load needs; this sends a fixed
rate of requests and records each one's latency.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import httpx


@dataclass
class ProbeResult:
    requests: int
    failures: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def probe(url: str, duration: float, rate: float = 20.0) -> ProbeResult:
    latencies: list[float] = []
    failures = 0
    interval = 1.0 / rate
    deadline = time.monotonic() + duration
    next_at = time.monotonic()
    with httpx.Client(timeout=5.0) as client:
        while (now := time.monotonic()) < deadline:
            if now < next_at:
                time.sleep(next_at - now)
            next_at += interval
            started = time.perf_counter()
            try:
                ok = client.get(url).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not ok
    latencies.sort()
    return ProbeResult(
        requests=len(latencies),
        failures=failures,
        p50_ms=round(statistics.median(latencies), 2),
        p99_ms=round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 2),
        max_ms=round(latencies[-1], 2),
    )
