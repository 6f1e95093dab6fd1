"""Defence in depth at the auth service itself, as if its port were exposed by mistake: size
limits in the JSON error shape, no redirect built from the caller's `Host`, and metrics that
no unknown path or method can add series to."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from auth_factories import SqlFn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message

MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert body["detail"]


def register_body(size: int) -> bytes:
    """A registration body of exactly `size` bytes (its password pads it)."""
    head = b'{"email": "big@example.com", "username": "bigbody", "password": "'
    return head + b"a" * (size - len(head) - 2) + b'"}'


async def test_a_body_over_one_mib_is_413_and_never_reaches_the_route(
    client: httpx.AsyncClient, sql: SqlFn
) -> None:
    refused = await client.post("/auth/register", content=register_body(MIB + 1), headers=JSON)
    assert_error(refused, 413, "payload_too_large")
    assert "1048576" in refused.json()["detail"]
    # At the cap, the body is read: the route's own validation answers (password too long).
    at_cap = await client.post("/auth/register", content=register_body(MIB), headers=JSON)
    assert_error(at_cap, 422, "validation_error")
    assert await sql("SELECT count(*) FROM users") == [(0,)]


async def test_a_streamed_body_is_counted_and_refused_past_the_cap(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        body = register_body(MIB + 64 * 1024)
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    # No Content-Length: httpx sends the body chunked, as a client streaming an upload would.
    response = await client.post("/auth/register", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


async def asgi_request(app: FastAPI, headers: list[tuple[bytes, bytes]]) -> httpx.Response:
    """One POST /auth/login with exactly these raw headers (no client library would send a
    malformed Content-Length; uvicorn refuses one itself, other servers may pass it on)."""
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/auth/login",
        "raw_path": b"/auth/login",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    start = sent[0]
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return httpx.Response(
        start["status"],
        headers=[(k.decode(), v.decode()) for k, v in start["headers"]],
        content=body,
    )


@pytest.mark.parametrize(
    "lengths",
    [[b"2x"], [b"-1"], [b" 2"], [b"2", b"3"]],
    ids=["not-a-number", "negative", "space", "two-different"],
)
async def test_a_malformed_content_length_is_a_json_400(app: FastAPI, lengths: list[bytes]) -> None:
    headers = [(b"content-type", b"application/json")]
    headers += [(b"content-length", length) for length in lengths]
    assert_error(await asgi_request(app, headers), 400, "bad_request")


async def test_headers_over_16_kib_are_a_json_431(client: httpx.AsyncClient) -> None:
    jwks = "/auth/.well-known/jwks.json"
    assert (await client.get(jwks, headers={"X-Padding": "a" * 8000})).status_code == 200
    many = {f"X-Header-{n}": "v" for n in range(200)}
    assert (await client.get(jwks, headers=many)).status_code == 200
    big = await client.get(jwks, headers={"X-Padding": "a" * 20_000})
    assert_error(big, 431, "headers_too_large")
    assert "16384" in big.json()["detail"]
    cookies = {"Cookie": "; ".join(f"c{n}={'x' * 1000}" for n in range(20))}
    assert_error(await client.get(jwks, headers=cookies), 431, "headers_too_large")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/auth/login/"),
        ("GET", "/auth/me/"),
        ("GET", "/auth/users/"),
        ("GET", "/auth/.well-known/jwks.json/"),
        ("GET", "/auth/users/0b3b2b1e-0000-4000-8000-000000000000/"),
    ],
)
async def test_a_trailing_slash_is_a_404_never_a_redirect_to_the_callers_host(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, headers={"Host": "evil.example"})
    assert "location" not in response.headers
    assert_error(response, 404, "not_found")


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
    templates = {
        path for route in app.routes if isinstance(path := getattr(route, "path", None), str)
    }
    probes = [f"probe{secrets.token_hex(6)}" for _ in range(50)]
    shapes: list[Callable[[str], tuple[str, str]]] = [
        lambda p: ("GET", f"/auth/users/{p}/"),  # what only a slash redirect would have matched
        lambda p: ("PATCH", f"/auth/users/{p}/"),
        lambda p: ("GET", f"/auth/{p}"),
        lambda p: ("POST", f"/auth/{p}/"),
        lambda p: ("GET", f"/{p}/"),
        lambda p: ("GET", f"/{p}"),
        lambda p: ("DELETE", f"/auth/users/{p}"),  # 405 on a known route
        lambda p: (f"X{p.upper()}", "/auth/login"),  # a made-up method: 405
        lambda p: (f"X{p.upper()}", f"/auth/{p}/"),
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
    # Scans stay visible to an operator, under the one handler "none".
    assert 'http_requests_total{handler="none",method="GET",status="404"}' in scrape
