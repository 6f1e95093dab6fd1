"""Property-based API fuzzing from a service's own OpenAPI document (schemathesis), for tests.

Schemathesis generates and checks; the requests are sent by the caller's httpx client: in
process through `httpx.ASGITransport` on the test's own event loop (the services' suites: the
app's database pool lives on that loop, schemathesis' own ASGI client would run the app on
another one), or over the network to the real gateway (tests/e2e). Every response must pass:
no 5xx, a documented status, content type and body, and the design's error shape on every
error, the gateway's own included.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# Per operation and generation mode (positive, negative): bounded, and the same on every run.
MAX_EXAMPLES = 20
BASE_URL = "http://testserver"


def error_shape(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """The design's error body on every error (4xx, and 5xx though none may occur): JSON with
    string `detail` and `code`, and an `errors` list of `{loc, msg, type}` on a 422."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict), f"error body is not a JSON object: {body!r}"
    assert isinstance(body.get("detail"), str), f"error body without a string detail: {body!r}"
    assert isinstance(body.get("code"), str), f"error body without a string code: {body!r}"
    if response.status_code == 422:
        errors = body.get("errors")
        assert isinstance(errors, list), f"422 without an errors list: {body!r}"
        for item in errors:
            assert isinstance(item, dict), f"422 errors item is not an object: {body!r}"
            assert {"loc", "msg", "type"} <= item.keys(), f"422 errors item incomplete: {body!r}"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_shape,
]


def generate(
    operation: Any,
    mode: GenerationMode,
    own: dict[str, str] | None = None,
    max_examples: int = MAX_EXAMPLES,
) -> list[Case[Any]]:
    """Deterministic schemathesis cases for one operation (generation only, no requests).

    Valid requests may pin path parameters (`own`: e.g. the token's own user id and one of its
    real tasks), so they reach the handlers instead of all stopping at 403 or 404.
    """
    cases: list[Case[Any]] = []
    pinned: dict[str, Any] = {}
    if mode is GenerationMode.POSITIVE:
        path_parameters = {
            name: value for name, value in (own or {}).items() if f"{{{name}}}" in operation.path
        }
        if path_parameters:
            pinned["path_parameters"] = path_parameters

    @settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode, **pinned))
    def collect(case: Case[Any]) -> None:
        cases.append(case)

    try:
        collect()
    except Unsatisfiable:
        # No invalid request exists for this operation (e.g. a GET without parameters).
        assert mode is GenerationMode.NEGATIVE
    return cases


def build(
    http: httpx.AsyncClient, case: Case[Any], auth: dict[str, str], base_url: str = BASE_URL
) -> httpx.Request:
    """The case as an httpx request (schemathesis serializes it, with our token)."""
    kwargs = case.as_transport_kwargs(base_url=base_url, headers=auth)
    content: Any = None
    data: Any = None
    if "json" in kwargs:
        content = json.dumps(kwargs["json"]).encode()
    elif isinstance(kwargs.get("data"), str | bytes):
        content = kwargs["data"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
    headers = dict(kwargs.get("headers") or {})
    if kwargs.get("cookies"):
        headers["Cookie"] = "; ".join(
            f"{name}={value}" for name, value in kwargs["cookies"].items()
        )
    return http.build_request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=headers,
        content=content,
        data=data,
    )


def _body(request: httpx.Request) -> bytes:
    try:
        return request.content
    except httpx.RequestNotRead:
        return b"<streamed>"


@dataclass
class FuzzReport:
    operations: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    # Errors without the X-Request-ID every service answer carries: made by the gateway.
    gateway_made: Counter[int] = field(default_factory=Counter)
    unsendable: int = 0
    unrouted: list[Any] = field(default_factory=list)  # operations not fuzzed
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self, name: str) -> str:
        return (
            f"{name} fuzz: {self.operations} operations, {self.statuses.total()} requests sent "
            f"({dict(sorted(self.statuses.items()))}), gateway-made errors "
            f"{dict(sorted(self.gateway_made.items()))}, {self.unsendable} unsendable, "
            f"{len(self.unrouted)} operations not routed, "
            f"{len(self.failures)} failures, {self.seconds:.1f} s"
        )


# An event stream is checked on its head and its first event; it would never end on its own.
STREAM_READ_SECONDS = 5.0


async def send(http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """The response, read whole; a `text/event-stream` is read to its first event only."""
    response = await http.send(request, stream=True)
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        await response.aread()
        return response
    body = b""
    try:
        async with asyncio.timeout(STREAM_READ_SECONDS):
            async for chunk in response.aiter_bytes():
                body += chunk
                if b"\n\n" in body:
                    break
    finally:
        await response.aclose()
    first_event = httpx.Response(
        response.status_code, headers=response.headers, content=body, request=request
    )
    first_event.elapsed = response.elapsed
    return first_event


async def fuzz_api(
    http: httpx.AsyncClient,
    openapi_path: str,
    prepare: Callable[[Any], Awaitable[tuple[dict[str, str], dict[str, str] | None]]],
    base_url: str = BASE_URL,
    routed: Callable[[Any], bool] = lambda operation: True,
    max_examples: int = MAX_EXAMPLES,
) -> FuzzReport:
    """Fuzz every operation; `prepare(operation)` gives its (auth headers, pinned path values).
    `base_url` is where `http` sends (the in-process default, or the gateway's URL); operations
    `routed` refuses (e.g. `/health` behind the gateway) are listed in `report.unrouted`, not
    sent."""
    started = time.monotonic()
    document = (await http.get(openapi_path)).json()
    schema = schemathesis.openapi.from_dict(document)
    report = FuzzReport()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if not routed(operation):
            report.unrouted.append(operation)
            continue
        report.operations += 1
        headers, own = await prepare(operation)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for case in generate(operation, mode, own, max_examples):
                try:
                    request = build(http, case, headers, base_url)
                except (httpx.HTTPError, ValueError, UnicodeError):
                    # A request no HTTP client can build (e.g. a control character in a
                    # header): nothing reaches the app.
                    report.unsendable += 1
                    continue
                response = await send(http, request)
                report.statuses[response.status_code] += 1
                if response.status_code >= 400 and "x-request-id" not in response.headers:
                    report.gateway_made[response.status_code] += 1
                try:
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except (AssertionError, BaseExceptionGroup) as failure:
                    report.failures.append(
                        f"{operation.label} [{mode.value}] {request.method} {request.url} "
                        f"{_body(request)[:200]!r} -> {response.status_code} "
                        f"{response.content[:300]!r}: {str(failure)[:600]}"
                    )
    report.seconds = time.monotonic() - started
    return report
