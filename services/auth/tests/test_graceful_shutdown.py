"""Graceful shutdown with a drain (taskgate_common.graceful_shutdown): on SIGTERM readiness
fails at once while requests are still served, and the server's own handler gets the signal
only when the drain is over, so a balancer takes the replica out before it stops accepting.

The services share this code (service_app.install_platform); the auth app stands for both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import FrameType

import httpx
import pytest
from fastapi import FastAPI

from auth_service.core.config import Settings
from auth_service.main import create_app
from taskgate_common.graceful_shutdown import ShutdownDrain
from taskgate_devstack.postgres import free_port


class ServerHandler:
    """Stands in for uvicorn's SIGTERM handler (the one the drain hands the signal on to)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.called = asyncio.Event()

    def __call__(self, signum: int, _: FrameType | None) -> None:
        self.received.append(signum)
        self.called.set()


@pytest.fixture
def server_handler() -> Iterator[ServerHandler]:
    """SIGTERM goes to a recorder for the test (never to pytest's default: the process would
    end), and back to what it was afterwards."""
    handler = ServerHandler()
    previous = signal.signal(signal.SIGTERM, handler)
    yield handler
    signal.signal(signal.SIGTERM, previous)


class Gate:
    """The drain's wait, opened by the test instead of by the clock."""

    def __init__(self) -> None:
        self.waited: list[float] = []
        self.open = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)
        await self.open.wait()


@pytest.fixture
async def draining_app(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, server_handler: ServerHandler
) -> AsyncIterator[tuple[FastAPI, Gate]]:
    monkeypatch.setenv("AUTH_SHUTDOWN_DRAIN_SECONDS", "7.5")
    application = create_app(settings)
    drain: ShutdownDrain = application.state.shutdown_drain
    gate = Gate()
    drain.wait = gate
    async with application.router.lifespan_context(application):
        yield application, gate


async def _started(gate: Gate) -> None:
    """Until the drain, started on the event loop by the signal handler, is waiting."""
    for _ in range(1000):
        if gate.waited:
            return
        await asyncio.sleep(0)
    raise AssertionError("the drain never started")


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.get(path)


async def test_sigterm_fails_readiness_first_and_stops_only_after_the_drain(
    draining_app: tuple[FastAPI, Gate], server_handler: ServerHandler
) -> None:
    app, gate = draining_app
    assert (await _get(app, "/health/ready")).status_code == 200

    os.kill(os.getpid(), signal.SIGTERM)
    await _started(gate)
    ready = await _get(app, "/health/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["code"] == "shutting_down"
    assert body["checks"]["shutdown"]["status"] == "fail"
    assert body["checks"]["database"]["status"] == "ok"
    assert (await _get(app, "/health")).status_code == 503
    # Still alive and still serving: only the balancer's view changes.
    assert (await _get(app, "/health/live")).status_code == 200
    assert (await _get(app, "/auth/.well-known/jwks.json")).status_code == 200
    assert server_handler.received == []
    assert gate.waited == [7.5]

    gate.open.set()
    await asyncio.wait_for(server_handler.called.wait(), timeout=10)
    assert server_handler.received == [signal.SIGTERM]


async def test_a_second_sigterm_ends_the_drain_at_once(
    draining_app: tuple[FastAPI, Gate], server_handler: ServerHandler
) -> None:
    app, gate = draining_app
    os.kill(os.getpid(), signal.SIGTERM)
    await _started(gate)
    assert app.state.shutdown_drain.draining
    assert server_handler.received == []
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(server_handler.called.wait(), timeout=10)
    assert server_handler.received == [signal.SIGTERM]
    assert not gate.open.is_set()


async def test_the_lifespan_gives_sigterm_back(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, server_handler: ServerHandler
) -> None:
    monkeypatch.setenv("AUTH_SHUTDOWN_DRAIN_SECONDS", "3")
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        assert signal.getsignal(signal.SIGTERM) is not server_handler
    assert signal.getsignal(signal.SIGTERM) is server_handler


async def test_without_a_drain_sigterm_is_left_alone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, server_handler: ServerHandler
) -> None:
    """The default (0): the app never touches the signal, the server stops at once as before."""
    monkeypatch.delenv("AUTH_SHUTDOWN_DRAIN_SECONDS", raising=False)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        assert signal.getsignal(signal.SIGTERM) is server_handler
        assert application.state.shutdown_drain.drain_seconds == 0


def test_a_real_uvicorn_drains_then_finishes_and_exits(
    auth_database_url: str, signing_key_file: Path
) -> None:
    """The real server: uvicorn's handler is in place before the lifespan runs, so the drain
    sits in front of it; after SIGTERM the process answers readiness 503 and serves requests
    for the drain, then shuts down by itself."""
    port = free_port()
    env = {
        **os.environ,
        "AUTH_DATABASE_URL": auth_database_url,
        "AUTH_SIGNING_KEY_FILE": str(signing_key_file),
        "AUTH_LOG_LEVEL": "WARNING",
        "AUTH_SHUTDOWN_DRAIN_SECONDS": "3",
    }
    args = [sys.executable, "-m", "uvicorn", "--factory", "auth_service.main:create_app"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: httpx.get(f"{base}/health/ready", timeout=2).status_code == 200)
        process.send_signal(signal.SIGTERM)
        _wait_for(lambda: httpx.get(f"{base}/health/ready", timeout=2).status_code == 503)
        assert httpx.get(f"{base}/health/ready").json()["code"] == "shutting_down"
        assert httpx.get(f"{base}/auth/.well-known/jwks.json").status_code == 200
        assert process.poll() is None
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    _, errors = process.communicate()
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert process.returncode in (0, -signal.SIGTERM), errors
    assert "drain over: shutting down" in errors
    assert "Traceback" not in errors


def _wait_for(condition: Callable[[], bool], attempts: int = 600) -> None:
    """Poll `condition` until true; connection errors count as false."""
    for _ in range(attempts):
        try:
            if condition():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("condition never became true")
