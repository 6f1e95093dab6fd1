"""Errors the gateway makes itself carry the design's JSON error shape; the services' own errors
pass through the gateway untouched.

Traefik answers some requests on its own (413 from `buffering`, 429 from `rateLimit`, 502/503/
504 when no upstream answers); the `json-errors` local plugin (gateway/plugins-local) gives those
`{"detail", "code"}` and keeps their headers. It rewrites only error responses that are not
JSON, so a service's JSON error (its own 429 with Retry-After, 404, 422, 401) is byte for byte
what the service sent (docs/architecture.md, docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import GatewayAccount, new_account
from reliability_support import (
    assert_error_shape,
    own_ip_client,
    private_gateway,
    wait_until,
)

from taskgate_devstack.postgres import free_port
from taskgate_devstack.stack import DevStack

ONE_MIB = 1024 * 1024
FRONTEND = "http://localhost:5173"  # an origin the dev stack's services allow (CORS)
GATEWAY_CODES = {
    413: "payload_too_large",
    429: "rate_limited",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
# Headers that differ between two answers to the same request, or that only the gateway adds.
VOLATILE = {"date", "server", "retry-after", "ratelimit-remaining", "ratelimit-reset"}


def assert_gateway_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """A gateway-made error: the status kept, the design's body with the gateway's code."""
    assert response.status_code == status, response.text[:300]
    body = assert_error_shape(response)
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == GATEWAY_CODES[status], body
    assert len(body["detail"]) > 20, body  # a sentence, not a bare status phrase
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["x-content-type-options"] == "nosniff"
    return body


def request_id() -> str:
    return f"e2e-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
async def account(gateway_url: str) -> GatewayAccount:
    async with own_ip_client(gateway_url) as client:
        return await new_account(client)


# ---------------------------------------------------------------------------------------------
# 413 and 429 on the real stack


async def _chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_over_one_mib_is_a_json_413_and_one_mib_still_reaches_the_service(
    gateway: httpx.AsyncClient, account: GatewayAccount, framing: str
) -> None:
    """The limit holds whether the size is announced or only found while reading; the
    request ID a client sent comes back on the gateway's answer too."""
    rid = request_id()
    headers = {**account.headers, "Content-Type": "application/json", "X-Request-ID": rid}
    over = b'{"title": "' + b"x" * ONE_MIB + b'"}'
    content: bytes | AsyncIterator[bytes] = over if framing == "content-length" else _chunks(over)
    response = await gateway.post("/api/tasks", content=content, headers=headers)
    assert_gateway_error(response, 413)
    assert response.headers["x-request-id"] == rid
    # Exactly 1 MiB passes the edge: the service answers (its own 422, its JSON untouched).
    at_limit = b'{"title": "' + b"x" * (ONE_MIB - 13) + b'"}'
    assert len(at_limit) == ONE_MIB
    response = await gateway.post("/api/tasks", content=at_limit, headers=headers)
    assert response.status_code == 422
    assert assert_error_shape(response)["code"] == "validation_error"


async def test_an_edge_rate_limited_burst_is_a_json_429_with_retry_after(
    gateway: httpx.AsyncClient,
) -> None:
    """The credential routes allow a burst of 10 per IP; the rest get the gateway's 429, which
    keeps Traefik's Retry-After and X-Retry-In so a frontend knows when to try again, with the
    CORS headers a frontend on another (allowed) origin needs to read them."""
    headers = {"X-Request-ID": (rid := request_id()), "Origin": FRONTEND}
    body = {"username": "e2e_burst_nobody", "password": "wrong-password"}
    responses = await asyncio.gather(
        *(gateway.post("/auth/login", json=body, headers=headers) for _ in range(25))
    )
    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    for response in limited:
        assert_gateway_error(response, 429)
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["x-retry-in"]
        assert response.headers["x-request-id"] == rid
        assert "ratelimit-limit" not in response.headers  # the edge's, not the service's
        assert response.headers["access-control-allow-origin"] == FRONTEND
        assert response.headers["access-control-allow-credentials"] == "true"
        exposed = response.headers["access-control-expose-headers"]
        assert {"Retry-After", "X-Retry-In", "X-Request-ID"} <= set(exposed.split(", "))
    print(f"\nedge burst: {len(responses) - len(limited)} x 401, {len(limited)} x 429")
    for response in responses:
        if response.status_code != 429:  # the service's own 401, untouched
            assert response.status_code == 401
            assert assert_error_shape(response)["code"] != "rate_limited"
            assert response.headers["ratelimit-limit"]


