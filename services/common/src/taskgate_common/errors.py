"""The one error shape of the design: `{"detail": ..., "code": ...}`, plus `errors` on a 422.

Every failure a client can see goes through these handlers, including the framework's own
404/405/422 and unexpected exceptions, so a frontend never has to parse an HTML page or a
stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("taskgate.errors")

# Codes for the statuses the framework raises by itself.
_FRAMEWORK_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    """A failure with a stable code that the route layer turns into the design's error body.

    A 422 with a code of its own (not the generic `validation_error`) passes `errors`, the
    `{loc, msg, type}` items every 422 carries."""

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors = None if errors is None else list(errors)


class DatabaseUnavailable(Exception):
    """The database could not be reached, or did not answer in time: a 503, not a bug."""


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    detail: str
    code: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(ErrorBody):
    errors: list[ValidationErrorItem]


def error_response(
    status_code: int,
    code: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "code": code, **extra}, status_code=status_code, headers=headers
    )


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error shape for the given statuses."""
    return {
        status: {
            "model": ValidationErrorBody if status == 422 else ErrorBody,
            "description": HTTPStatus(status).phrase,
        }
        for status in statuses
    }


def _validation_items(errors: Sequence[Any]) -> list[dict[str, Any]]:
    items = []
    for error in errors:
        # Pydantic's `input` and `ctx` may echo a password back; keep only loc, msg and type.
        items.append(
            {
                "loc": [part if isinstance(part, int) else str(part) for part in error["loc"]],
                "msg": str(error["msg"]),
                "type": str(error["type"]),
            }
        )
    return items


def _summary(items: list[dict[str, Any]]) -> str:
    first = items[0] if items else None
    if first is None:
        return "Request validation failed"
    field = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path", "header"))
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    return f"Invalid {field or 'request'}: {first['msg']}{more}"


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    extra = {} if exc.errors is None else {"errors": _validation_items(exc.errors)}
    return error_response(exc.status_code, exc.code, exc.detail, exc.headers, **extra)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI's "error parsing the body" for JSON that is not UTF-8 (found by the OpenAPI
        # fuzzing): the same documented 422 `json_invalid` as any other malformed JSON body.
        items = [{"loc": ["body"], "msg": "JSON body is not valid UTF-8", "type": "json_invalid"}]
        return error_response(422, "validation_error", _summary(items), errors=items)
    code = _FRAMEWORK_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return error_response(exc.status_code, code, detail, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = _validation_items(exc.errors())
    return error_response(422, "validation_error", _summary(items), errors=items)


def is_database_unavailable(exc: BaseException) -> bool:
    """True for failures that mean "cannot reach the database", not "bad query"."""
    unreachable = DatabaseUnavailable | PoolTimeoutError | InterfaceError | OSError | TimeoutError
    if isinstance(exc, unreachable):
        return True
    if isinstance(exc, OperationalError | DBAPIError):
        return (
            bool(getattr(exc, "connection_invalidated", False))
            or isinstance(exc.orig, OSError | TimeoutError)
            or _is_connection_error(exc.orig)
        )
    return False


def _is_connection_error(orig: BaseException | None) -> bool:
    if orig is None:
        return False
    name = type(orig).__name__
    cause = orig.__cause__
    return (
        "Connection" in name
        or "CannotConnectNow" in name
        or "AdminShutdown" in name
        or (cause is not None and _is_connection_error(cause))
        or isinstance(cause, OSError | TimeoutError)
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    headers = {"X-Request-ID": request_id} if request_id else None
    if is_database_unavailable(exc):
        logger.warning("database unavailable: %s", type(exc).__name__)
        return error_response(
            503,
            "database_unavailable",
            "The service's database is unreachable; try again shortly",
            headers={**(headers or {}), "Retry-After": "5"},
        )
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "Internal server error", headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Database failures are answered where they happen (503, or 500 for a real bug) instead of
    # escaping to the server's last-resort handler, which would also re-raise them.
    for exc_type in (DatabaseUnavailable, DBAPIError, PoolTimeoutError, OSError, TimeoutError):
        app.add_exception_handler(exc_type, _unexpected_error)
    app.add_exception_handler(Exception, _unexpected_error)
