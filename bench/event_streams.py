"""Live updates under load: how fast a change reaches another connection's event stream, what an
open stream costs, and what an incremental sync with nothing new costs.

- **Event latency**: one user holds a stream (`GET /api/events`) and writes on another
  connection (`POST /api/tasks`); measured from the write's 2xx to its `change` event on the
  stream (negative: the event came first, since NOTIFY is delivered at commit, before the
  answer leaves), and from the write's start. Direct and through the gateway, first with no
  other stream open, then with `--idle` idle streams (100 users, 10 each) held open on the same
  tasks process.
- **Memory per stream**: the tasks process's RSS before and after opening the idle streams.
- **Idle cost**: the tasks process's CPU while only the idle streams' heartbeats run.
- **`GET /api/changes` with nothing new**: CPU ms per request in the tasks process and
  latency, closed loop over `--concurrency` connections, beside `GET /api/tasks?limit=20`;
  and the same with `If-None-Match` (a 304).

Run by `make bench`, or alone: `uv run python bench/event_streams.py [--idle 1000]`. Starts the
stack as `make dev` does on free ports (rate limits lifted, as bench/run.py does), prints a
Markdown table, writes bench/results/event_streams.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))

from bench_stack import RESULTS, Target, machine, start_stack
from percentiles import percentile

STREAMS_PER_USER = 10  # TASKS_EVENTS_MAX_STREAMS_PER_USER's default


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


@dataclass
class Account:
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _account(gateway: httpx.AsyncClient) -> Account:
    username = f"bench_ev_{uuid.uuid4().hex[:10]}"
    password = f"bench password {uuid.uuid4().hex[:6]}"
    registered = await gateway.post(
        "/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": password},
    )
    registered.raise_for_status()
    login = await gateway.post("/auth/login", json={"username": username, "password": password})
    login.raise_for_status()
    return Account(login.json()["access_token"])


async def _accounts(gateway: httpx.AsyncClient, count: int) -> list[Account]:
    gate = asyncio.Semaphore(4)

    async def one() -> Account:
        async with gate:
            return await _account(gateway)

    return list(await asyncio.gather(*(one() for _ in range(count))))


class Listener:
    """One stream, read in the background; records when each entity's first event arrives."""

    def __init__(self, http: httpx.AsyncClient, account: Account) -> None:
        self.http = http
        self.account = account
        self.arrived: dict[str, float] = {}
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listener:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.ready.wait(), timeout=30)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        headers = self.account.headers
        async with self.http.stream("GET", "/api/events", headers=headers) as response:
            response.raise_for_status()
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "ready":
                        self.ready.set()
                elif line.startswith("data: ") and event == "change":
                    entry = json.loads(line[6:])
                    self.arrived.setdefault(entry["id"], time.perf_counter())

    async def wait_for(self, entity_id: str, timeout: float = 10.0) -> float:
        deadline = time.perf_counter() + timeout
        while entity_id not in self.arrived:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no event for {entity_id} within {timeout} s")
            await asyncio.sleep(0.0005)
        return self.arrived[entity_id]


async def measure_latency(base_url: str, account: Account, samples: int) -> dict[str, Any]:
    after_2xx: list[float] = []
    after_start: list[float] = []
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as stream_http,
        httpx.AsyncClient(base_url=base_url, timeout=30) as write_http,
        Listener(stream_http, account) as listener,
    ):
        for n in range(samples + 5):
            started = time.perf_counter()
            created = await write_http.post(
                "/api/tasks", json={"title": f"latency {n}"}, headers=account.headers
            )
            answered = time.perf_counter()
            created.raise_for_status()
            arrived = await listener.wait_for(created.json()["id"])
            if n >= 5:  # the first few warm the connections and prepared statements
                after_2xx.append(arrived - answered)
                after_start.append(arrived - started)
            await asyncio.sleep(0.01)
    return {
        "samples": len(after_2xx),
        "after_2xx_p50_ms": _ms(percentile(after_2xx, 0.5)),
        "after_2xx_p99_ms": _ms(percentile(after_2xx, 0.99)),
        "after_2xx_max_ms": _ms(max(after_2xx)),
        "event_first_share": round(sum(1 for s in after_2xx if s < 0) / len(after_2xx), 3),
        "write_start_to_event_p50_ms": _ms(percentile(after_start, 0.5)),
        "write_start_to_event_p99_ms": _ms(percentile(after_start, 0.99)),
    }


