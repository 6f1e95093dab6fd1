"""Browser mode: the refresh token in an HttpOnly cookie, and the CSRF rule that guards it.

The cookie is `HttpOnly; Secure; SameSite=Strict; Path=/auth`. SameSite does not separate two
origins of one site (`localhost:5173` and `localhost:8080` are the same site), so a request
authenticated by the cookie must also be one a page cannot send cross-origin without a CORS
preflight: it must carry `Content-Type: application/json`. HTML forms cannot send that type,
and `fetch` from an origin not in `AUTH_CORS_ORIGINS` is stopped at the preflight.
"""

from __future__ import annotations

from email.message import Message

from fastapi import Request, Response

from auth_service.core.config import Settings
from auth_service.schemas import TokenPair
from taskgate_common.errors import ApiError

COOKIE_PATH = "/auth"


def set_refresh_cookie(response: Response, settings: Settings, pair: TokenPair) -> TokenPair:
    """Move the refresh token from the body into the cookie; the body returned keeps the rest."""
    assert pair.refresh_token is not None
    response.set_cookie(
        settings.refresh_cookie_name,
        pair.refresh_token,
        max_age=pair.refresh_expires_in,
        path=COOKIE_PATH,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return pair.model_copy(update={"refresh_token": None})


def clear_refresh_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        settings.refresh_cookie_name,
        path=COOKIE_PATH,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def clearing_header(settings: Settings) -> dict[str, str]:
    """The `Set-Cookie` that removes the refresh cookie, for error responses."""
    scratch = Response()
    clear_refresh_cookie(scratch, settings)
    return {"Set-Cookie": scratch.headers["set-cookie"]}


def _is_json(request: Request) -> bool:
    message = Message()
    message["content-type"] = request.headers.get("content-type", "")
    return message.get_content_type() == "application/json"


def token_from(
    request: Request, settings: Settings, body_token: str | None
) -> tuple[str | None, bool]:
    """(the refresh token, whether it came from the cookie). The body wins over the cookie."""
    if body_token:
        return body_token, False
    cookie = request.cookies.get(settings.refresh_cookie_name)
    if not cookie:
        return None, False
    if not _is_json(request):
        raise ApiError(
            403,
            "csrf_check_failed",
            "Requests authenticated by the refresh cookie must send Content-Type: application/json",
        )
    return cookie, True
