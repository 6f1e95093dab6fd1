"""Helpers for the reliability tests (hostile input, faults, concurrency): forged tokens, an
attacker's JWKS server, direct service clients and bounded waits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization

from auth_service.core.signing_keys import SigningKey, load_signing_key
from taskgate_devstack.gateway import render_static_config, start_traefik, write_static_config
from taskgate_devstack.postgres import free_port
from taskgate_devstack.processes import terminate
from taskgate_devstack.stack import REPO_ROOT, DevStack

GATEWAY_DIR = REPO_ROOT / "gateway"

_own_ips = itertools.count(0)


def own_ip_client(base_url: str, timeout: float = 30.0) -> httpx.AsyncClient:
    """Like conftest's `client_from_own_ip`, from 127.1.x.y (module fixtures, many clients)."""
    n = next(_own_ips)
    transport = httpx.AsyncHTTPTransport(local_address=f"127.1.{n // 250}.{n % 250 + 2}")
    return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=timeout)


def stack_signing_key(stack: DevStack) -> SigningKey:
    """The key the stack's auth service signs with (generated under its data directory)."""
    return load_signing_key(stack.data_dir / "keys" / "signing-key.pem")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segments(header: dict[str, Any], claims: dict[str, Any] | bytes) -> str:
    body = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    return f"{b64(json.dumps(header).encode())}.{b64(body)}"


def sign_rs256(key: SigningKey, claims: dict[str, Any], **header: Any) -> str:
    headers = {"kid": key.kid, "typ": "at+jwt", **header}
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers=headers)


def sign_raw(key: SigningKey, header: dict[str, Any], payload: dict[str, Any] | bytes) -> str:
    """RS256 over an arbitrary header and payload (PyJWT would refuse some of these)."""
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.hashes import SHA256

    signing_input = segments({"alg": "RS256", **header}, payload)
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), SHA256())
    return f"{signing_input}.{b64(signature)}"


def hs256_with_public_key(key: SigningKey, claims: dict[str, Any]) -> str:
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = segments({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}, claims)
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@dataclass
class AttackerServer:
    """An HTTP server an attacker controls, serving its own JWKS and discovery document; it
    counts every request, so a test can show nobody ever fetched from it."""

    key: SigningKey
    requests: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                body: dict[str, Any]
                if self.path.endswith("openid-configuration"):
                    body = {"issuer": owner.url, "jwks_uri": f"{owner.url}/jwks.json"}
                else:
                    body = {"keys": [owner.key.public_jwk]}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@contextmanager
def attacker_server(key: SigningKey) -> Iterator[AttackerServer]:
    server = AttackerServer(key)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def assert_error_shape(response: httpx.Response) -> dict[str, Any]:
    """The design's error body: JSON with a human `detail` and a snake_case `code`."""
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.status_code,
        response.text[:200],
    )
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("detail"), str), body
    assert isinstance(body.get("code"), str), body
    assert re.fullmatch(r"[a-z][a-z0-9_]*", body["code"]), body
    return body


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.1
) -> float:
    """Poll until `condition()` holds; returns the seconds it took, fails after `timeout`."""
    started = time.monotonic()
    while True:
        try:
            if await condition():
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not reached within {timeout:.0f}s")
        await asyncio.sleep(interval)


async def gateway_routes_again(
    gateway: httpx.AsyncClient, headers: dict[str, str], path: str = "/api/tasks?limit=1"
) -> None:
    """After a fault, wait until the gateway's health check sends traffic to the service of
    `path` again (tasks by default; `/auth/me` for auth). A test that stops a service and
    starts it again must end with this: the gateway keeps a server marked down until its next
    health check (5 s), and the next test's first request would meet that 503."""

    async def routed() -> bool:
        return (await gateway.get(path, headers=headers)).status_code == 200

    await wait_until(routed, timeout=60.0, interval=0.5)


