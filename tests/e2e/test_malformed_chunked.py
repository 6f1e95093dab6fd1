"""A request body whose chunked framing is broken is the client's fault: the gateway answers a
400 in the design's error shape, never a 5xx (security review, issue 13 item 10).

Traefik's `buffering` middleware (`body-limit`) and its proxy (routes without buffering) fail
to read such a body and answer a plain 500 (499 when the client half-closed, 504 when the body
stopped arriving); the `json-errors` plugin watches the request body and, when reading it
failed, turns that gateway-made status into 400 `bad_request` (408 `request_timeout`). A 5xx
from a request whose body was read whole stays a 5xx (docs/operations.md).

The requests go over bare sockets (httpx cannot send a broken framing), each from a loopback
source address of its own (127.6.x.y, apart from conftest's 127.0 and reliability_support's
127.1) so the edge's per-IP rate limits of one case do not spill into another; every exchange
is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import GatewayAccount, new_account
from reliability_support import own_ip_client, private_gateway

from taskgate_devstack.postgres import free_port
from taskgate_devstack.stack import DevStack

_source_ips = itertools.count(0)

TITLE = b'{"title": "chunked"}'
SIZE = b"%x" % len(TITLE)
# A body as a client would frame it wrongly: the chunk size line or the chunk's end ends in a
# bare LF (net/http: "chunked line ends with bare LF"), the size is not hex ("invalid byte in
# chunk length") or does not fit 64 bits ("http chunk length too large"), or the client stops
# half-way through a chunk and half-closes the connection (io.ErrUnexpectedEOF).
MALFORMED = {
    "bare_lf_after_size": SIZE + b"\n" + TITLE + b"\r\n0\r\n\r\n",
    "bare_lf_after_data": SIZE + b"\r\n" + TITLE + b"\n0\r\n\r\n",
    "non_hex_size": b"zz\r\n" + TITLE + b"\r\n0\r\n\r\n",
    "size_overflows_int64": b"ffffffffffffffffff\r\n" + TITLE + b"\r\n0\r\n\r\n",
    "truncated_then_closed": b"40\r\n" + TITLE[:8],
}
# The routes a body can take: `buffering` reads it (POST /api/tasks, the credential router,
# PUT behind `retry`), or the proxy streams it to the service (GET /api/tasks: no buffering).
ROUTES = {
    "post_task": ("POST", "/api/tasks"),
    "login": ("POST", "/auth/login"),
    "put_task": ("PUT", "/api/tasks/{task_id}"),
    "list_tasks_unbuffered": ("GET", "/api/tasks"),
}
MALFORMED_DETAIL = "The request body is malformed or incomplete"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _source_address() -> str:
    n = next(_source_ips)
    return f"127.6.{n // 250}.{n % 250 + 2}"


async def exchange_chunked(
    base_url: str,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    half_close: bool = False,
    timeout: float = 15.0,
) -> bytes:
    """`body` as the request's chunked body, verbatim; the whole answer, read to the close
    (empty if the gateway closed without answering)."""
    url = httpx.URL(base_url)
    head = [f"{method} {path} HTTP/1.1", f"Host: {url.host}:{url.port}"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    head += ["Content-Type: application/json", "Transfer-Encoding: chunked", "Connection: close"]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(
            str(url.host), url.port, local_addr=(_source_address(), 0)
        )
        try:
            writer.write(request)
            await writer.drain()
            if half_close:
                writer.write_eof()
            return await reader.read()  # to EOF: the gateway closes (Connection: close)
        except ConnectionResetError:
            return b""  # closed unanswered
        finally:
            writer.close()

    return await asyncio.wait_for(exchange(), timeout)


def parse_response(answer: bytes) -> RawResponse:
    head_bytes, separator, rest = answer.partition(b"\r\n\r\n")
    assert separator, answer[:300]
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    length = int(parsed.get("content-length", len(rest)))
    return RawResponse(int(status_line.split()[1]), parsed, rest[:length])


async def send_chunked(
    base_url: str,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    half_close: bool = False,
) -> RawResponse:
    """`exchange_chunked`, for a request that must be answered."""
    answer = await exchange_chunked(base_url, method, path, body, headers, half_close)
    return parse_response(answer)


def assert_malformed_body_400(response: RawResponse) -> None:
    """The gateway's 400 for a body it could not read, in the design's shape."""
    assert response.status == 400, (response.status, response.body[:300])
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.body)
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == "bad_request", body
    assert body["detail"].startswith(MALFORMED_DETAIL), body


def chunked(*parts: bytes) -> bytes:
    """A well-formed chunked body of these chunks."""
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


@pytest.fixture(scope="module")
async def account(gateway_url: str) -> GatewayAccount:
    async with own_ip_client(gateway_url) as client:
        return await new_account(client)


@pytest.fixture(scope="module")
async def task_id(gateway_url: str, account: GatewayAccount) -> str:
    async with own_ip_client(gateway_url) as client:
        created = await client.post("/api/tasks", json={"title": "put"}, headers=account.headers)
    assert created.status_code == 201, created.text
    task: str = created.json()["id"]
    return task


# ---------------------------------------------------------------------------------------------
# Malformed framing: 400, whichever middleware read the body


# A body cut short on a route without buffering races the service (next test).
RACY = ("list_tasks_unbuffered", "truncated_then_closed")


@pytest.mark.parametrize(
    ("route", "case"),
    [
        (route, case)
        for route in sorted(ROUTES)
        for case in sorted(MALFORMED)
        if (route, case) != RACY
    ],
)
async def test_a_malformed_chunked_body_is_a_json_400_never_a_500(
    gateway_url: str, account: GatewayAccount, task_id: str, route: str, case: str
) -> None:
    method, path = ROUTES[route]
    headers = {"X-Request-ID": (rid := f"e2e-{uuid.uuid4().hex}")}
    if route != "login":
        headers.update(account.headers)
    response = await send_chunked(
        gateway_url,
        method,
        path.format(task_id=task_id),
        MALFORMED[case],
        headers,
        half_close=case == "truncated_then_closed",
    )
    assert_malformed_body_400(response)
    assert response.headers["x-request-id"] == rid


async def test_a_body_cut_short_on_a_route_without_buffering_is_never_a_5xx(
    gateway_url: str, account: GatewayAccount
) -> None:
    """The client's half-close cancels the request while the proxy streams the part of the body
    it got to the service, which needs none of it for a GET: usually the gateway's 400, but the
    service may answer first (its own answer passes, or the cancelled request ends with the
    connection closed unanswered). Never a 5xx."""
    method, path = ROUTES[RACY[0]]
    answers = []
    for headers in ({}, account.headers) * 3:
        answer = await exchange_chunked(
            gateway_url, method, path, MALFORMED[RACY[1]], headers, half_close=True
        )
        if not answer:
            answers.append(0)
            continue
        response = parse_response(answer)
        answers.append(response.status)
        assert response.status < 500, (response.status, response.body[:300])
        if response.status == 400:
            assert_malformed_body_400(response)
    print(f"\nbody cut short, GET without buffering: {answers} (0: closed unanswered)")


async def test_a_well_formed_chunked_body_still_reaches_the_services(
    gateway_url: str, account: GatewayAccount
) -> None:
    """The same framing done right: a task is created (201) from three chunks, and a login
    sent chunked is the service's own answer (its 401 for a wrong password, untouched)."""
    parts = (b'{"title": ', b'"sent in ', b'chunks"}')
    response = await send_chunked(
        gateway_url, "POST", "/api/tasks", chunked(*parts), account.headers
    )
    assert response.status == 201, response.body[:300]
    assert response.json()["title"] == "sent in chunks"
    login = json.dumps({"username": account.username, "password": "not the password"})
    response = await send_chunked(gateway_url, "POST", "/auth/login", chunked(login.encode()))
    assert response.status == 401, response.body[:300]
    assert response.json()["code"] != "bad_request"
    response = await send_chunked(gateway_url, "POST", "/api/tasks", chunked(b"{"), account.headers)
    assert response.status == 422, response.body[:300]  # bad JSON well framed: the service's


