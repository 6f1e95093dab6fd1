"""Soak: mixed load through the real gateway for a long while, with database restarts.

`make soak` (not `make test`): SOAK_CLIENTS clients over SOAK_USERS users, each client from its
own address with its own session, create, patch (If-Match), move, delete, list and read the
board, refresh their session and log in again, for SOAK_SECONDS (default 600). At a third of
the run the tasks database is restarted, at two thirds the auth database. At the end:

- per user, the stored tasks are exactly what the acknowledged operations add up to (an answer
  that never came, or a 502/503 from the app, may have been applied or not: either is fine);
- no task of another user was ever listed, and another user's task is a 404;
- no 5xx but 503s during an outage (from its start to GRACE seconds after the restart);
- the RSS of the gateway and of each service levels off (printed: start, settled, end, peak).

The clients and their bookkeeping are in `taskgate_devstack.soak`. Figures are printed before
the checks fail, if they do (docs/reliability.md records a run).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter

import psutil
import pytest
from e2e_support import new_account
from reliability_support import all_tasks, own_ip_client

from taskgate_devstack.soak import GRACE, Account, Client, Ledger, Outage, SoakUser, check_state
from taskgate_devstack.stack import DevStack

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
USERS = int(os.environ.get("SOAK_USERS", "8"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "32"))
OUTAGE_SECONDS = float(os.environ.get("SOAK_OUTAGE_SECONDS", "3"))
PAUSE = float(os.environ.get("SOAK_PAUSE", "0.02"))  # between a client's requests
MIB = 1024 * 1024


async def restart_databases(stack: DevStack, ledger: Ledger, started: float) -> None:
    """The tasks database at a third of the run, the auth database at two thirds."""
    for fraction, database in ((1 / 3, "tasks"), (2 / 3, "auth")):
        await asyncio.sleep(max(0.0, started + SECONDS * fraction - time.monotonic()))
        outage = Outage(database, time.monotonic())
        ledger.outages.append(outage)
        server = stack.postgres[database]
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(server.start)
        outage.end = time.monotonic()


async def sample_rss(
    stack: DevStack, samples: dict[str, list[tuple[float, int]]], deadline: float
) -> None:
    processes = {name: psutil.Process(stack.processes[name].pid) for name in samples}
    while time.monotonic() < deadline:
        for name, process in processes.items():
            samples[name].append((time.monotonic(), process.memory_info().rss))
        await asyncio.sleep(5.0)


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else 0.0


def rss_report(
    samples: dict[str, list[tuple[float, int]]], started: float
) -> tuple[list[str], list[str]]:
    """Per process: start, settled (peak in 20-50 % of the run), end, peak; the end may exceed
    the settled level by at most 25 % + 32 MiB (growth without bound would not). Returns the
    lines to print and the processes that grew too much."""
    lines, grew = [], []
    for name, points in samples.items():

        def peak(lo: float, hi: float, pts: list[tuple[float, int]] = points) -> int:
            inside = [rss for t, rss in pts if lo <= (t - started) / SECONDS <= hi]
            return max(inside or [rss for _, rss in pts])

        settled, end = peak(0.2, 0.5), peak(0.8, 1.0)
        lines.append(
            f"  {name:<8} RSS start {points[0][1] / MIB:6.1f} MiB, settled {settled / MIB:6.1f}, "
            f"end {points[-1][1] / MIB:6.1f}, peak {peak(0, 1) / MIB:6.1f}"
        )
        if end > settled * 1.25 + 32 * MIB:
            grew.append(lines[-1])
    return lines, grew


async def new_user(gateway_url: str) -> SoakUser:
    async with own_ip_client(gateway_url) as client:  # the edge limits credential calls per IP
        account = await new_account(client)
    return SoakUser(
        Account(account.user_id, account.username, account.password, account.access_token)
    )


async def check_final_state(gateway_url: str, users: list[SoakUser]) -> Counter[str]:
    """Per user, the state adds up (`check_state`); nobody sees anybody else's tasks."""
    figures: Counter[str] = Counter()
    seen: set[str] = set()
    async with own_ip_client(gateway_url, timeout=60.0) as http:
        for i, user in enumerate(users):
            stored = await all_tasks(http, user.account.headers)
            figures += check_state(user, stored)
            ids = {task["id"] for task in stored}
            assert not ids & seen, "a task listed for two users"
            seen |= ids
            other = users[(i + 1) % len(users)].account
            for task_id in sorted(ids)[:10]:
                response = await http.get(f"/api/tasks/{task_id}", headers=other.headers)
                assert response.status_code == 404, response.text
    return figures


def report(ledger: Ledger, elapsed: float, started: float) -> list[str]:
    total = sum(ledger.ops.values())
    lines = [
        f"\nsoak: {elapsed:.0f} s, {CLIENTS} clients, {USERS} users: {total} requests "
        f"({total / elapsed:.0f}/s), 5xx {len(ledger.server_errors)} "
        f"({dict(Counter((s, c) for _, s, c in ledger.server_errors))}), "
        f"no answer {len(ledger.transport_errors)}",
        f"  answers: {dict(sorted(ledger.ops.items()))}",
    ]
    for op, values in sorted(ledger.latencies.items()):
        lines.append(
            f"  {op:<10} n={len(values):6d} p50 {percentile(values, 50) * 1000:7.1f} ms "
            f"p99 {percentile(values, 99) * 1000:7.1f} ms"
        )
    for outage in ledger.outages:
        op = "create" if outage.database == "tasks" else "login"
        errors = [e for e in ledger.server_errors if outage.start <= e[0] <= outage.end + GRACE]
        first_ok = min((t for t in ledger.ok_at[op] if t > outage.end), default=float("nan"))
        lines.append(
            f"  {outage.database} database down {outage.end - outage.start:.1f} s at "
            f"{outage.start - started:.0f} s: 5xx {dict(Counter((s, c) for _, s, c in errors))}"
            f"; first {op} ok {first_ok - outage.end:.2f} s after the restart"
        )
    return lines


@pytest.mark.timeout(SECONDS + 900)
async def test_soak(stack: DevStack, gateway_url: str) -> None:
    users = [await new_user(gateway_url) for _ in range(USERS)]
    ledger = Ledger()
    samples: dict[str, list[tuple[float, int]]] = {n: [] for n in ("gateway", "auth", "tasks")}
    http_clients = [own_ip_client(gateway_url, timeout=30.0) for _ in range(CLIENTS)]
    clients = [
        Client(n, users[n % USERS], ledger, http, PAUSE) for n, http in enumerate(http_clients)
    ]
    started = time.monotonic()
    try:
        async with asyncio.timeout(SECONDS + 300):
            await asyncio.gather(
                *(client.run(started + SECONDS) for client in clients),
                restart_databases(stack, ledger, started),
                sample_rss(stack, samples, started + SECONDS),
            )
    finally:
        for http in http_clients:
            await http.aclose()
    elapsed = time.monotonic() - started
    lines = report(ledger, elapsed, started)
    rss_lines, grew = rss_report(samples, started)
    print("\n".join(lines + rss_lines))
    outside = [e for e in ledger.server_errors if e[1] != 503 or not ledger.in_outage(e[0])]
    lost = [e for e in ledger.transport_errors if not ledger.in_outage(e[0])]
    figures = await check_final_state(gateway_url, users)
    print(f"  state: {dict(figures)}")
    assert ledger.unexpected == [], ledger.unexpected[:20]
    assert outside == [], [(round(t - started, 1), s, c) for t, s, c in outside[:20]]
    assert lost == [], [(round(t - started, 1), what) for t, what in lost[:20]]
    assert grew == [], grew
