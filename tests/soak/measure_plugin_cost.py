"""What the json-errors gateway plugin costs: wrk through two gateways, with and without it.

    uv run python tests/soak/measure_plugin_cost.py [seconds per run, default 10]

Starts the dev stack on free ports (temporary), then Traefik twice from the real gateway
files, edge limits raised (wrk is one address): once as is, once with `json-errors` taken out
of every router. Each is measured back to back, alternately, three times:

- `GET /api/tasks?limit=20` with a Bearer token (the tasks service does the real work);
- proxy only: the tasks route to an upstream that answers at once (a third Traefik serving
  `ping@internal` on every path), so the gateway's own cost dominates;
- a gateway-made error: POST to an upstream that refuses connections (502; the plugin
  rewrites every answer).

Needs `wrk`. Prints requests/s, latency and the gateway's CPU time per request, per run
(docs/reliability.md records a run).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from taskgate_devstack.gateway import render_static_config, start_traefik, write_static_config
from taskgate_devstack.postgres import free_port
from taskgate_devstack.processes import terminate
from taskgate_devstack.stack import REPO_ROOT, DevStack, StackConfig

GATEWAY = REPO_ROOT / "gateway"
RAISED = {
    f"TASKGATE_{kind}_RATE_{knob}": "1000000"
    for kind in ("CREDENTIAL", "GENERAL")
    for knob in ("AVERAGE", "BURST")
}


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not up")


def gateway(
    work: Path, dynamic: Path, upstreams: dict[str, str]
) -> tuple[str, subprocess.Popen[bytes]]:
    ports = {name: free_port() for name in ("gateway", "gateway_ping", "gateway_metrics")}
    config = render_static_config(GATEWAY / "traefik.yml", dynamic, ports, work / "access.log")
    static = write_static_config(config, work / "traefik.yml")
    env = {**os.environ, **RAISED, **upstreams}
    process = start_traefik(GATEWAY / "traefik.yml", static, env, work / "traefik.log")
    url = f"http://127.0.0.1:{ports['gateway']}"
    wait_http(f"{url}/auth/.well-known/jwks.json")
    return url, process


def ping_upstream(work: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """A Traefik answering 200 "OK" on every path, at once."""
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    (work / "dynamic.yml").write_text(
        "http:\n  routers:\n    all:\n      rule: PathPrefix(`/`)\n      service: ping@internal\n"
    )
    (work / "static.yml").write_text(
        f"entryPoints:\n  web:\n    address: 127.0.0.1:{port}\nping:\n  manualRouting: true\n"
        f"providers:\n  file:\n    filename: {work / 'dynamic.yml'}\nlog:\n  level: ERROR\n"
    )
    process = start_traefik(
        GATEWAY / "traefik.yml", work / "static.yml", dict(os.environ), work / "log"
    )
    wait_http(f"http://127.0.0.1:{port}/api/x")
    return f"http://127.0.0.1:{port}", process


def without_plugin(target: Path) -> Path:
    text = (GATEWAY / "dynamic" / "taskgate.yml").read_text()
    target.mkdir(parents=True, exist_ok=True)
    (target / "taskgate.yml").write_text(text.replace("[json-errors, ", "["))
    return target


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system)


def wrk(
    url: str,
    seconds: int,
    headers: dict[str, str],
    script: Path | None,
    traefik: subprocess.Popen[bytes],
) -> str:
    """One wrk run; also the gateway's own CPU time per request (steadier than req/s on a
    shared machine: it does not depend on who else gets the cores)."""
    args = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    cpu_before = cpu_seconds(traefik)
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(traefik) - cpu_before
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    if rate is None or count is None or p50 is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (
        f"{float(rate.group(1)):7.0f} req/s  p50 {p50.group(1):>8}  p99 {p99.group(1):>8}  "
        f"gateway CPU {cpu / int(count.group(1)) * 1e6:6.1f} us/request  "
        f"non-2xx {non2xx.group(1) if non2xx else 0}"
    )


def main(seconds: int) -> None:
    config = StackConfig.load()
    for name in config.ports:
        config.ports[name] = free_port()
    config.gateway = None  # the gateways below are the ones measured
    work = Path(tempfile.mkdtemp(prefix="taskgate-plugin-cost-"))
    stack = DevStack(config, work / "stack", logs_to_files=True, fast_unsafe_postgres=True)
    stack.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        auth, tasks = stack.url("auth"), stack.url("tasks")
        user = {"email": "bench@example.com", "username": "bench", "password": "bench password"}
        httpx.post(f"{auth}/auth/register", json=user).raise_for_status()
        login = httpx.post(f"{auth}/auth/login", json=user).json()
        bearer = {"Authorization": f"Bearer {login['access_token']}"}
        for i in range(20):
            httpx.post(f"{tasks}/api/tasks", json={"title": f"t{i}"}, headers=bearer)
        upstream, process = ping_upstream(work / "upstream")
        processes.append(process)
        dead = f"http://127.0.0.1:{free_port()}"
        post = work / "post.lua"
        post.write_text('wrk.method = "POST"\nwrk.body = "{}"\n')
        bodies = {"TASKGATE_AUTH_URL": auth}
        variants = {"with plugin": GATEWAY / "dynamic", "without": without_plugin(work / "plain")}
        urls: dict[tuple[str, str], tuple[str, subprocess.Popen[bytes]]] = {}
        for label, dynamic in variants.items():
            for case, tasks_url in (("api", tasks), ("proxy", upstream), ("502", dead)):
                url, process = gateway(
                    work / f"{label}-{case}".replace(" ", "-"),
                    dynamic,
                    {**bodies, "TASKGATE_TASKS_URL": tasks_url},
                )
                processes.append(process)
                urls[(label, case)] = url, process
        runs = [
            ("GET /api/tasks?limit=20 (tasks service)", "api", "/api/tasks?limit=20", None),
            ("GET /api/x (proxy only, instant upstream)", "proxy", "/api/x", None),
            ("POST /api/tasks -> gateway-made 502", "502", "/api/tasks", post),
        ]
        for title, case, path, script in runs:
            print(f"\n{title}, {seconds} s each, 32 connections:")
            for round_ in (1, 2, 3):
                for label in variants:
                    url, traefik = urls[(label, case)]
                    result = wrk(url + path, seconds, bearer, script, traefik)
                    print(f"  round {round_} {label:<12} {result}", flush=True)
    finally:
        for process in processes:
            terminate(process)
        stack.destroy()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
