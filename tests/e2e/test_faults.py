"""Faults on the real stack: a database going away and coming back, auth down and back with a
rotated key, SIGTERM under load, and an upstream that dies mid-request behind the gateway.

These stop and restart parts of the shared session stack and always put them back (the
`finally` blocks wait until the gateway routes again), so the tests after them see a healthy
stack. Figures are printed (`-s`) and recorded in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from e2e_support import GatewayAccount, new_account
from reliability_support import (
    all_tasks,
    assert_error_shape,
    gateway_routes_again,
    own_ip_client,
    private_gateway,
    stack_signing_key,
    wait_until,
)

from auth_service.core.signing_keys import write_new_key
from taskgate_devstack.processes import terminate
from taskgate_devstack.stack import REPO_ROOT, DevStack

_titles = itertools.count(1)


@dataclass
class WriteLog:
    """What a writer saw: acknowledged titles, refused ones and ambiguous ones."""

    acked: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # a 503 database_unavailable
    ambiguous: list[str] = field(default_factory=list)  # no answer: may or may not be written
    unexpected: list[tuple[int, str]] = field(default_factory=list)
    first_503_at: float | None = None

    @property
    def sent(self) -> int:
        return len(self.acked) + len(self.refused) + len(self.ambiguous) + len(self.unexpected)


async def write_until(
    client: httpx.AsyncClient,
    account: GatewayAccount,
    log: WriteLog,
    stop: asyncio.Event,
    pause: float = 0.02,
) -> None:
    """Create tasks one after another until `stop`, classifying every answer."""
    while not stop.is_set():
        title = f"w{next(_titles)}"
        try:
            response = await client.post(
                "/api/tasks", json={"title": title}, headers=account.headers
            )
        except httpx.TransportError:
            log.ambiguous.append(title)
            await asyncio.sleep(pause)
            continue
        if response.status_code == 201:
            log.acked.append(title)
        elif response.status_code == 503 and response.json().get("code") == "database_unavailable":
            log.refused.append(title)
            if log.first_503_at is None:
                log.first_503_at = time.monotonic()
        else:
            log.unexpected.append((response.status_code, response.text[:200]))
        await asyncio.sleep(pause)


def check_writes(log: WriteLog, stored: list[dict[str, object]]) -> None:
    """Every acknowledged write is stored exactly once; nothing else but ambiguous ones."""
    titles = Counter(str(task["title"]) for task in stored)
    duplicated = [title for title, count in titles.items() if count > 1]
    assert duplicated == []
    missing = set(log.acked) - set(titles)
    assert missing == set(), f"acknowledged but lost: {sorted(missing)[:10]}"
    unexplained = set(titles) - set(log.acked) - set(log.ambiguous) - set(log.refused)
    assert unexplained == set()


@pytest.fixture
async def direct_tasks(stack: DevStack) -> AsyncIterator[httpx.AsyncClient]:
    async with own_ip_client(stack.url("tasks"), timeout=20.0) as client:
        yield client


async def test_tasks_database_outage_503_then_recovers_without_losing_writes(
    gateway: httpx.AsyncClient, direct_tasks: httpx.AsyncClient, stack: DevStack
) -> None:
    account = await new_account(gateway)
    log = WriteLog()
    stop = asyncio.Event()
    writer = asyncio.create_task(write_until(direct_tasks, account, log, stop))
    postgres = stack.postgres["tasks"]
    restarted = False
    try:
        await asyncio.sleep(1.0)
        before_outage = len(log.acked)
        assert before_outage > 0
        await asyncio.to_thread(postgres.stop)
        stopped_at = time.monotonic()

        async def refusing() -> bool:
            response = await direct_tasks.get("/api/tasks?limit=1", headers=account.headers)
            if response.status_code != 503:
                return False
            assert assert_error_shape(response)["code"] == "database_unavailable"
            assert response.headers["retry-after"]
            return True

        # The first request on a dead pooled connection may already be the 503; bounded.
        detect = await wait_until(refusing, timeout=15.0)
        ready = await direct_tasks.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["status"] == "fail"
        assert (await direct_tasks.get("/health/live")).status_code == 200
        await asyncio.sleep(1.0)  # writes keep being refused, promptly
        await asyncio.to_thread(postgres.start)
        restarted = True
        restarted_at = time.monotonic()
        acked_before_restart = len(log.acked)

        async def writes_again() -> bool:
            return len(log.acked) > acked_before_restart

        recovery = await wait_until(writes_again, timeout=30.0)
        assert (await direct_tasks.get("/health/ready")).status_code == 200
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await writer
        if not restarted:
            await asyncio.to_thread(postgres.start)
    assert log.unexpected == []
    assert log.refused, "no write met the outage"
    stored = await all_tasks(direct_tasks, account.headers)
    check_writes(log, stored)
    print(
        f"\ntasks db outage: sent={log.sent} acked={len(log.acked)} refused={len(log.refused)} "
        f"ambiguous={len(log.ambiguous)} stored={len(stored)} "
        f"first_503_after={((log.first_503_at or stopped_at) - stopped_at):.2f}s "
        f"detected_by_probe={detect:.2f}s recovered_in={recovery:.2f}s "
        f"(outage {restarted_at - stopped_at:.1f}s)"
    )
    await gateway_routes_again(gateway, account.headers)


async def test_auth_database_outage_503_tasks_unaffected_then_recovers(
    gateway: httpx.AsyncClient, direct_tasks: httpx.AsyncClient, stack: DevStack
) -> None:
    account = await new_account(gateway)
    credentials = {"username": account.username, "password": account.password}
    postgres = stack.postgres["auth"]
    async with own_ip_client(stack.url("auth"), timeout=20.0) as auth:
        await asyncio.to_thread(postgres.stop)
        try:

            async def refusing() -> bool:
                response = await auth.post("/auth/login", json=credentials)
                if response.status_code != 503:
                    return False
                assert assert_error_shape(response)["code"] == "database_unavailable"
                return True

            await wait_until(refusing, timeout=15.0)
            assert (await auth.get("/health/ready")).status_code == 503
            assert (await auth.get("/health/live")).status_code == 200
            # Tasks never calls auth on the request path: it keeps working.
            created = await direct_tasks.post(
                "/api/tasks", json={"title": "auth db down"}, headers=account.headers
            )
            assert created.status_code == 201
        finally:
            await asyncio.to_thread(postgres.start)

        async def logs_in() -> bool:
            return (await auth.post("/auth/login", json=credentials)).status_code == 200

        recovery = await wait_until(logs_in, timeout=30.0)
    print(f"\nauth db outage: login recovered {recovery:.2f}s after the restart")

    await gateway_routes_again(gateway, account.headers, "/auth/me")


async def test_auth_down_then_back_with_a_rotated_key(
    gateway: httpx.AsyncClient, direct_tasks: httpx.AsyncClient, stack: DevStack
) -> None:
    accounts = [await new_account(gateway) for _ in range(3)]
    env = stack._service_envs["auth"]
    original = dict(env)
    old_key = stack_signing_key(stack)
    keys_dir = stack.data_dir / "rotated-keys"
    keys_dir.mkdir(exist_ok=True)
    shutil.copy(stack.data_dir / "keys" / "signing-key.pem", keys_dir / "a-old.pem")
    new_key = write_new_key(keys_dir / "b-new.pem", overwrite=True)
    await asyncio.to_thread(stack.stop_service, "auth")
    try:
        # Auth down: cached keys still verify real tokens; forged ones are still refused.
        for account in accounts:
            ok = await direct_tasks.get("/api/tasks", headers=account.headers)
            assert ok.status_code == 200
            tampered = account.access_token[:-6] + (
                "A" * 6 if account.access_token[-1] != "A" else "B" * 6
            )
            refused = await direct_tasks.get(
                "/api/tasks", headers={"Authorization": f"Bearer {tampered}"}
            )
            assert refused.status_code == 401
        env.update({"AUTH_SIGNING_KEYS_DIR": str(keys_dir), "AUTH_ACTIVE_KEY_ID": "b-new"})
        await asyncio.to_thread(stack.start_service, "auth")
        async with own_ip_client(stack.url("auth")) as auth:
            login = await auth.post(
                "/auth/login",
                json={"username": accounts[0].username, "password": accounts[0].password},
            )
            assert login.status_code == 200
            token = login.json()["access_token"]
        import jwt

        assert jwt.get_unverified_header(token)["kid"] == new_key.kid != old_key.kid
        headers = {"Authorization": f"Bearer {token}"}

        async def accepted() -> bool:
            # An unknown kid forces a JWKS refetch (at most once per cooldown, 30 s by default).
            return (await direct_tasks.get("/api/tasks", headers=headers)).status_code == 200

        picked_up = await wait_until(accepted, timeout=45.0, interval=0.5)
        # Tokens of the old key still work: it is still published.
        assert (
            await direct_tasks.get("/api/tasks", headers=accounts[1].headers)
        ).status_code == 200
        print(f"\nrotated key accepted by tasks after {picked_up:.2f}s")
    finally:
        await asyncio.to_thread(stack.stop_service, "auth")
        env.clear()
        env.update(original)
        await asyncio.to_thread(stack.start_service, "auth")

    await gateway_routes_again(gateway, accounts[2].headers, "/auth/me")


async def test_sigterm_under_load_finishes_in_flight_requests(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    accounts = [await new_account(gateway) for _ in range(2)]
    logs = {account.user_id: WriteLog() for account in accounts}
    stop = asyncio.Event()
    clients = [own_ip_client(stack.url("tasks"), timeout=20.0) for _ in range(10)]
    writers = [
        asyncio.create_task(
            write_until(client, accounts[i % 2], logs[accounts[i % 2].user_id], stop, 0.0)
        )
        for i, client in enumerate(clients)
    ]
    try:
        await asyncio.sleep(1.0)
        process = stack.processes.pop("tasks")
        await asyncio.to_thread(terminate, process)
        # uvicorn drains, then re-raises the signal: it ends "killed by SIGTERM", never hard.
        assert process.returncode in (0, -15)
        stop.set()
        await asyncio.gather(*writers)
    finally:
        stop.set()
        for client in clients:
            await client.aclose()
        if "tasks" not in stack.processes:
            await asyncio.to_thread(stack.start_service, "tasks")
    async with own_ip_client(stack.url("tasks")) as direct:
        for account in accounts:
            log = logs[account.user_id]
            assert log.unexpected == [], log.unexpected[:5]  # no 5xx (and nothing else odd)
            assert log.refused == []
            stored = await all_tasks(direct, account.headers)
            check_writes(log, stored)
            # No half-written row: every stored task is whole and readable on its own.
            for task in stored:
                assert task["owner_id"] == account.user_id
                assert task["version"] >= 1
                assert task["status"] == "todo"
            print(
                f"\nSIGTERM under load ({account.username}): sent={log.sent} "
                f"acked={len(log.acked)} ambiguous={len(log.ambiguous)} stored={len(stored)}"
            )
    await gateway_routes_again(gateway, accounts[0].headers)


# ---------------------------------------------------------------------------------------------
# The gateway with an upstream that dies mid-request


class DyingUpstream:
    """A fake tasks upstream that reports itself ready but, on any API request, reads the
    request and then drops the connection without an answer (a crash mid-request)."""

    def __init__(self) -> None:
        self.api_requests = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        path = head.split(b" ", 2)[1]
        if path.startswith(b"/health"):
            body = b'{"status":"ok"}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            writer.close()
            return
        self.api_requests += 1
        await asyncio.sleep(0.05)  # mid-request
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        writer.transport.abort()  # a reset, as when the process dies

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def kill(self) -> None:
        """Stop listening: from now on connections are refused, as for a dead process."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def __aexit__(self, *_: object) -> None:
        await self.kill()


