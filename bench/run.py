"""`make bench`: start the stack as `make dev` does (or use BENCH_BASE_URL), seed it, drive
every hot path with wrk directly and through the gateway, and report the figures.

Writes a Markdown table to stdout and the full figures to bench/results/latest.json (with
`--limits off`: latest_limits_off.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))

from bench_stack import RESULTS, CpuClock, Target, machine, running_target, start_stack
from crypto_costs import hash_bound, service_argon2
from open_loop_scenarios import OpenLoopRow
from open_loop_scenarios import print_rows as print_open_loop_rows
from open_loop_scenarios import run_rows as run_open_loop_rows
from probe import probe
from report import Report, Row, print_report, summarise
from seed import (
    BenchUser,
    current_tasks,
    fresh_refresh_tokens,
    seed_users,
    write_records,
)
from wrk_runner import WrkResult, add_load_arguments, run_wrk, wrk_installed

from taskgate_devstack.postgres import free_port
from taskgate_devstack.processes import spawn, terminate
from taskgate_devstack.stack import REPO_ROOT


def _start_reference(target: Target, log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "REF_DATABASE_URL": target.tasks_database,
        "REF_JWKS_URL": f"{target.auth}/auth/.well-known/jwks.json",
        "REF_ISSUER": target.issuer,
    }
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(__file__).parent),
        "reference_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = spawn(args, env, log_dir / "reference.log", REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    terminate(process)
    raise RuntimeError("the reference app did not start; see its log")


def _rss_mb(target: Target) -> dict[str, float]:
    if target.stack is None:
        return {}
    return {
        name: round(psutil.Process(process.pid).memory_info().rss / 2**20, 1)
        for name, process in target.stack.processes.items()
        if name in ("auth", "tasks")
    }


def _startup_seconds(target: Target) -> dict[str, float]:
    """Process start to /health/ready answering 200, per service."""
    if target.stack is None:
        return {}
    timings = {}
    for name in ("auth", "tasks"):
        target.stack.stop_service(name)
        started = time.perf_counter()
        target.stack.start_service(name)
        timings[name] = round(time.perf_counter() - started, 2)
    return timings


def _hash_ms() -> float:
    """One Argon2id verification with the auth service's default parameters."""
    hasher = service_argon2()
    stored = hasher.hash("bench password")
    samples = []
    for _ in range(10):
        started = time.perf_counter()
        hasher.verify("bench password", stored)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


