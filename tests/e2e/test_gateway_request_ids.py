"""Every answer through the gateway carries one X-Request-ID, and the service behind it and
Traefik's access log know the same one.

The `json-errors` plugin (gateway/plugins-local), first on every router, keeps a caller's valid
ID and replaces a missing or invalid one with its own (32 hex characters) on the request itself,
so the service logs and echoes that ID and the access log records it as
`request_X-Request-Id`. Before it did so, the errors Traefik makes itself (413, 429, 502)
carried no ID unless the caller sent one, and the access log had none for such callers.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability_support import own_ip_client, private_gateway, wait_until

from taskgate_devstack.stack import DevStack

GENERATED = re.compile(r"[0-9a-f]{32}")
ONE_MIB = 1024 * 1024


def only_id(response: httpx.Response) -> str:
    """The answer's X-Request-ID; there must be exactly one (the service's echo and the
    gateway's must never add up to two)."""
    ids = response.headers.get_list("x-request-id")
    assert len(ids) == 1, ids
    return ids[0]


def generated_id(response: httpx.Response) -> str:
    request_id = only_id(response)
    assert GENERATED.fullmatch(request_id), request_id
    return request_id


def _first_match(path: Path, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            entry: dict[str, Any] = json.loads(line)
            if matches(entry):
                return entry
    return None


async def log_entry(path: Path, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first JSON line of a log file that `matches`, waiting for it to be written (Traefik
    writes an access-log line once the answer has gone out)."""
    found: list[dict[str, Any]] = []

    async def written() -> bool:
        entry = await asyncio.to_thread(_first_match, path, matches)
        if entry is not None:
            found.append(entry)
        return entry is not None

    await wait_until(written, timeout=15.0, interval=0.2)
    return found[0]


async def gateway_logged(access_log: Path, request_id: str) -> dict[str, Any]:
    """Traefik's access-log line whose request header X-Request-Id is `request_id`."""
    return await log_entry(access_log, lambda e: e.get("request_X-Request-Id") == request_id)


async def service_logged(stack: DevStack, service: str, request_id: str) -> dict[str, Any]:
    """The service's own access-log line for the request with `request_id`."""
    log = stack.data_dir / "logs" / f"{service}.log"
    return await log_entry(
        log, lambda e: e.get("logger") == "taskgate.access" and e.get("request_id") == request_id
    )


def stack_access_log(stack: DevStack) -> Path:
    return stack.data_dir / "logs" / "gateway-access.log"


# ---------------------------------------------------------------------------------------------
# Requests the services answer


@pytest.mark.parametrize(
    ("path", "service"), [("/auth/.well-known/jwks.json", "auth"), ("/api/tasks", "tasks")]
)
async def test_a_request_without_an_id_gets_one_from_the_gateway_that_the_service_logs(
    gateway: httpx.AsyncClient, stack: DevStack, path: str, service: str
) -> None:
    """One ID, made at the gateway, in the answer, the service's log and the access log."""
    response = await gateway.get(path)
    assert response.status_code in (200, 401)
    request_id = generated_id(response)
    entry = await gateway_logged(stack_access_log(stack), request_id)
    assert entry["RequestPath"] == path
    assert entry["DownstreamStatus"] == response.status_code
    assert entry["origin_X-Request-Id"] == request_id  # what the service answered with
    assert (await service_logged(stack, service, request_id))["path"] == path


@pytest.mark.parametrize("duplicate", [False, True])
async def test_a_valid_caller_id_is_kept_unchanged_end_to_end(
    gateway: httpx.AsyncClient, stack: DevStack, duplicate: bool
) -> None:
    """The whole allowed alphabet passes; with two IDs the first wins, as at the services, and
    only it travels on."""
    request_id = f"e2e-{uuid.uuid4().hex}:A.b_C"
    headers = [("X-Request-ID", request_id)]
    if duplicate:
        headers.append(("X-Request-ID", "a-second-one"))
    response = await gateway.get("/auth/.well-known/jwks.json", headers=headers)
    assert response.status_code == 200
    assert only_id(response) == request_id
    await gateway_logged(stack_access_log(stack), request_id)
    await service_logged(stack, "auth", request_id)


@pytest.mark.parametrize(
    "invalid",
    ["x" * 129, "y" * 200, "has space", "semi;colon", "slash/es", ""],
    ids=["129-chars", "200-chars", "space", "semicolon", "slash", "empty"],
)
async def test_an_invalid_caller_id_is_replaced_at_the_gateway(
    gateway: httpx.AsyncClient, stack: DevStack, invalid: str
) -> None:
    """Replaced before it reaches the service or the access log, not only in the answer."""
    response = await gateway.get("/api/tasks", headers={"X-Request-ID": invalid})
    assert response.status_code == 401
    request_id = generated_id(response)
    entry = await gateway_logged(stack_access_log(stack), request_id)
    assert entry["RequestPath"] == "/api/tasks"
    await service_logged(stack, "tasks", request_id)


# ---------------------------------------------------------------------------------------------
# Errors the gateway makes itself


async def test_a_gateway_made_413_carries_a_generated_id_that_the_access_log_has(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    response = await gateway.post(
        "/api/tasks",
        content=b'{"title": "' + b"x" * ONE_MIB + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    entry = await gateway_logged(stack_access_log(stack), generated_id(response))
    assert entry["DownstreamStatus"] == 413
    assert "origin_X-Request-Id" not in entry  # no service saw it


async def test_every_answer_to_an_edge_rate_limited_burst_carries_its_own_id(
    gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    """The credential routes allow 10 per IP at once; the gateway's 429s carry IDs like the
    services' answers, one per request."""
    responses = await asyncio.gather(*(gateway.post("/auth/login", json={}) for _ in range(25)))
    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    for response in limited:
        assert response.json()["code"] == "rate_limited"
        assert "ratelimit-limit" not in response.headers  # the edge's 429, not auth's
    ids = [generated_id(r) for r in responses]
    assert len(set(ids)) == len(ids)
    entry = await gateway_logged(stack_access_log(stack), only_id(limited[0]))
    assert entry["DownstreamStatus"] == 429


class ClosingUpstream:
    """Reports itself ready; closes every API request's connection without an answer, which
    Traefik turns into a 502."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.split(b" ", 2)[1].startswith(b"/health"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *_: object) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_gateway_made_502_carries_an_id_generated_or_the_callers(
    stack: DevStack, tmp_path: Path
) -> None:
    async with (
        ClosingUpstream() as closing,
        private_gateway(stack, tmp_path, {"TASKGATE_TASKS_URL": closing}) as own,
        own_ip_client(own.url) as client,
    ):
        response = await client.post("/api/tasks", json={"title": "x"})
        assert response.status_code == 502
        assert response.json()["code"] == "bad_gateway"
        entry = await gateway_logged(own.access_log, generated_id(response))
        assert entry["DownstreamStatus"] == 502
        caller_id = f"e2e-{uuid.uuid4().hex}"
        response = await client.post(
            "/api/tasks", json={"title": "x"}, headers={"X-Request-ID": caller_id}
        )
        assert response.status_code == 502
        assert only_id(response) == caller_id
        await gateway_logged(own.access_log, caller_id)
