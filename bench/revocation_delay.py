"""How long a revoked login keeps working at the tasks service: from the 2xx of the revoking
request (logout, logout-all) to the first 401 `token_revoked` from `/api/tasks`, through the
gateway, for an access token the tasks service had verified (and cached) just before.

Run by `make bench`, or alone: `uv run python bench/revocation_delay.py [--repeat 20]`. Starts
the stack as `make dev` does on free ports (or uses BENCH_BASE_URL), prints p50/p99/max per
kind against the target (5 s; TASKS_REVOCATION_POLL_SECONDS decides most of it), and writes
bench/results/revocation_delay.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from bench_stack import RESULTS, machine, running_target, start_stack
from percentiles import percentile

TARGET_SECONDS = 5.0
POLL_PAUSE = 0.005  # between two probes of /api/tasks: the measurement's resolution
GIVE_UP_SECONDS = 60.0


async def _account(client: httpx.AsyncClient) -> tuple[str, str]:
    username = f"bench_rev_{uuid.uuid4().hex[:10]}"
    password = f"bench password {uuid.uuid4().hex[:6]}"
    response = await client.post(
        "/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": password},
    )
    response.raise_for_status()
    return username, password


async def _login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, Any]:
    response = await client.post("/auth/login", json={"username": username, "password": password})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def _until_refused(client: httpx.AsyncClient, access_token: str, since: float) -> float:
    headers = {"Authorization": f"Bearer {access_token}"}
    while True:
        response = await client.get("/api/tasks?limit=1", headers=headers)
        now = time.perf_counter()
        if response.status_code == 401:
            code = response.json().get("code")
            if code != "token_revoked":
                raise RuntimeError(f"refused, but with {code!r}")
            return now - since
        if response.status_code != 200:
            raise RuntimeError(f"/api/tasks answered {response.status_code}: {response.text}")
        if now - since > GIVE_UP_SECONDS:
            raise RuntimeError(f"still accepted {GIVE_UP_SECONDS:.0f} s after the revocation")
        await asyncio.sleep(POLL_PAUSE)


async def _one(client: httpx.AsyncClient, kind: str, username: str, password: str) -> float:
    tokens = await _login(client, username, password)
    access = tokens["access_token"]
    warm = await client.get("/api/tasks?limit=1", headers={"Authorization": f"Bearer {access}"})
    warm.raise_for_status()  # verified and cached at the tasks service before the revocation
    if kind == "logout":
        response = await client.post(
            "/auth/logout", json={"refresh_token": tokens["refresh_token"]}
        )
    else:
        response = await client.post(
            "/auth/logout-all", headers={"Authorization": f"Bearer {access}"}
        )
    response.raise_for_status()
    return await _until_refused(client, access, time.perf_counter())


async def measure(gateway: str, kinds: dict[str, int]) -> dict[str, list[float]]:
    delays: dict[str, list[float]] = {kind: [] for kind in kinds}
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        username, password = await _account(client)
        for kind, repeat in kinds.items():
            for i in range(repeat):
                delays[kind].append(await _one(client, kind, username, password))
                print(f"  {kind} #{i + 1}: {delays[kind][-1]:.3f} s", flush=True)
                # Spread the revocations over the feed's poll cycle instead of locking on it.
                await asyncio.sleep(0.137 * (i % 7))
    return delays


def summarise(samples: list[float]) -> dict[str, float | int]:
    return {
        "runs": len(samples),
        "min_s": round(min(samples), 3),
        "p50_s": round(statistics.median(samples), 3),
        "p99_s": round(percentile(samples, 0.99), 3),
        "max_s": round(max(samples), 3),
        "mean_s": round(statistics.fmean(samples), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/revocation_delay.py")
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REVOKE", 20)))
    args = parser.parse_args()
    kinds = {"logout": args.repeat, "logout-all": max(args.repeat // 4, 1)}
    work = Path(tempfile.mkdtemp(prefix="taskgate-bench-revocation-"))
    base_url = os.environ.get("BENCH_BASE_URL")
    print("starting the stack…" if not base_url else f"using the stack at {base_url}", flush=True)
    target = running_target(base_url) if base_url else start_stack(work / "stack")
    try:
        print("measuring revocation delays (2xx of the revoking request → first 401)…")
        delays = asyncio.run(measure(target.gateway, kinds))
    finally:
        target.close()
    summary = {kind: summarise(samples) for kind, samples in delays.items()}
    worst = max(row["max_s"] for row in summary.values())
    print(f"\n| revocation | runs | p50 s | p99 s | max s | target {TARGET_SECONDS:.0f} s |")
    print("|---|---:|---:|---:|---:|---|")
    for kind, row in summary.items():
        verdict = "met" if row["max_s"] <= TARGET_SECONDS else "MISSED"
        print(
            f"| {kind} | {row['runs']} | {row['p50_s']} | {row['p99_s']} | {row['max_s']} "
            f"| {verdict} |"
        )
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "measured": "2xx of the revoking request to the first 401 token_revoked from "
        "GET /api/tasks through the gateway (token verified and cached before)",
        "poll_seconds": float(os.environ.get("TASKS_REVOCATION_POLL_SECONDS", 1.0)),
        "probe_pause_s": POLL_PAUSE,
        "target_s": TARGET_SECONDS,
        "summary": summary,
        "samples_s": {kind: [round(s, 4) for s in samples] for kind, samples in delays.items()},
    }
    (RESULTS / "revocation_delay.json").write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if worst <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
