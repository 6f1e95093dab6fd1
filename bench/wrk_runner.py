"""Run one wrk scenario and read the JSON summary its Lua `done()` prints."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).parent / "lua"


class WrkMissing(RuntimeError):
    pass


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(
            "wrk is not installed. Install it (Debian/Ubuntu: `sudo apt-get install wrk`, "
            "macOS: `brew install wrk`) and run `make bench` again."
        )
    return path


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The closed-loop load every wrk-driven script takes: seconds, warm-up, connections
    (BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS set their defaults)."""
    parser.add_argument(
        "--duration", type=float, default=float(os.environ.get("BENCH_DURATION", 10))
    )
    parser.add_argument("--warmup", type=float, default=float(os.environ.get("BENCH_WARMUP", 2)))
    parser.add_argument(
        "--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", 32))
    )


def wrk_installed() -> bool:
    """True when wrk is on the PATH; else False, with how to install it on stderr."""
    try:
        require_wrk()
    except WrkMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


@dataclass
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def run_wrk(
    url: str,
    script: str,
    *,
    data_file: Path | None = None,
    path: str = "",
    duration: float,
    connections: int,
    threads: int,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """`url` is the origin (and path for plain GETs); `script` a file name in bench/lua/;
    `headers` go on every request (scripts merge `wrk.headers` into their own)."""
    source = (LUA / "common.lua").read_text() + "\n" + (LUA / script).read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(source)
        script_path = handle.name
    threads = max(1, min(threads, connections))
    command = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        script_path,
        *(arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")),
        url,
        "--",
        str(data_file or ""),
        path,
        str(threads),
    ]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        Path(script_path).unlink(missing_ok=True)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk {script} failed: {completed.stderr.strip()[-500:]}")
    output = completed.stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH_JSON "))
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1_000_000,
        non_2xx=raw["non_2xx"],
        socket_errors=raw["socket_errors"],
        p50_ms=raw["p50_ms"],
        p90_ms=raw["p90_ms"],
        p99_ms=raw["p99_ms"],
        max_ms=raw["max_ms"],
    )
