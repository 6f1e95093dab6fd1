"""What each layer of the gateway costs: Traefik's CPU per list request with one layer taken
away at a time (the JSON-errors plugin, compress, the rate limit in Redis or in memory, the
security headers, retry, the access log, the metrics) and with none of them (a bare proxy).

Each variant is a Traefik of its own, started from the real `gateway/traefik.yml` and
`gateway/dynamic/taskgate.yml` with that one change, in front of the same services; wrk
drives `GET /api/tasks?limit=20` through it, with and without `Accept-Encoding: gzip` (a
browser always sends it; wrk does not). A layer costs a few hundredths of a millisecond, less
than what one run on a shared machine drifts: the variants take turns over several rounds and
each figure is the median, with the spread of its rounds beside it. Part of `make bench`;
alone: `uv run python bench/gateway_layers.py`. Writes bench/results/gateway_layers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from bench_stack import CpuClock, Target, start_stack, write_results
from seed import seed_users, write_records
from wrk_runner import WrkResult, run_wrk, wrk_installed

from taskgate_devstack.gateway import render_static_config, start_traefik, write_static_config
from taskgate_devstack.postgres import free_port
from taskgate_devstack.processes import terminate
from taskgate_devstack.stack import REPO_ROOT

GATEWAY = REPO_ROOT / "gateway"
ROUTER = "    tasks-read:\n"
FULL_CHAIN = "[json-errors, security-headers, general-rate-limit, retry-idempotent, compress]"
PATH = "/api/tasks?limit=20"


@dataclass
class Variant:
    name: str
    drop: tuple[str, ...] = ()  # middlewares taken off the list's router
    static: Callable[[dict[str, Any]], None] | None = None  # a change to traefik.yml
    env: dict[str, str | None] | None = None  # None: unset


def _no_access_log(config: dict[str, Any]) -> None:
    config.pop("accessLog", None)


def _no_metrics(config: dict[str, Any]) -> None:
    config.pop("metrics", None)
    config["entryPoints"].pop("metrics", None)


def _bare(config: dict[str, Any]) -> None:
    _no_access_log(config)
    _no_metrics(config)


ALL = ("json-errors", "security-headers", "general-rate-limit", "retry-idempotent", "compress")
VARIANTS = [
    Variant("as deployed"),
    Variant("without json-errors (plugin)", drop=("json-errors",)),
    Variant("without compress", drop=("compress",)),
    Variant("without the rate limit (Redis)", drop=("general-rate-limit",)),
    Variant("rate limit in memory, not Redis", env={"TASKGATE_RATE_LIMIT_REDIS": None}),
    Variant("without security-headers", drop=("security-headers",)),
    Variant("without retry", drop=("retry-idempotent",)),
    Variant("without the access log", static=_no_access_log),
    Variant("without metrics", static=_no_metrics),
    Variant("bare proxy (none of the above)", drop=ALL, static=_bare),
]


def _dynamic_dir(variant: Variant, work: Path) -> Path:
    """`taskgate.yml` with the variant's middlewares off the list's router."""
    text = (GATEWAY / "dynamic" / "taskgate.yml").read_text()
    start = text.index(ROUTER)
    line = text.index("middlewares: ", start)
    end = text.index("\n", line)
    if text[line:end] != f"middlewares: {FULL_CHAIN}":
        raise SystemExit(f"tasks-read's middlewares changed: update {__file__}")
    kept = [name for name in ALL if name not in variant.drop]
    text = text[:line] + f"middlewares: [{', '.join(kept)}]" + text[end:]
    directory = work / variant.name.replace(" ", "-").replace("(", "").replace(")", "")
    (directory / "dynamic").mkdir(parents=True, exist_ok=True)
    (directory / "dynamic" / "taskgate.yml").write_text(text)
    return directory


def _start_gateway(variant: Variant, target: Target, work: Path) -> tuple[Any, str]:
    directory = _dynamic_dir(variant, work)
    ports = {name: free_port() for name in ("gateway", "gateway_ping", "gateway_metrics")}
    config = render_static_config(
        GATEWAY / "traefik.yml", directory / "dynamic", ports, directory / "access.log"
    )
    if variant.static is not None:
        variant.static(config)
    static = write_static_config(config, directory / "traefik.yml")
    env = dict(os.environ)
    env.update({"TASKGATE_AUTH_URL": target.auth, "TASKGATE_TASKS_URL": target.tasks})
    for key, value in (variant.env or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    process = start_traefik(GATEWAY / "traefik.yml", static, env, directory / "traefik.log")
    url = f"http://127.0.0.1:{ports['gateway']}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/auth/.well-known/jwks.json", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    terminate(process)
    raise RuntimeError(f"the {variant.name!r} gateway did not route; see {directory}")


def _list(
    url: str, tokens: Path, args: argparse.Namespace, headers: dict[str, str], seconds: float
) -> WrkResult:
    return run_wrk(
        url,
        "bearer_get.lua",
        data_file=tokens,
        path=PATH,
        duration=seconds,
        connections=args.connections,
        threads=2,
        headers=headers,
    )


def measure(
    target: Target, tokens: Path, work: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """`args.rounds` rounds, each variant once per round in a rotated order, so that what the
    shared machine does meanwhile falls on every variant alike; the median of the rounds."""
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {
        v.name: {"plain": [], "gzip": []} for v in VARIANTS
    }
    for round_ in range(args.rounds):
        order = VARIANTS[round_ % len(VARIANTS) :] + VARIANTS[: round_ % len(VARIANTS)]
        for variant in order:
            process, url = _start_gateway(variant, target, work)
            try:
                for label, headers in (("plain", {}), ("gzip", {"Accept-Encoding": "gzip"})):
                    _list(url, tokens, args, headers, args.warmup)
                    clock = CpuClock(process.pid)
                    before = clock.read()
                    result = _list(url, tokens, args, headers, args.duration)
                    if result.errors:
                        raise RuntimeError(f"{variant.name}: {result.errors} errors")
                    cpu = clock.ms_per_request(before, result.requests) or 0.0
                    samples[variant.name][label].append((result.rps, cpu))
            finally:
                terminate(process)
        print(f"  round {round_ + 1} of {args.rounds} done", flush=True)
    rows = []
    for variant in VARIANTS:
        row: dict[str, Any] = {"variant": variant.name}
        for label, runs in samples[variant.name].items():
            cpus = [cpu for _, cpu in runs]
            row[label] = {
                "rps": round(statistics.median(rps for rps, _ in runs), 1),
                "gateway_cpu_ms_per_request": round(statistics.median(cpus), 3),
                "spread_ms": round(max(cpus) - min(cpus), 3),
            }
        rows.append(row)
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    full = rows[0]
    print(
        "\n| gateway variant (GET /api/tasks?limit=20), median of rounds | req/s "
        "| gateway CPU ms/req (spread) | saved | with gzip: req/s | CPU ms/req (spread) | saved |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        cells = []
        for label in ("plain", "gzip"):
            cpu = row[label]["gateway_cpu_ms_per_request"]
            saved = full[label]["gateway_cpu_ms_per_request"] - cpu
            cells.append(
                f"{row[label]['rps']:,.0f} | {cpu:.3f} ({row[label]['spread_ms']:.3f}) "
                f"| {saved:+.3f}"
            )
        print(f"| {row['variant']} | {' | '.join(cells)} |")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/gateway_layers.py")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variant", action="append", help="only these variants (by name; the first is the base)"
    )
    parser.add_argument(
        "--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", 32))
    )
    args = parser.parse_args()
    if args.variant:
        VARIANTS[:] = [v for name in args.variant for v in VARIANTS if v.name == name]
    if not wrk_installed():
        return 2
    work = Path(tempfile.mkdtemp(prefix="taskgate-bench-layers-"))
    print("gateway layers: starting the stack…", flush=True)
    target = start_stack(work / "stack")
    try:
        users = asyncio.run(seed_users(target.gateway, 16, 50))
        tokens = write_records(work / "tokens.tsv", [(u.access_token,) for u in users])
        rows = measure(target, tokens, work, args)
    finally:
        target.close()
    print_rows(rows)
    write_results("gateway_layers", vars(args), rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
