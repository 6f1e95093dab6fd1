"""Defence in depth at the tasks service itself, as if its port were exposed by mistake.

Size limits are checked over a real uvicorn (the server the services run, with httptools), on
raw sockets: a declared `Content-Length` with no body sent, a chunked body, oversized headers.
Redirects and metric labels are checked through the app.
"""

from __future__ import annotations

import json
import secrets
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message, Receive, Scope, Send
from tasks_factories import ServedApp, User

from taskgate_common.request_limits import RequestLimitsMiddleware
from tasks_service.core.config import Settings
from tasks_service.main import create_app

MIB = 1024 * 1024


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def error_code(self) -> str:
        assert self.headers["content-type"] == "application/json", self
        error = json.loads(self.body)
        assert error["detail"]
        code: str = error["code"]
        return code


@pytest.fixture(scope="module")
def server_port(settings: Settings) -> Iterator[int]:
    """A tasks app of its own under a real uvicorn, default limits (1 MiB body, 16 KiB headers)."""
    served = ServedApp(create_app(settings), "tasks-server")
    served.start()
    yield served.port
    served.stop()


def _read_response(sock: socket.socket) -> RawResponse:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", -1))
    while length < 0 or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawResponse(int(status_line.split()[1]), headers, body)


def exchange(port: int, head: bytes, body: Iterable[bytes] = ()) -> RawResponse:
    """Send a raw request head and body parts on a new connection; read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head)
        try:
            for part in body:
                sock.sendall(part)
        except OSError:
            pass  # the server may answer and close before the whole body is sent
        return _read_response(sock)


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_a_declared_body_over_one_mib_is_refused_before_it_is_sent(
    server_port: int, alice: User
) -> None:
    declared = {**alice.headers, "Content-Type": "application/json", "Content-Length": str(MIB + 1)}
    # No body follows: the answer comes from the header alone, the client need not upload it.
    refused = exchange(server_port, request_head("POST", "/api/tasks", declared))
    assert refused.status == 413
    assert refused.error_code() == "payload_too_large"
    # A malformed Content-Length never reaches the app: uvicorn answers a plain 400 itself.
    malformed = {**declared, "Content-Length": "12abc"}
    assert exchange(server_port, request_head("POST", "/api/tasks", malformed)).status == 400


def _chunked(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        part = body[start : start + size]
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def test_a_chunked_body_is_counted_as_it_streams(server_port: int, alice: User) -> None:
    headers = {**alice.headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    head = request_head("POST", "/api/tasks", headers)
    big = b'{"title": "big", "description": "' + b"a" * (MIB + 1024) + b'"}'
    refused = exchange(server_port, head, _chunked(big))
    assert refused.status == 413
    assert refused.error_code() == "payload_too_large"
    # Chunked bodies under the cap are served as before.
    small = json.dumps({"title": "streamed"}).encode()
    created = exchange(server_port, head, _chunked(small, size=5))
    assert created.status == 201, created
    assert json.loads(created.body)["title"] == "streamed"


def test_headers_over_16_kib_are_a_json_431_over_uvicorn(server_port: int) -> None:
    # uvicorn (httptools) has no header limit of its own: the app's is the one that holds.
    many = {f"X-Header-{n}": "v" for n in range(200)}
    assert exchange(server_port, request_head("GET", "/health/live", many)).status == 200
    for size in (20 * 1024, MIB):
        big = exchange(server_port, request_head("GET", "/health/live", {"X-Big": "a" * size}))
        assert big.status == 431, size
        assert big.error_code() == "headers_too_large"


def test_a_trailing_slash_over_uvicorn_is_a_404_not_a_redirect_to_the_host(
    server_port: int,
) -> None:
    head = b"GET /api/tasks/ HTTP/1.1\r\nHost: evil.example\r\n\r\n"
    response = exchange(server_port, head)
    assert response.status == 404
    assert "location" not in response.headers
    assert response.error_code() == "not_found"


@pytest.mark.parametrize(
    "path",
    ["/api/tasks/", "/api/board/", f"/api/tasks/{uuid.uuid4()}/", f"/api/{uuid.uuid4()}/tasks/"],
)
async def test_a_trailing_slash_is_a_404_never_a_redirect(
    client: httpx.AsyncClient, alice: User, path: str
) -> None:
    response = await client.get(path, headers={**alice.headers, "Host": "evil.example"})
    assert "location" not in response.headers
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def label_values(metrics_text: str, label: str) -> set[str]:
    return {
        sample.labels[label]
        for family in text_string_to_metric_families(metrics_text)
        if family.name.startswith("http_request")
        for sample in family.samples
        if label in sample.labels
    }


async def test_unknown_paths_and_methods_add_no_metric_label_values(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Without a token, as a scanner on an exposed port would."""
    templates = {
        path for route in app.routes if isinstance(path := getattr(route, "path", None), str)
    }
    probes = [f"probe{secrets.token_hex(6)}" for _ in range(50)]
    shapes: list[Callable[[str], tuple[str, str]]] = [
        lambda p: ("GET", f"/api/tasks/{p}/"),  # what only a slash redirect would have matched
        lambda p: ("DELETE", f"/api/tasks/{p}/"),
        lambda p: ("GET", f"/api/{p}/tasks/"),
        lambda p: ("POST", f"/api/tasks/{p}/complete/"),
        lambda p: ("GET", f"/api/{p}"),
        lambda p: ("GET", f"/{p}/"),
        lambda p: ("PUT", f"/{p}"),
        lambda p: ("PUT", f"/api/{p}/tasks"),  # 405 on a known route
        lambda p: ("DELETE", f"/api/tasks/{p}/move"),  # 405 on a known route
        lambda p: (f"X{p.upper()}", "/api/tasks"),  # a made-up method: 405
    ]
    statuses = set()
    for number, probe in enumerate(probes):
        method, path = shapes[number % len(shapes)](probe)
        statuses.add((await client.request(method, path)).status_code)
    assert {404, 405} <= statuses

    scrape = (await client.get("/metrics")).text
    assert label_values(scrape, "handler") <= templates | {"none"}
    assert label_values(scrape, "method") <= {
        *("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other")
    }
    assert not [probe for probe in probes if probe in scrape.lower()]
    assert 'http_requests_total{handler="none",method="GET",status="404"}' in scrape


@pytest.mark.parametrize("starts_first", [False, True], ids=["not-started", "started"])
async def test_a_body_read_outside_the_routes_is_still_bounded(starts_first: bool) -> None:
    """Where no route handler answers the 413 (a body read by other code), the middleware does:
    in the JSON shape before the response started, by just stopping after it."""

    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        if starts_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.body", "body": b"read it all"})

    parts = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 4
    sent: list[Message] = []

    async def receive() -> Message:
        return parts.pop() if parts else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    app = RequestLimitsMiddleware(reader, max_body_bytes=1024, max_header_bytes=1024)
    scope = {"type": "http", "method": "POST", "path": "/upload", "headers": []}
    await app(scope, receive, send)
    if starts_first:
        assert sent == [{"type": "http.response.start", "status": 200, "headers": []}]
    else:
        assert sent[0]["status"] == 413
        assert json.loads(sent[1]["body"])["code"] == "payload_too_large"
