"""The stack the bench scripts measure, and the CPU clocks they read: one place for both.

`start_stack` runs the stack as `make dev` does, on free ports, with the limits as deployed
(every app limit counted in a Redis of its own, thresholds raised so that a few bench accounts
on one address measure the paths, not their buckets) or off. `CpuClock` reads the CPU time a
process, and optionally every process under it (PostgreSQL's backends), has used.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from taskgate_devstack.postgres import free_port
from taskgate_devstack.redis import RedisServer, redis_binary
from taskgate_devstack.stack import DevStack, StackConfig

RESULTS = Path(__file__).parent / "results"

# The gateway's per-IP limits would throttle a load generator on one address: raised, not off.
GATEWAY_LIMITS = {
    "TASKGATE_CREDENTIAL_RATE_AVERAGE": "1000000",
    "TASKGATE_CREDENTIAL_RATE_BURST": "1000000",
    "TASKGATE_GENERAL_RATE_AVERAGE": "1000000",
    "TASKGATE_GENERAL_RATE_BURST": "1000000",
}
# Production defaults (what users get): every app limit on and counted in Redis, as Compose
# runs them, each request paying its limit's round trip; thresholds raised so that a few bench
# accounts on one address measure the paths, not their own buckets (the report says so).
RAISED_LIMITS = {
    **GATEWAY_LIMITS,
    "AUTH_RATE_LIMIT_LOGIN_PER_IP": "1000000/minute",
    "AUTH_RATE_LIMIT_LOGIN_PER_ACCOUNT": "1000000/minute",
    "AUTH_RATE_LIMIT_REGISTER_PER_IP": "1000000/minute",
    "AUTH_RATE_LIMIT_REFRESH_PER_IP": "1000000/minute",
    "AUTH_RATE_LIMIT_REFRESH_PER_FAMILY": "1000000/minute",
    "TASKS_RATE_LIMIT_WRITES_PER_USER": "1000000/minute",
}
# `--limits off`: the app limits switched off (decision 15's old bench), to show their cost.
NO_RATE_LIMITS = {
    **GATEWAY_LIMITS,
    "AUTH_RATE_LIMIT_ENABLED": "false",
    "TASKS_RATE_LIMIT_ENABLED": "false",
}


@dataclass
class Target:
    gateway: str
    auth: str
    tasks: str
    tasks_database: str
    issuer: str
    stack: DevStack | None = None
    redis: RedisServer | None = None

    def pid(self, process: str) -> int | None:
        """A stack process's pid (`auth`, `tasks`, `gateway`, ...), or None when not ours."""
        if self.stack is None or process not in self.stack.processes:
            return None
        return self.stack.processes[process].pid

    def postgres_pid(self, service: str) -> int | None:
        """The postmaster of the service's database cluster (its backends are its children)."""
        if self.stack is None:
            return None
        pid_file = self.stack.postgres[service].data_dir / "postmaster.pid"
        return int(pid_file.read_text().splitlines()[0]) if pid_file.exists() else None

    def close(self) -> None:
        if self.stack is not None:
            self.stack.destroy()
        if self.redis is not None:
            self.redis.stop()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    memory = psutil.virtual_memory().total / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}"


def write_results(name: str, settings: dict[str, Any], **figures: Any) -> Path:
    """bench/results/<name>.json: when, on what machine, with which settings, the figures."""
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": settings,
        **figures,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def start_stack(data_dir: Path, limits: str = "on", replicas: int = 1) -> Target:
    """The stack as `make dev` runs it, on free ports; `limits` "on": the production defaults
    (a Redis of its own holds every limit's counters), "off": the app limits switched off;
    `replicas` uvicorn processes per service behind the gateway."""
    config = StackConfig.load()
    config.set_replicas(replicas)
    for name in config.ports:
        config.ports[name] = free_port()
    redis = None
    if limits == "on":
        if redis_binary() is None:
            raise SystemExit("the bench runs the limits in Redis: install redis-server")
        redis = RedisServer(data_dir / "redis")
        redis.directory.mkdir(parents=True, exist_ok=True)
        redis.start()
        os.environ.update(RAISED_LIMITS)
        os.environ["AUTH_RATE_LIMIT_STORAGE_URL"] = redis.url
        os.environ["TASKS_RATE_LIMIT_STORAGE_URL"] = redis.url
        os.environ["TASKGATE_RATE_LIMIT_REDIS"] = f"{redis.host}:{redis.port}"
    else:
        os.environ.update(NO_RATE_LIMITS)
    stack = DevStack(config, data_dir, logs_to_files=True)
    stack.start()
    gateway = f"http://localhost:{config.ports['gateway']}"
    tasks_db = stack.postgres["tasks"].url(config.databases["tasks"]["name"], driver="postgresql")
    return Target(
        gateway=gateway,
        auth=stack.url("auth"),
        tasks=stack.url("tasks"),
        tasks_database=tasks_db,
        issuer=f"{gateway}/auth",
        stack=stack,
        redis=redis,
    )


def running_target(base_url: str) -> Target:
    """A stack started elsewhere (BENCH_BASE_URL): its URLs, and no CPU clocks."""
    return Target(
        gateway=base_url.rstrip("/"),
        auth=os.environ.get("BENCH_AUTH_URL", "http://127.0.0.1:8001"),
        tasks=os.environ.get("BENCH_TASKS_URL", "http://127.0.0.1:8002"),
        tasks_database=os.environ.get(
            "BENCH_TASKS_DATABASE_URL", "postgresql://postgres@127.0.0.1:55433/taskgate_tasks"
        ),
        issuer=os.environ.get("BENCH_ISSUER", f"{base_url.rstrip('/')}/auth"),
    )


class CpuClock:
    """CPU seconds (user + system) of processes, read before and after a run; with `tree`,
    of their children too (live ones, and what ended ones left to their parent)."""

    def __init__(self, *pids: int | None, tree: bool = False) -> None:
        self.processes = [psutil.Process(pid) for pid in pids if pid is not None]
        self.tree = tree

    def read(self) -> float:
        total = 0.0
        for process in self.processes:
            try:
                members = [process, *(process.children(recursive=True) if self.tree else [])]
                for member in members:
                    times = member.cpu_times()
                    total += times.user + times.system
                    if self.tree:
                        total += times.children_user + times.children_system
            except psutil.NoSuchProcess:
                continue
        return total

    def ms_per_request(self, before: float, requests: int) -> float | None:
        if not self.processes:
            return None
        return round((self.read() - before) * 1000 / max(requests, 1), 3)
