"""Property-based fuzzing of the auth API from its own OpenAPI document (schemathesis).

Every operation of the document the app serves at `/openapi.json` gets schemathesis-generated
requests, valid (positive) and invalid (negative), sent in process to the real app on a real
PostgreSQL with a real Bearer token (an admin's, so the admin routes are reached too). Each
response must pass: no 5xx, a documented status, a documented content type, a body matching
the documented schema, and the design's error shape on every 4xx.

Schemathesis only generates and checks here: the requests go through `httpx.ASGITransport` on
the test's own event loop, because the app's database pool lives on that loop (schemathesis'
own ASGI client would run the app on another one).

Each operation gets a fresh account and session, so operations with side effects on the
caller (`logout-all`, `change-password`, PATCH `/auth/me`) cannot spoil the others: none is
excluded.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from auth_factories import LoginFn, MakeAccountFn, bearer
from fastapi import FastAPI
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


def generate(operation: Any, mode: GenerationMode) -> list[Case[Any]]:
    """Deterministic schemathesis cases for one operation (generation only, no requests)."""
    cases: list[Case[Any]] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
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


@pytest.mark.timeout(240)
async def test_every_operation_survives_fuzzing(
    app: FastAPI, make_account: MakeAccountFn, open_session: LoginFn
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        document = (await http.get("/auth/openapi.json")).json()
        schema = schemathesis.openapi.from_dict(document)
        operations = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            operations.append(result.ok())
        assert len(operations) >= 20
        failures: list[str] = []
        statuses: Counter[int] = Counter()
        unsendable = 0
        for operation in operations:
            admin = await make_account("admin")
            headers = bearer((await open_session(admin))["access_token"])
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for case in generate(operation, mode):
                    try:
                        request = build(http, case, headers)
                    except (httpx.HTTPError, ValueError, UnicodeError):
                        # A request no HTTP client can build (e.g. a control character in a
                        # header): nothing reaches the app.
                        unsendable += 1
                        continue
                    response = await http.send(request)
                    statuses[response.status_code] += 1
                    try:
                        case.validate_response(response, checks=CHECKS, headers=headers)
                    except (AssertionError, BaseExceptionGroup) as failure:
                        failures.append(
                            f"{operation.label} [{mode.value}] -> {response.status_code}: "
                            f"{str(failure)[:600]}"
                        )
    print(
        f"\nauth fuzz: {len(operations)} operations, {statuses.total()} requests sent "
        f"({dict(sorted(statuses.items()))}), {unsendable} unsendable, {len(failures)} failures"
    )
    assert not failures, "\n\n".join(failures)
