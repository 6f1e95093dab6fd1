"""Measure the tasks service (one uvicorn worker) with wrk: list and create latency and rate.

    uv run python services/tasks/bench_local/bench.py [--duration 20] [--connections 16]

Starts an embedded PostgreSQL, the real auth service (for a real token and JWKS) in a thread,
and the tasks service as `uvicorn --workers 1` in a subprocess; seeds 1 000 tasks for one user;
runs `wrk` with list.lua and create.lua; stops everything. Needs `wrk` on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from auth_service.core.config import Settings as AuthSettings
from auth_service.core.signing_keys import write_new_key
from auth_service.main import create_app as create_auth_app
from auth_service.migrate import upgrade as upgrade_auth
from taskgate_devstack.databases import recreate_database
from taskgate_devstack.postgres import EmbeddedPostgres, free_port
from tasks_service.migrate import upgrade as upgrade_tasks

HERE = Path(__file__).parent


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    wrk_path = shutil.which("wrk")
    if wrk_path is None:
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 1

    root = Path(tempfile.mkdtemp(prefix="taskgate-bench-"))
    postgres = EmbeddedPostgres(root / "pg", free_port())
    postgres.start()
    tasks_process: subprocess.Popen[bytes] | None = None
    auth_server: uvicorn.Server | None = None
    try:
        auth_url = recreate_database(postgres.admin_url, "bench_auth")
        tasks_url = recreate_database(postgres.admin_url, "bench_tasks")
        upgrade_auth(auth_url)
        upgrade_tasks(tasks_url)
        key_file = root / "key.pem"
        write_new_key(key_file)

        auth_port, tasks_port = free_port(), free_port()
        issuer = f"http://127.0.0.1:{auth_port}/auth"
        auth_settings = AuthSettings(
            database_url=auth_url, issuer=issuer, signing_key_file=key_file, log_level="WARNING"
        )
        auth_server = uvicorn.Server(
            uvicorn.Config(
                create_auth_app(auth_settings),
                port=auth_port,
                log_level="warning",
                access_log=False,
            )
        )
        threading.Thread(target=auth_server.run, daemon=True).start()
        _wait_http(f"{issuer}/.well-known/jwks.json")

        env = {
            **os.environ,
            "TASKS_DATABASE_URL": tasks_url,
            "TASKS_AUTH_ISSUER": issuer,
            "TASKS_AUTH_JWKS_URL": f"{issuer}/.well-known/jwks.json",
            "TASKS_LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "uvicorn", "--factory", "tasks_service.main:create_app"]
        command += ["--port", str(tasks_port), "--workers", "1", "--no-access-log"]
        command += ["--log-level", "warning"]
        print("tasks:", " ".join(command[1:]))
        tasks_process = subprocess.Popen(command, env=env)  # noqa: S603 (fixed argv)
        base = f"http://127.0.0.1:{tasks_port}"
        _wait_http(f"{base}/health/ready")

        with httpx.Client(base_url=f"http://127.0.0.1:{auth_port}", timeout=30) as http:
            account = {
                "email": "bench@example.com",
                "username": "bench",
                "password": "bench-pass-1",
            }
            http.post("/auth/register", json=account).raise_for_status()
            login = http.post("/auth/login", json={"username": "bench", "password": "bench-pass-1"})
            token = login.raise_for_status().json()["access_token"]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
            for i in range(args.seed):
                http.post("/api/tasks", json={"title": f"seed {i}"}).raise_for_status()

        for script in ("list.lua", "create.lua"):
            wrk = [wrk_path, "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
            wrk += ["-s", str(HERE / script), base]
            print(f"\n$ TOKEN=… {' '.join(wrk)}", flush=True)
            subprocess.run(wrk, env={**os.environ, "TOKEN": token}, check=True)  # noqa: S603
        return 0
    finally:
        if tasks_process is not None:
            tasks_process.terminate()
            tasks_process.wait(15)
        if auth_server is not None:
            auth_server.should_exit = True
        postgres.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
