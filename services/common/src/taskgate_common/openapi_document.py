"""The public OpenAPI document, shaped for Swagger UI and code generators, once for both services.

FastAPI's document as it comes has operationIds such as `create_task_api_tasks_post`, no
`servers`, public operations without `security` (Redocly: `security-defined`), request fields
whose `default` openapi-typescript turns into required members, and no word of the headers or
of the statuses the platform adds to every route (the gateway's 429, the size limits' 413,
`X-Request-ID`). Each route declares what is its own (`errors.error_responses`,
`response_headers`); what is the same everywhere is added here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.routing import APIRoute

from taskgate_common.errors import ErrorBody
from taskgate_common.rate_limits import RATE_HEADERS

_SCHEMA_REF = "#/components/schemas/"
_HEADER_REF = "#/components/headers/"
_STRING = {"type": "string"}
_SECONDS = {"type": "integer", "minimum": 0}

# Every header an answer may carry, described once (`components.headers`).
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's ID: the caller's own if it was valid (1-128 of "
        "`A-Za-z0-9._:-`), else one made by the gateway or the service; also in the logs",
        "schema": _STRING,
    },
    "Retry-After": {"description": "Seconds to wait before trying again", "schema": _SECONDS},
    # RATE_HEADERS (rate_limits.py):
    "RateLimit-Limit": {
        "description": "The size of the tightest limit this request counts against",
        "schema": _SECONDS,
    },
    "RateLimit-Remaining": {
        "description": "Requests left in that limit's window",
        "schema": _SECONDS,
    },
    "RateLimit-Reset": {"description": "Seconds until that window resets", "schema": _SECONDS},
    "WWW-Authenticate": {
        "description": 'The challenge, e.g. `Bearer error="invalid_token"`',
        "schema": _STRING,
    },
    "ETag": {
        "description": "The resource's version; send it back in `If-Match` to change it safely",
        "schema": _STRING,
    },
    "Location": {"description": "The URL of the resource just created", "schema": _STRING},
    "Link": {"description": 'The next page, as `<url>; rel="next"`', "schema": _STRING},
    "X-Next-Cursor": {
        "description": "The `cursor` of the next page; absent on the last page",
        "schema": _STRING,
    },
}

# Headers that come with a status wherever it is answered.
_STATUS_HEADERS = {
    "401": ("WWW-Authenticate",),
    "412": ("ETag",),  # the current version, to reload from or to retry with
    "429": ("Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
    "503": ("Retry-After",),
}

# What any route can answer through the platform, whatever the route says.
_RATE_LIMITED = {
    "description": "Too many requests: the gateway's limit for the caller's address, or the "
    "service's own (per account, per user); wait for `Retry-After` seconds",
}
_TOO_LARGE = {"description": "The request body or headers are larger than accepted"}


def response_headers(*names: str) -> dict[str, Any]:
    """A `responses=` entry's headers, for the headers a route sets itself on success."""
    unknown = set(names) - HEADERS.keys()
    if unknown:
        raise ValueError(f"undeclared headers: {sorted(unknown)}")
    return {"headers": {name: {"$ref": _HEADER_REF + name} for name in names}}


def operation_id(route: APIRoute) -> str:
    """`list_tasks` → `listTasks`: the handler's name, which reads as what the operation does.

    Used as FastAPI's `generate_unique_id_function`; a route whose handler name would not make
    a good method name in a generated client passes `operation_id=` itself."""
    first, *rest = route.name.strip("_").split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def server_url(public_url: str) -> str:
    """The gateway's origin, from a public URL under it (the issuer, `…/auth`)."""
    parts = urlsplit(public_url)
    return f"{parts.scheme}://{parts.netloc}"


def install_public_document(app: FastAPI, server: str) -> None:
    """Make `app.openapi()` return the shaped document (built once, on first use)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = shape(build(), server)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def shape(document: dict[str, Any], server: str) -> dict[str, Any]:
    document["servers"] = [
        {"url": server, "description": "The gateway: `/auth` → auth, `/api` → tasks"}
    ]
    components = document.setdefault("components", {})
    components["headers"] = dict(HEADERS)
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
    for operation in _operations(document):
        # No security requirement on a public operation is stated, not left out.
        operation.setdefault("security", [])
        responses = operation.setdefault("responses", {})
        # A route that declares a 429 itself counts against a limit of the service's own, whose
        # quota its successful answers carry (rate_limits.RateLimitHeadersMiddleware).
        app_limited = "429" in responses
        responses.setdefault("429", _error_response(_RATE_LIMITED))
        if "requestBody" in operation:
            responses.setdefault("413", _error_response(_TOO_LARGE))
        for status, response in responses.items():
            _declare_headers(status, response, app_limited)
    _describe_request_defaults(document)
    _keep_used_headers(document)
    return document


def _operations(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                yield operation


def _error_response(base: dict[str, str]) -> dict[str, Any]:
    schema = {"$ref": _SCHEMA_REF + "ErrorBody"}
    return {**base, "content": {"application/json": {"schema": schema}}}


def _declare_headers(status: str, response: dict[str, Any], app_limited: bool) -> None:
    names = ["X-Request-ID", *_STATUS_HEADERS.get(status, ())]
    if app_limited and status.startswith("2"):
        names += RATE_HEADERS
    headers = response.setdefault("headers", {})
    for name in names:
        headers.setdefault(name, {"$ref": _HEADER_REF + name})


def _keep_used_headers(document: dict[str, Any]) -> None:
    text = json.dumps(document.get("paths", {}))
    headers = document["components"]["headers"]
    for name in list(headers):
        if f'"{_HEADER_REF}{name}"' not in text:
            del headers[name]


def _describe_request_defaults(document: dict[str, Any]) -> None:
    """Move `default` into the description on schemas that only requests use.

    openapi-typescript (7, default options) makes a property with a `default` a required
    member of the generated type, which is right for answers (the server always fills it) and
    wrong for requests: `{title: "x"}` would not compile. Schemas answers use keep theirs.
    """
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    in_requests = _reachable(schemas, _refs_under(document, "requestBody"))
    in_answers = _reachable(schemas, _refs_under(document, "responses"))
    for name in in_requests - in_answers:
        for prop in schemas[name].get("properties", {}).values():
            if "default" in prop:
                default = prop.pop("default")
                note = f"Default: `{_literal(default)}`."
                description = prop.get("description")
                prop["description"] = f"{description.rstrip('.')}. {note}" if description else note


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _refs_under(document: dict[str, Any], key: str) -> set[str]:
    found: set[str] = set()
    for operation in _operations(document):
        _collect_refs(operation.get(key, {}), found.add)
    return found


def _reachable(schemas: dict[str, Any], names: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        _collect_refs(schemas[name], todo.append)
    return seen


def _collect_refs(node: Any, found: Callable[[str], None]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_SCHEMA_REF):
            found(ref.removeprefix(_SCHEMA_REF))
        for value in node.values():
            _collect_refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _collect_refs(item, found)
