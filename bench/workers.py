"""Scaling with cores: one uvicorn process per service, then two, behind the same gateway.

Each service runs as one single-threaded event loop, so one process uses at most one core.
The stack is started twice, with 1 and with 2 processes per service (the launcher's
replicas: separate ports, the gateway balancing over them, the limits shared in Redis), and
wrk drives the list and task creation through the gateway. On a 2-core machine that also
runs wrk, Traefik and PostgreSQL, the ratio says how much a second process buys.
Part of `make bench`; alone: `uv run python bench/workers.py`. Writes
bench/results/workers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_stack import CpuClock, start_stack, write_results
from seed import seed_users, write_records
from wrk_runner import add_load_arguments, run_wrk, wrk_installed

SCENARIOS = (
    ("GET /api/tasks?limit=20", "bearer_get.lua", "/api/tasks?limit=20"),
    ("POST /api/tasks", "create_task.lua", ""),
)


def measure(processes: int, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    target = start_stack(work / f"stack-{processes}", replicas=processes)
    try:
        assert target.stack is not None
        users = asyncio.run(seed_users(target.gateway, 16, 20))
        tokens = write_records(work / "tokens.tsv", [(u.access_token,) for u in users])
        tasks_pids = [
            process.pid for name, process in target.stack.processes.items() if "tasks" in name
        ]
        rows = []
        for scenario, script, path in SCENARIOS:

            def run(seconds: float, script: str = script, path: str = path) -> Any:
                return run_wrk(
                    target.gateway,
                    script,
                    data_file=tokens,
                    path=path,
                    duration=seconds,
                    connections=args.connections,
                    threads=2,
                )

            run(args.warmup)
            clock = CpuClock(*tasks_pids)
            before = clock.read()
            result = run(args.duration)
            rows.append(
                {
                    "processes": processes,
                    "scenario": scenario,
                    "rps": round(result.rps, 1),
                    "p99_ms": result.p99_ms,
                    "errors": result.errors,
                    "tasks_cpu_ms_per_request": clock.ms_per_request(before, result.requests),
                }
            )
            print(f"  {processes} process(es), {scenario}: {result.rps:,.0f} req/s", flush=True)
        return rows
    finally:
        target.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/workers.py")
    add_load_arguments(parser)
    args = parser.parse_args()
    if not wrk_installed():
        return 2
    work = Path(tempfile.mkdtemp(prefix="taskgate-bench-workers-"))
    print("workers: 1 then 2 processes per service…", flush=True)
    rows = measure(1, args, work) + measure(2, args, work)
    print(f"\nProcesses per service ({os.cpu_count()} cores), through the gateway:\n")
    print("| scenario | 1 process req/s | 2 processes req/s | ratio |")
    print("|---|---:|---:|---:|")
    ratios = {}
    for scenario, _, _ in SCENARIOS:
        one, two = (
            next(r for r in rows if r["scenario"] == scenario and r["processes"] == n)
            for n in (1, 2)
        )
        ratios[scenario] = round(two["rps"] / one["rps"], 2)
        print(f"| {scenario} | {one['rps']:,.0f} | {two['rps']:,.0f} | {ratios[scenario]} |")
    write_results("workers", vars(args), rows=rows, ratios=ratios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