# ---------------------------------------------------------------------------------------------
# What the metrics show


SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


@dataclass
class Metrics:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Metrics:
        metrics = cls()
        for line in text.splitlines():
            if match := SAMPLE.match(line):
                labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
                metrics.samples[(match["name"], labels)] = float(match["value"])
        return metrics

    def total(self, name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)


async def scrape(stack: DevStack) -> Metrics:
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.get(f"{stack.url('gateway_metrics')}/metrics")
    assert response.status_code == 200
    return Metrics.parse(response.text)


async def test_traefiks_router_and_entry_point_metrics_count_a_400_not_a_500(
    stack: DevStack, gateway_url: str, account: GatewayAccount
) -> None:
    """Router and entry-point metrics wrap the plugin: they count the 400 the client gets.
    The service metric sits inside it, around the proxy: on a route without `buffering` it
    counts the proxy's 500 (docs/operations.md: alert on router metrics, not service ones);
    with `buffering` the request never reaches the service and it counts nothing."""
    before = await scrape(stack)
    body = MALFORMED["non_hex_size"]
    assert_malformed_body_400(
        await send_chunked(gateway_url, "POST", "/api/tasks", body, account.headers)
    )
    assert_malformed_body_400(
        await send_chunked(gateway_url, "GET", "/api/tasks", body, account.headers)
    )
    after = await scrape(stack)

    def delta(name: str, **labels: str) -> float:
        return after.total(name, **labels) - before.total(name, **labels)

    router = "traefik_router_requests_total"
    assert delta(router, router="tasks@file", code="400", method="POST") == 1
    assert delta(router, router="tasks-read@file", code="400", method="GET") == 1
    for method in ("POST", "GET"):
        assert delta(router, code="500", method=method) == 0
        assert delta("traefik_entrypoint_requests_total", code="500", method=method) == 0
    service = "traefik_service_requests_total"
    assert delta(service, service="tasks@file", method="POST") == 0
    assert delta(service, service="tasks@file", code="500", method="GET") == 1


