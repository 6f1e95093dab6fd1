"""`make bench`'s open-loop rows: the list and the three writes at a fixed arrival rate of 50 %
and 80 % of the maximum the closed-loop run measured for the same route, with p50/p99/p99.9
measured from each request's due time (bench/open_loop.py). Target: p99 ≤ 25 ms at 50 %."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from open_loop import OpenLoopResult, Request, http_request, run_open_loop

TARGET_P99_MS = 25.0
SHARES = (0.5, 0.8)
# The closed-loop scenario each open-loop one takes its maximum from (report rows).
SCENARIOS = (
    "GET /api/tasks?limit=20",
    "POST /api/tasks",
    "PATCH /api/tasks/{id} (If-Match)",
    "POST /api/tasks/{id}/move",
)


@dataclass
class OpenLoopRow:
    scenario: str
    route: str
    share: float
    result: OpenLoopResult

    def verdict(self) -> str:
        if self.share != 0.5:
            return ""
        met = self.result.p99_ms <= TARGET_P99_MS and self.result.errors == 0
        return "met" if met else "MISSED"

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "route": self.route,
            "share": self.share,
            **asdict(self.result),
        }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def requests_for(
    scenario: str, base: str, tokens: list[str], tasks: list[tuple[str, str, int]]
) -> Any:
    """A function making the scenario's next request (and, for PATCH, keeping each task's
    version current from the answers, as bench/lua/patch_task.lua does)."""
    if scenario.startswith("GET"):
        prebuilt = [
            (http_request("GET", f"{base}/api/tasks?limit=20", _bearer(t)), None) for t in tokens
        ]
        cycle = itertools.cycle(prebuilt)
        return lambda: next(cycle)
    json_type = {"Content-Type": "application/json"}
    if scenario == "POST /api/tasks":
        numbers = itertools.count()
        token_cycle = itertools.cycle(tokens)

        def create() -> Request:
            body = json.dumps({"title": f"open loop {next(numbers)}"}).encode()
            headers = {**_bearer(next(token_cycle)), **json_type}
            return http_request("POST", f"{base}/api/tasks", headers, body), None

        return create
    if scenario.startswith("POST /api/tasks/{id}/move"):
        statuses = itertools.cycle(["todo", "in_progress", "done"])
        records = itertools.cycle(tasks)

        def move() -> Request:
            token, task_id, _ = next(records)
            body = json.dumps({"status": next(statuses)}).encode()
            headers = {**_bearer(token), **json_type}
            return http_request("POST", f"{base}/api/tasks/{task_id}/move", headers, body), None

        return move
    # PATCH with If-Match: a task is never in flight twice, and its version follows the answers.
    ready: deque[list[Any]] = deque([list(record) for record in tasks])
    numbers = itertools.count()

    def patch() -> Request:
        record: list[Any] = ready.popleft() if ready else list(tasks[next(numbers) % len(tasks)])
        token, task_id, version = record
        body = json.dumps({"description": f"edit {next(numbers)}"}).encode()
        headers = {**_bearer(token), **json_type, "If-Match": f'"{version}"'}

        def answered(status: int, answer: bytes) -> None:
            if status == 200:
                record[2] = json.loads(answer)["version"]
                ready.append(record)

        return http_request("PATCH", f"{base}/api/tasks/{task_id}", headers, body), answered

    return patch


def run_rows(
    maximums: dict[tuple[str, str], float],
    bases: dict[str, str],
    tokens: list[str],
    current_tasks: Callable[[], list[tuple[str, str, int]]],
    seconds: float,
) -> list[OpenLoopRow]:
    """`current_tasks()` is read before each run: the runs before it changed the versions."""
    rows = []
    for scenario in SCENARIOS:
        for route, base in bases.items():
            maximum = maximums.get((scenario, route))
            if not maximum:
                continue
            for share in SHARES:
                make = requests_for(scenario, base, tokens, current_tasks())
                result = asyncio.run(run_open_loop(base, make, maximum * share, seconds))
                rows.append(OpenLoopRow(scenario, route, share, result))
    return rows


def print_rows(rows: list[OpenLoopRow]) -> None:
    print(
        "\n| open loop | route | load | rate/s | answered/s | p50 ms | p99 ms | p99.9 ms "
        f"| errors | p99 ≤ {TARGET_P99_MS:.0f} ms at 50 % |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        r = row.result
        errors = str(r.errors)
        if r.error_statuses:
            errors += " (" + ", ".join(f"{k}: {v}" for k, v in r.error_statuses.items()) + ")"
        print(
            f"| {row.scenario} | {row.route} | {row.share:.0%} | {r.rate:,.0f} "
            f"| {r.achieved_rate:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.p999_ms:.1f} "
            f"| {errors} | {row.verdict()} |"
        )
