"""The OAuth endpoints' error answers: RFC 6749 section 5.2 (and RFC 7009 section 2.2.1).

`/auth/token` and `/auth/revoke` answer every failure as `{"error", "error_description",
"detail", "code"}`: what OAuth client libraries read (`error`), next to the design's body with
the same stable `code` the JSON API uses (`invalid_credentials`, `refresh_token_reused`, ...).
The services keep raising the JSON API's `ApiError`; this module alone decides what it becomes
here, and `OAuthRoute` applies it to everything a route of the OAuth router raises:

- a refused password or refresh token (every 401 of login and refresh, `email_not_verified`,
  `login_locked`): 400 `invalid_grant`;
- a client secret (client authentication; no client has one): 401 `invalid_client`;
- a malformed request or query parameter: 400 `invalid_request`;
- an unknown grant type: 400 `unsupported_grant_type`;
- revoking an access token: 400 `unsupported_token_type`;
- a rate limit (`rate_limited`, with `Retry-After`): 429 `slow_down`;
- cookie mode from a page of another origin (`cross_site_request`): 403 `invalid_request`;
- the database or the limiter's store unreachable: 503 `temporarily_unavailable`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from auth_service.schemas import OAuthErrorBody
from taskgate_common.errors import ApiError, is_database_unavailable

logger = logging.getLogger("taskgate.auth.oauth")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# Refusals of the grant itself: the credentials or the refresh token cannot be used (now).
GRANT_REFUSALS = frozenset(
    {
        "invalid_credentials",
        "user_inactive",
        "email_not_verified",
        "login_locked",
        "invalid_refresh_token",
        "refresh_token_reused",
        "refresh_token_revoked",
        "refresh_token_expired",
    }
)

# Headers of the JSON API's answers that mean nothing on an OAuth error (a 400 is no Bearer
# challenge).
_DROPPED_HEADERS = frozenset({"www-authenticate"})


class OAuthProblem(Exception):
    """A protocol error found by the OAuth routes themselves (parsing, client authentication)."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        code: str | None = None,
        status_code: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.code = code or error
        self.status_code = status_code
        self.headers = dict(headers or {})


def invalid_request(description: str, code: str = "invalid_request") -> OAuthProblem:
    return OAuthProblem("invalid_request", description, code=code)


def rfc_error(exc: ApiError) -> tuple[int, str]:
    """(status, RFC 6749 `error`) for an error of the JSON API's services."""
    if exc.code in GRANT_REFUSALS or exc.status_code == 401:
        return 400, "invalid_grant"
    if exc.status_code == 429:
        return 429, "slow_down"
    if exc.status_code == 403:  # the browser origin checks of cookie mode
        return 403, "invalid_request"
    if exc.status_code == 503:
        return 503, "temporarily_unavailable"
    if exc.status_code >= 500:
        return exc.status_code, "server_error"
    return 400, "invalid_request"


def error_response(
    status_code: int,
    error: str,
    description: str,
    code: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description, "detail": description, "code": code},
        status_code=status_code,
        headers={**(headers or {}), **NO_STORE},
    )


def from_api_error(exc: ApiError) -> JSONResponse:
    status_code, error = rfc_error(exc)
    kept = {k: v for k, v in exc.headers.items() if k.lower() not in _DROPPED_HEADERS}
    return error_response(status_code, error, exc.detail, exc.code, kept)


def from_problem(exc: OAuthProblem) -> JSONResponse:
    return error_response(exc.status_code, exc.error, exc.description, exc.code, exc.headers)


def _from_validation(exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    name = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
    return error_response(
        400, "invalid_request", f"Invalid {name}: {first.get('msg', 'invalid')}", "invalid_request"
    )


def _unavailable() -> JSONResponse:
    return error_response(
        503,
        "temporarily_unavailable",
        "The service's database is unreachable; try again shortly",
        "database_unavailable",
        {"Retry-After": "5"},
    )


class OAuthRoute(APIRoute):
    """A route whose every failure is answered in the OAuth error shape (see the module doc).

    What happens before the route is chosen (404, 405, the body-size and header limits) keeps
    the design's shape: those answers are the same for every path.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def oauth_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except OAuthProblem as exc:
                return from_problem(exc)
            except ApiError as exc:
                return from_api_error(exc)
            except RequestValidationError as exc:
                return _from_validation(exc)
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise
                logger.warning("database unavailable: %s", type(exc).__name__)
                return _unavailable()

        return oauth_handler


def oauth_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the OAuth error body."""
    descriptions = {
        400: "invalid_request, invalid_grant, unsupported_grant_type, unsupported_token_type",
        401: "invalid_client: a client secret was sent (no client has one)",
        403: "invalid_request: cookie mode from a page of another origin (cross_site_request)",
        429: "slow_down: rate limited (Retry-After)",
        503: "temporarily_unavailable",
    }
    return {
        status: {"model": OAuthErrorBody, "description": descriptions[status]}
        for status in statuses
    }