# ---------------------------------------------------------------------------------------------
# A 5xx after the body was read whole is not the client's fault: it stays a 5xx


@dataclass
class PlainFiveHundred:
    """An upstream that reads the whole request, then answers a plain-text 500 (as a crashed
    server would), on a port of its own."""

    requests: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            body = await reader.readexactly(int(length[1])) if length else b""
            if head.split(b" ", 2)[1].startswith(b"/health"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
                )
            else:
                self.requests.append(body)
                writer.write(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: 5\r\nConnection: close\r\n\r\noops!"
                )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_an_upstreams_own_500_after_a_well_formed_chunked_body_stays_a_500(
    stack: DevStack, account: GatewayAccount, tmp_path: Path
) -> None:
    """The body was read whole (the upstream got it): the 500 is the upstream's, rendered
    `internal_error` as before, not blamed on the client; a malformed body to the same
    gateway is still a 400 and never reaches the upstream."""
    upstream = PlainFiveHundred()
    url = await upstream.start()
    metrics_port = free_port()

    def metrics_on(config: dict[str, Any]) -> None:
        config["entryPoints"]["metrics"]["address"] = f"127.0.0.1:{metrics_port}"

    try:
        async with private_gateway(
            stack, tmp_path, {"TASKGATE_TASKS_URL": url}, tweak=metrics_on
        ) as own:
            response = await send_chunked(
                own.url, "POST", "/api/tasks", chunked(TITLE[:9], TITLE[9:]), account.headers
            )
            assert response.status == 500, response.body[:300]
            assert response.json() == {"detail": "Internal server error", "code": "internal_error"}
            assert upstream.requests == [TITLE]
            response = await send_chunked(
                own.url, "POST", "/api/tasks", MALFORMED["bare_lf_after_size"], account.headers
            )
            assert_malformed_body_400(response)
            assert upstream.requests == [TITLE]
            async with httpx.AsyncClient(timeout=10.0) as client:
                text = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            metrics = Metrics.parse(text)
            router = "traefik_router_requests_total"
            assert metrics.total(router, router="tasks@file", code="500") == 1
            assert metrics.total(router, router="tasks@file", code="400") == 1
    finally:
        upstream.close()