def _dynamic_config_without_the_tasks_health_check(target: Path) -> None:
    """The real routing file without the tasks health check, so a dying server given in
    `TASKGATE_TASKS_URL` stays in the rotation (deterministic: no health check may take it out
    halfway through the test)."""
    text = (REPO_ROOT / "gateway" / "dynamic" / "taskgate.yml").read_text()
    tasks = text.index("\n    tasks:\n      loadBalancer:\n")
    check = text.index("        healthCheck:\n", tasks)
    rest = text[check:].splitlines()
    assert rest[:5] == [
        "        healthCheck:",
        "          path: /health/ready",
        """          interval: '{{ env "TASKGATE_HEALTHCHECK_INTERVAL" | default "5s" }}'""",
        "          timeout: 2s",
        '{{- if env "TASKGATE_PASSIVE_HEALTHCHECK_WINDOW" }}',
    ], "the tasks service is no longer the last block of taskgate.yml: update this test"
    target.mkdir(parents=True, exist_ok=True)
    (target / "taskgate.yml").write_text(text[:check])


async def test_gateway_survives_an_upstream_dying_mid_request_and_retries_reads(
    gateway: httpx.AsyncClient, stack: DevStack, tmp_path: Path
) -> None:
    account = await new_account(gateway)
    created = await gateway.post("/api/tasks", json={"title": "kept"}, headers=account.headers)
    assert created.status_code == 201
    upstream = DyingUpstream()
    async with upstream as dying_url:
        _dynamic_config_without_the_tasks_health_check(tmp_path / "dynamic")
        async with (
            private_gateway(
                stack,
                tmp_path,
                {"TASKGATE_TASKS_URL": f"{dying_url},{stack.url('tasks')}"},
                dynamic_dir=tmp_path / "dynamic",
            ) as own_gateway,
            own_ip_client(own_gateway.url) as own,
        ):
            # 1. An upstream that dies mid-request (the request was sent, the connection
            # is reset): Traefik does not replay a request it already sent, so those
            # calls get 502; the gateway itself stays up and keeps serving.
            statuses: Counter[int] = Counter()
            for _ in range(20):
                response = await own.get("/api/tasks", headers=account.headers)
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    assert [t["title"] for t in response.json()["items"]] == ["kept"]
                else:  # Traefik's own 502, in the design's error shape
                    assert response.status_code == 502
                    assert assert_error_shape(response)["code"] == "bad_gateway"
            assert upstream.api_requests >= 5
            assert statuses[200] >= 5
            posted: Counter[int] = Counter()
            for i in range(6):
                response = await own.post(
                    "/api/tasks", json={"title": f"post {i}"}, headers=account.headers
                )
                posted[response.status_code] += 1
            assert set(posted) <= {201, 502}
            ping = await own.get(own_gateway.ping_url)
            assert ping.status_code == 200
            assert own_gateway.process.poll() is None
            # 2. The upstream is gone (connection refused): every idempotent request is
            # retried on the healthy upstream and succeeds.
            await upstream.kill()
            retried: Counter[int] = Counter()
            for _ in range(20):
                response = await own.get("/api/tasks", headers=account.headers)
                retried[response.status_code] += 1
            assert retried == Counter({200: 20})
            # Traefik's access log names the upstream that answered each request.
            lines = own_gateway.access_log.read_text().splitlines()[-20:]
            answered_by = Counter(json.loads(line).get("ServiceURL") for line in lines)
            retries = sum(json.loads(line).get("RetryAttempts", 0) for line in lines)
            assert dying_url not in answered_by
            listing = await all_tasks(own, account.headers)
            titles = Counter(task["title"] for task in listing)
            assert all(count == 1 for count in titles.values())
            assert len(listing) == 1 + posted[201]  # nothing applied twice
            print(
                f"\ndying upstream: GET {dict(statuses)} (it was hit "
                f"{upstream.api_requests}x), POST {dict(posted)}; after it died: GET "
                f"{dict(retried)}, Traefik retry attempts {retries}"
            )
