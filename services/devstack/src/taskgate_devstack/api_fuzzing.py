"""Property-based API fuzzing from a service's own OpenAPI document (schemathesis), for tests.

Schemathesis generates and checks; the requests go through `httpx.ASGITransport` on the test's
own event loop, because the app's database pool lives on that loop (schemathesis' own ASGI
client would run the app on another one). Every response must pass: no 5xx, a documented
status, content type and body, and the design's error shape on every 4xx.
"""

from __future__ import annotations

import json
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
    """The design's error body on every 4xx: JSON with string `detail` and `code`, and an
    `errors` list of `{loc, msg, type}` on a 422."""
    if not 400 <= response.status_code < 500:
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
    operation: Any, mode: GenerationMode, own: dict[str, str] | None = None
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
        max_examples=MAX_EXAMPLES,
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


def build(http: httpx.AsyncClient, case: Case[Any], auth: dict[str, str]) -> httpx.Request:
    """The case as an httpx request (schemathesis serializes it, with our token)."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=auth)
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


@dataclass
class FuzzReport:
    operations: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    unsendable: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self, name: str) -> str:
        return (
            f"{name} fuzz: {self.operations} operations, {self.statuses.total()} requests sent "
            f"({dict(sorted(self.statuses.items()))}), {self.unsendable} unsendable, "
            f"{len(self.failures)} failures"
        )


async def fuzz_api(
    http: httpx.AsyncClient,
    openapi_path: str,
    prepare: Callable[[Any], Awaitable[tuple[dict[str, str], dict[str, str] | None]]],
) -> FuzzReport:
    """Fuzz every operation; `prepare(operation)` gives its (auth headers, pinned path values)."""
    document = (await http.get(openapi_path)).json()
    schema = schemathesis.openapi.from_dict(document)
    report = FuzzReport()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        report.operations += 1
        headers, own = await prepare(operation)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for case in generate(operation, mode, own):
                try:
                    request = build(http, case, headers)
                except (httpx.HTTPError, ValueError, UnicodeError):
                    # A request no HTTP client can build (e.g. a control character in a
                    # header): nothing reaches the app.
                    report.unsendable += 1
                    continue
                response = await http.send(request)
                report.statuses[response.status_code] += 1
                try:
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except (AssertionError, BaseExceptionGroup) as failure:
                    report.failures.append(
                        f"{operation.label} [{mode.value}] -> {response.status_code}: "
                        f"{str(failure)[:600]}"
                    )
    return report