async def all_tasks(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every task of the caller, page by page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/api/tasks", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items
    raise AssertionError("pagination did not end")


async def raw_request(
    base_url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    timeout: float = 60.0,
) -> tuple[int, bytes]:
    """Send a request over a bare socket, reading the answer while the body is still being
    written; returns (status, the answer's headers and first bytes of its body). For servers
    that answer early."""
    url = httpx.URL(base_url)
    n = next(_own_ips)
    source = (f"127.1.{n // 250}.{n % 250 + 2}", 0)
    head = [f"{method} {path} HTTP/1.1", f"Host: {url.host}:{url.port}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    request = "\r\n".join(head).encode()
    # A blocking socket in a thread: a server that refuses the body closes with it unread, so
    # its answer is followed by a reset; Linux still hands over the data received before the
    # reset (asyncio's streams would raise the reset first and drop it).
    answer = await asyncio.to_thread(
        _exchange, (str(url.host), int(url.port or 80)), source, request, body, timeout
    )
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest


def _exchange(
    address: tuple[str, int],
    source: tuple[str, int],
    request: bytes,
    body: bytes,
    timeout: float,
) -> bytes:
    with socket.create_connection(address, timeout=timeout, source_address=source) as sock:
        sock.sendall(request)
        # Only the start of the body, then wait for the answer: a server that refuses the body
        # by its Content-Length answers at once, and writing on after it closed would only
        # break the pipe. A server that wants the body gets the rest.
        sock.sendall(body[:65536])
        sock.settimeout(5.0)
        received = b""
        try:
            received = sock.recv(65536)
        except TimeoutError:
            sock.settimeout(timeout)
            sock.sendall(body[65536:])
        sock.settimeout(timeout)
        while len(received) < 65536:
            try:
                chunk = sock.recv(65536)
            except ConnectionError:
                break
            if not chunk:
                break
            received += chunk
        return received


@dataclass
class PrivateGateway:
    """A Traefik of a test's own, from the real gateway files, with its own upstreams."""

    url: str
    ping_url: str
    access_log: Path
    process: Any


class _PortTaken(Exception):
    """Another process took one of the free ports before Traefik bound it."""


async def _start_routing_traefik(
    stack: DevStack,
    workdir: Path,
    upstreams: dict[str, str],
    dynamic_dir: Path,
    tweak: Callable[[dict[str, Any]], None] | None,
) -> PrivateGateway:
    """One try: Traefik on fresh free ports, returned once it routes to auth."""
    ports = {name: free_port() for name in ("gateway", "gateway_ping", "gateway_metrics")}
    access_log = workdir / "access.log"
    config = render_static_config(GATEWAY_DIR / "traefik.yml", dynamic_dir, ports, access_log)
    if tweak is not None:
        tweak(config)
    static = write_static_config(config, workdir / "traefik.yml")
    env = dict(os.environ)
    env.update({"TASKGATE_AUTH_URL": stack.url("auth"), "TASKGATE_TASKS_URL": stack.url("tasks")})
    env.update(upstreams)
    log = workdir / "traefik.log"
    offset = log.stat().st_size if log.exists() else 0  # the log is appended to: this try's part
    process = start_traefik(GATEWAY_DIR / "traefik.yml", static, env, log)
    gateway = PrivateGateway(
        f"http://127.0.0.1:{ports['gateway']}",
        f"http://127.0.0.1:{ports['gateway_ping']}/ping",
        access_log,
        process,
    )
    seen: list[str] = []

    async def routes() -> bool:
        if process.poll() is not None:
            text = log.read_bytes()[offset:].decode(errors="replace") if log.exists() else ""
            if "address already in use" in text:
                raise _PortTaken
            errors = [line for line in text.splitlines() if '"level":"error"' in line]
            raise AssertionError(f"Traefik exited with {process.returncode}: {errors[-5:]}")
        try:
            response = await client.get("/auth/.well-known/jwks.json")
        except httpx.TransportError as error:
            seen.append(repr(error))
            raise
        seen.append(f"{response.status_code} {response.text[:120]}")
        return response.status_code == 200

    try:
        async with own_ip_client(gateway.url) as client:
            await wait_until(routes, timeout=30.0)
    except AssertionError as error:
        await asyncio.to_thread(terminate, process)
        raise AssertionError(f"{error}; its last answers: {seen[-3:]}") from None
    except BaseException:
        await asyncio.to_thread(terminate, process)
        raise
    return gateway


@asynccontextmanager
async def private_gateway(
    stack: DevStack,
    workdir: Path,
    upstreams: dict[str, str] | None = None,
    dynamic_dir: Path = GATEWAY_DIR / "dynamic",
    tweak: Callable[[dict[str, Any]], None] | None = None,
) -> AsyncIterator[PrivateGateway]:
    """Start Traefik with `gateway/traefik.yml` (changed by `tweak`) and `dynamic_dir`, on
    free ports; `upstreams` sets TASKGATE_* variables (by default the stack's auth and tasks).
    Ready once it routes to auth; stopped on exit. A free port can be taken by another
    process before Traefik binds it (Traefik then exits): that try is repeated on new ports."""
    for attempt in itertools.count(1):
        try:
            gateway = await _start_routing_traefik(
                stack, workdir, upstreams or {}, dynamic_dir, tweak
            )
            break
        except _PortTaken:
            if attempt == 3:
                raise AssertionError("three tries at free ports all found one taken") from None
    try:
        yield gateway
    finally:
        await asyncio.to_thread(terminate, gateway.process)