# ---------------------------------------------------------------------------------------------
# The services' own errors pass through


async def _direct_and_via_gateway(
    gateway: httpx.AsyncClient,
    stack: DevStack,
    service: str,
    send: Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[httpx.Response]],
) -> tuple[httpx.Response, httpx.Response]:
    """The same request, with the same request ID, to the service directly and through the
    gateway."""
    rid = request_id()
    async with own_ip_client(stack.url(service)) as direct_client:
        direct = await send(direct_client, {"X-Request-ID": rid})
    via = await send(gateway, {"X-Request-ID": rid})
    return direct, via


def assert_passed_through(direct: httpx.Response, via: httpx.Response) -> None:
    assert via.status_code == direct.status_code >= 400
    assert via.content == direct.content  # byte for byte
    for name, value in direct.headers.items():
        if name.lower() == "vary":  # the gateway's compression adds Accept-Encoding
            assert set(value.split(", ")) <= set(via.headers[name].split(", "))
        elif name.lower() not in VOLATILE:
            assert via.headers.get(name) == value, (name, via.headers)
    for name in ("retry-after", "ratelimit-remaining", "ratelimit-reset"):
        assert (name in via.headers) == (name in direct.headers), name


async def test_a_services_own_429_passes_through_with_its_code_and_headers(
    gateway: httpx.AsyncClient, another_gateway: httpx.AsyncClient, stack: DevStack
) -> None:
    """Ten failed logins lock a login name (auth's brute-force lockout, its own 429
    `login_locked` with Retry-After): through the gateway, exactly what auth says directly."""
    name = f"e2e_locked_{uuid.uuid4().hex[:8]}"
    body = {"username": name, "password": "wrong-password"}
    for _ in range(10):  # the edge's burst for one address: all reach auth
        assert (await gateway.post("/auth/login", json=body)).status_code == 401

    async def login(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
        return await client.post("/auth/login", json=body, headers=headers)

    direct, via = await _direct_and_via_gateway(another_gateway, stack, "auth", login)
    assert direct.json()["code"] == "login_locked"
    assert_passed_through(direct, via)
    assert int(via.headers["retry-after"]) >= 1


async def test_a_services_own_4xx_pass_through_unchanged(
    gateway: httpx.AsyncClient, stack: DevStack, account: GatewayAccount
) -> None:
    missing = f"/api/tasks/{uuid.uuid4()}"
    cases: list[tuple[str, Callable[[httpx.AsyncClient, dict[str, str]], Any]]] = [
        ("tasks", lambda c, h: c.get(missing, headers={**h, **account.headers})),  # 404
        ("tasks", lambda c, h: c.post("/api/tasks", json={}, headers=h | account.headers)),
        ("tasks", lambda c, h: c.get("/api/tasks", headers=h)),  # 401 + WWW-Authenticate
        ("auth", lambda c, h: c.post("/auth/register", json={}, headers=h)),  # 422
        ("auth", lambda c, h: c.delete("/auth/.well-known/jwks.json", headers=h)),  # 405
    ]
    statuses = []
    for service, send in cases:
        direct, via = await _direct_and_via_gateway(gateway, stack, service, send)
        assert_passed_through(direct, via)
        statuses.append(via.status_code)
    assert statuses == [404, 422, 401, 422, 405]


# ---------------------------------------------------------------------------------------------
# Upstreams down or slow: a gateway of the test's own, so the shared stack stays whole


class FakeUpstream:
    """Reports itself ready; on an API request it hangs (a stuck service) or, with `stream`,
    sends a chunked answer in three parts half a second apart."""

    def __init__(self, stream: bool = False) -> None:
        self.stream = stream
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.split(b" ", 2)[1].startswith(b"/health"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
                )
            elif self.stream:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                )
                for part in range(3):
                    data = f"data: {part}\n\n".encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                    await writer.drain()
                    await asyncio.sleep(0.5)
                writer.write(b"0\r\n\r\n")
            else:
                await asyncio.sleep(30)
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