class Bench:
    def __init__(self, target: Target, args: argparse.Namespace, work: Path) -> None:
        self.target = target
        self.args = args
        self.work = work
        self.users: list[BenchUser] = []
        self.report_rows: list[Row] = []
        self.pids: dict[str, int] = (
            {name: process.pid for name, process in target.stack.processes.items()}
            if target.stack is not None
            else {}
        )
        # Each service's PostgreSQL (the reference app reads the tasks database).
        self.database_pids = {
            name: target.postgres_pid(database)
            for name, database in (("auth", "auth"), ("tasks", "tasks"), ("reference", "tasks"))
        }

    def row(
        self,
        scenario: str,
        route: str,
        serving: str,
        url: str,
        script: str,
        data: Path | Callable[[], Path] | None = None,
        path: str = "",
    ) -> Row:
        """Warm up, then measure, with the CPU time `serving` (and the gateway) spent.

        A callable `data` is called before each run (fresh state).
        """

        def run(duration: float) -> WrkResult:
            data_file = data() if callable(data) else data
            return run_wrk(
                url,
                script,
                data_file=data_file,
                path=path,
                duration=duration,
                connections=self.args.connections,
                threads=self.args.threads,
            )

        if self.args.warmup > 0 and script not in ("refresh.lua", "login.lua"):
            run(self.args.warmup)
        service = CpuClock(self.pids.get(serving))
        gateway = CpuClock(self.pids.get("gateway") if route == "gateway" else None)
        database = CpuClock(self.database_pids.get(serving), tree=True)
        before = service.read(), gateway.read(), database.read()
        result = run(self.args.duration)
        return Row(
            scenario,
            route,
            result,
            cpu_ms_per_request=service.ms_per_request(before[0], result.requests),
            gateway_cpu_ms_per_request=gateway.ms_per_request(before[1], result.requests),
            database_cpu_ms_per_request=database.ms_per_request(before[2], result.requests),
        )

    def tokens_file(self) -> Path:
        return write_records(self.work / "tokens.tsv", [(u.access_token,) for u in self.users])

    def routes(self, service: str) -> list[tuple[str, str]]:
        direct = self.target.tasks if service == "tasks" else self.target.auth
        return [("direct", direct), ("gateway", self.target.gateway)]

    def read_scenarios(self, report: Report) -> None:
        tokens = self.tokens_file()
        for path in ("/api/tasks?limit=20", "/api/board"):
            for route, base in self.routes("tasks"):
                report.rows.append(
                    self.row(f"GET {path}", route, "tasks", base, "bearer_get.lua", tokens, path)
                )
        for route, base in self.routes("auth"):
            url = f"{base}/auth/.well-known/jwks.json"
            report.rows.append(
                self.row("GET /auth/.well-known/jwks.json", route, "auth", url, "plain_get.lua")
            )

    def write_scenarios(self, report: Report) -> None:
        tokens = self.tokens_file()

        def data() -> Path:
            records = asyncio.run(current_tasks(self.target.tasks, self.users))
            return write_records(self.work / "tasks.tsv", list(records))

        for route, base in self.routes("tasks"):
            rows = [
                self.row("POST /api/tasks", route, "tasks", base, "create_task.lua", tokens),
                self.row(
                    "PATCH /api/tasks/{id} (If-Match)", route, "tasks", base, "patch_task.lua", data
                ),
                self.row("POST /api/tasks/{id}/move", route, "tasks", base, "move_task.lua", data),
            ]
            report.rows.extend(rows)

    def open_loop_scenarios(self) -> list[OpenLoopRow]:
        """The list and the writes at 50 % and 80 % of the maximum just measured, open loop."""
        maximums = {(row.scenario, row.route): row.result.rps for row in self.report_rows}
        bases = dict(self.routes("tasks"))
        tokens = [user.access_token for user in self.users]

        def tasks_now() -> list[tuple[str, str, int]]:
            return asyncio.run(current_tasks(self.target.tasks, self.users))

        return run_open_loop_rows(maximums, bases, tokens, tasks_now, self.args.open_seconds)

    def refresh_scenario(self, report: Report) -> None:
        for route, base in self.routes("auth"):
            tokens = asyncio.run(
                fresh_refresh_tokens(self.target.auth, self.users, self.args.connections * 2)
            )
            data = write_records(self.work / "refresh.tsv", [(t,) for t in tokens])
            report.rows.append(
                self.row("POST /auth/refresh", route, "auth", base, "refresh.lua", data)
            )

    def login_scenario(self, report: Report) -> None:
        credentials = write_records(
            self.work / "logins.tsv", [(u.username, u.password) for u in self.users]
        )
        # The bound, measured in the same run just before: N threads verifying in parallel.
        report.extra["login_hash_bound"] = hash_bound(self.args.duration / 2)
        for route, base in self.routes("auth"):
            with ThreadPoolExecutor(max_workers=2) as pool:
                login = pool.submit(
                    self.row, "POST /auth/login", route, "auth", base, "login.lua", credentials
                )
                health = pool.submit(
                    probe, f"{self.target.auth}/health/live", self.args.duration, 20.0
                )
                report.rows.append(login.result())
                result = health.result()
                report.extra[f"health_live_during_login_{route}"] = asdict(result)

    def reference(self, report: Report) -> None:
        process, url = _start_reference(self.target, self.work)
        self.pids["reference"] = process.pid
        try:
            report.rows.append(
                self.row(
                    "reference: bare ASGI + PyJWT + asyncpg",
                    "direct",
                    "reference",
                    url,
                    "bearer_get.lua",
                    self.tokens_file(),
                    "/api/tasks?limit=20",
                )
            )
        finally:
            terminate(process)


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    add_load_arguments(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--limits",
        choices=["on", "off"],
        default=os.environ.get("BENCH_LIMITS", "on"),
        help="on: production defaults, in Redis, thresholds raised; off: app limits off",
    )
    parser.add_argument(
        "--open-seconds", type=float, default=float(os.environ.get("BENCH_OPEN_SECONDS", 10))
    )
    parser.add_argument("--users", type=int, default=int(os.environ.get("BENCH_USERS", 16)))
    parser.add_argument("--tasks", type=int, default=int(os.environ.get("BENCH_TASKS", 50)))
    args = parser.parse_args()
    if not wrk_installed():
        return 2

    work = Path(tempfile.mkdtemp(prefix="taskgate-bench-"))
    base_url = os.environ.get("BENCH_BASE_URL")
    print("starting the stack…" if not base_url else f"using the stack at {base_url}", flush=True)
    target = running_target(base_url) if base_url else start_stack(work / "stack", args.limits)
    report = Report(machine=machine(), settings=vars(args))
    try:
        report.extra["rss_idle_mb"] = _rss_mb(target)
        report.extra["argon2id_verify_ms"] = round(_hash_ms(), 1)
        print(f"seeding {args.users} users x {args.tasks} tasks…", flush=True)
        bench = Bench(target, args, work)
        bench.users = asyncio.run(seed_users(target.gateway, args.users, args.tasks))
        print("running scenarios…", flush=True)
        bench.reference(report)
        bench.read_scenarios(report)
        report.extra["rss_loaded_mb"] = _rss_mb(target)
        bench.write_scenarios(report)
        bench.report_rows = report.rows
        print("open-loop runs (50 % and 80 % of each maximum)…", flush=True)
        open_rows = bench.open_loop_scenarios()
        bench.refresh_scenario(report)
        bench.login_scenario(report)
        report.extra["startup_to_ready_s"] = _startup_seconds(target)
    finally:
        target.close()
    summarise(report)
    print_report(report)
    print_open_loop_rows(open_rows)
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine,
        "settings": report.settings,
        "rows": [
            {
                "scenario": r.scenario,
                "route": r.route,
                "rps": round(r.result.rps, 1),
                **asdict(r.result),
                "cpu_ms_per_request": r.cpu_ms_per_request,
                "gateway_cpu_ms_per_request": r.gateway_cpu_ms_per_request,
                "database_cpu_ms_per_request": r.database_cpu_ms_per_request,
            }
            for r in report.rows
        ],
        "open_loop": [row.as_dict() for row in open_rows],
        "summary": report.extra,
    }
    name = "latest.json" if args.limits == "on" else "latest_limits_off.json"
    (RESULTS / name).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