@contextlib.asynccontextmanager
async def idle_streams(base_url: str, accounts: list[Account]) -> AsyncIterator[int]:
    """`STREAMS_PER_USER` raw connections per account, each reading its stream to nowhere."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    connections: list[asyncio.StreamWriter] = []
    drains: list[asyncio.Task[None]] = []

    async def drain(reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    async def open_one(account: Account) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {account.token}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"an idle stream was refused: {head[:200]!r}")
        connections.append(writer)
        drains.append(asyncio.create_task(drain(reader)))

    gate = asyncio.Semaphore(50)

    async def opened(account: Account) -> None:
        async with gate:
            await open_one(account)

    try:
        await asyncio.gather(
            *(opened(account) for account in accounts for _ in range(STREAMS_PER_USER))
        )
        yield len(connections)
    finally:
        for task in drains:
            task.cancel()
        for writer in connections:
            writer.close()
        await asyncio.gather(*drains, return_exceptions=True)


def _cpu_seconds(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


async def closed_loop(
    base_url: str,
    path: str,
    headers: dict[str, str],
    expect: int,
    requests: int,
    concurrency: int,
    tasks_process: psutil.Process | None,
) -> dict[str, Any]:
    latencies: list[float] = []
    left = requests

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            response = await http.get(path, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != expect:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
        for _ in range(50):  # warm up
            await http.get(path, headers=headers)
        cpu_before, wall_before = _cpu_seconds(tasks_process), time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        cpu = _cpu_seconds(tasks_process) - cpu_before
        wall = time.perf_counter() - wall_before
    return {
        "requests": requests,
        "per_second": round(requests / wall),
        "tasks_cpu_ms_per_request": round(cpu * 1000 / requests, 3) if tasks_process else None,
        "p50_ms": _ms(percentile(latencies, 0.5)),
        "p99_ms": _ms(percentile(latencies, 0.99)),
    }


async def measure(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    tasks_process = (
        psutil.Process(target.stack.processes["tasks"].pid) if target.stack is not None else None
    )
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=target.gateway, timeout=60) as gateway:
        print("registering accounts…", flush=True)
        writer = await _account(gateway)
        idle_accounts = await _accounts(gateway, math.ceil(args.idle / STREAMS_PER_USER))
        for n in range(20):
            created = await gateway.post(
                "/api/tasks", json={"title": f"seed {n}"}, headers=writer.headers
            )
            created.raise_for_status()

    print("event latency, no other stream open…", flush=True)
    results["latency_alone"] = {
        "direct": await measure_latency(target.tasks, writer, args.samples),
        "gateway": await measure_latency(target.gateway, writer, args.samples),
    }

    print("GET /api/changes with nothing new…", flush=True)
    async with httpx.AsyncClient(base_url=target.tasks, timeout=30) as direct:
        latest = await direct.get("/api/changes", headers=writer.headers)
        cursor = latest.json()["next_cursor"]
        etag_response = await direct.get(f"/api/changes?since={cursor}", headers=writer.headers)
    loop = {"requests": args.requests, "concurrency": args.concurrency}
    results["changes_nothing_new"] = await closed_loop(
        target.tasks,
        f"/api/changes?since={cursor}",
        writer.headers,
        200,
        tasks_process=tasks_process,
        **loop,
    )
    results["changes_not_modified"] = await closed_loop(
        target.tasks,
        f"/api/changes?since={cursor}",
        {**writer.headers, "If-None-Match": etag_response.headers["ETag"]},
        304,
        tasks_process=tasks_process,
        **loop,
    )
    results["list_20_for_comparison"] = await closed_loop(
        target.tasks,
        "/api/tasks?limit=20",
        writer.headers,
        200,
        tasks_process=tasks_process,
        **loop,
    )

    print(f"opening {args.idle} idle streams…", flush=True)
    rss_before = tasks_process.memory_info().rss if tasks_process else 0
    async with idle_streams(target.tasks, idle_accounts) as opened:
        await asyncio.sleep(2)
        rss_after = tasks_process.memory_info().rss if tasks_process else 0
        results["idle_streams"] = opened
        results["rss_mib_before"] = round(rss_before / 2**20, 1)
        results["rss_mib_with_streams"] = round(rss_after / 2**20, 1)
        results["kib_per_stream"] = round((rss_after - rss_before) / 1024 / max(opened, 1), 1)
        cpu_before = _cpu_seconds(tasks_process)
        await asyncio.sleep(args.idle_seconds)
        results["idle_cpu_percent"] = round(
            (_cpu_seconds(tasks_process) - cpu_before) * 100 / args.idle_seconds, 2
        )
        print(f"event latency with {opened} idle streams open…", flush=True)
        results["latency_with_idle_streams"] = {
            "direct": await measure_latency(target.tasks, writer, args.samples),
            "gateway": await measure_latency(target.gateway, writer, args.samples),
        }
    return results


def print_table(results: dict[str, Any]) -> None:
    print("\n| event latency (write 2xx → event) | route | p50 ms | p99 ms | event first |")
    print("|---|---|---:|---:|---:|")
    for key, label in (
        ("latency_alone", "no other stream"),
        ("latency_with_idle_streams", f"{results['idle_streams']} idle streams"),
    ):
        for route, row in results[key].items():
            print(
                f"| {label} | {route} | {row['after_2xx_p50_ms']} | {row['after_2xx_p99_ms']} "
                f"| {row['event_first_share']:.0%} |"
            )
    print(
        f"\nmemory: {results['kib_per_stream']} KiB per open stream (tasks RSS "
        f"{results['rss_mib_before']} → {results['rss_mib_with_streams']} MiB); "
        f"{results['idle_streams']} idle streams cost {results['idle_cpu_percent']}% of a core"
    )
    print("\n| request | req/s | tasks CPU ms/req | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for key, label in (
        ("changes_nothing_new", "GET /api/changes?since=<latest> (200, empty)"),
        ("changes_not_modified", "same, If-None-Match (304)"),
        ("list_20_for_comparison", "GET /api/tasks?limit=20"),
    ):
        row = results[key]
        print(
            f"| {label} | {row['per_second']} | {row['tasks_cpu_ms_per_request']} "
            f"| {row['p50_ms']} | {row['p99_ms']} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/event_streams.py")
    parser.add_argument("--idle", type=int, default=int(os.environ.get("BENCH_IDLE_STREAMS", 1000)))
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    # A socket per stream on both sides: the stack's processes inherit this limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="taskgate-bench-events-"))
    print("starting the stack…", flush=True)
    target = start_stack(work / "stack")
    try:
        results = asyncio.run(measure(target, args))
    finally:
        target.close()
    print_table(results)
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": vars(args),
        **results,
    }
    (RESULTS / "event_streams.json").write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