async def test_an_upstream_that_is_down_gets_json_502_then_503(
    stack: DevStack, account: GatewayAccount, tmp_path: Path
) -> None:
    """Nothing listens at the tasks URL: connection refused is a 502 until the health check
    takes the server out, then "no available server" is a 503; both in the error shape, and
    auth keeps working through the same gateway."""
    dead = f"http://127.0.0.1:{free_port()}"
    env = {"TASKGATE_TASKS_URL": dead, "TASKGATE_CORS_ORIGINS": f"http://x.test,{FRONTEND}"}
    async with (
        private_gateway(stack, tmp_path, env) as own,
        own_ip_client(own.url) as client,
    ):
        seen: list[int] = []

        async def unavailable() -> bool:
            response = await client.post("/api/tasks", json={"title": "x"}, headers=account.headers)
            assert_gateway_error(response, response.status_code)
            seen.append(response.status_code)
            return response.status_code == 503

        await wait_until(unavailable, timeout=30.0, interval=0.5)
        assert set(seen) <= {502, 503}
        for origin, allowed in ((FRONTEND, True), ("http://evil.test", False)):
            response = await client.get("/api/tasks", headers={"Origin": origin})
            assert_gateway_error(response, 503)
            assert response.headers.get("access-control-allow-origin") == (
                origin if allowed else None
            )
        assert (await client.get("/auth/.well-known/jwks.json")).status_code == 200
    print(f"\nupstream down: statuses until the health check took it out: {seen}")


async def test_an_upstream_that_does_not_answer_in_time_gets_a_json_504(
    stack: DevStack, account: GatewayAccount, tmp_path: Path
) -> None:
    """The forwarding timeout (25 s in traefik.yml, 1 s here) ends a hung request with the
    gateway's 504 instead of a cut connection."""

    def short_timeout(config: dict[str, Any]) -> None:
        config["serversTransport"]["forwardingTimeouts"]["responseHeaderTimeout"] = "1s"

    async with (
        FakeUpstream() as slow,
        private_gateway(stack, tmp_path, {"TASKGATE_TASKS_URL": slow}, tweak=short_timeout) as own,
        own_ip_client(own.url) as client,
    ):
        response = await client.post("/api/tasks", json={"title": "x"}, headers=account.headers)
        assert_gateway_error(response, 504)


async def test_a_streamed_answer_still_streams_through_the_plugin(
    stack: DevStack, tmp_path: Path
) -> None:
    """Traefik cannot call a Yaegi plugin's Flush, so the plugin flushes each write of an
    answer without Content-Length itself: the first part arrives before the last is sent.
    (On a route without `buffering`: that middleware holds whole answers anyway, so only the
    auth GET routes could stream.)"""
    async with (
        FakeUpstream(stream=True) as streaming,
        private_gateway(stack, tmp_path, {"TASKGATE_AUTH_URL": streaming}) as own,
        own_ip_client(own.url) as client,
        client.stream("GET", "/auth/events") as response,
    ):
        started = asyncio.get_running_loop().time()
        arrivals = [asyncio.get_running_loop().time() - started async for _ in response.aiter_raw()]
    assert response.status_code == 200
    assert len(arrivals) >= 2, arrivals
    assert arrivals[0] < 0.4 < arrivals[-1], arrivals
