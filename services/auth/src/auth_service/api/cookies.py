"""Browser mode: the refresh token in an HttpOnly cookie, and the CSRF rules that guard it.

The cookie is `HttpOnly; Secure; SameSite=Strict; Path=/auth`. SameSite does not separate two
origins of one site (`localhost:5173` and `localhost:8080` are the same site), so:

- a request that sets or uses the cookie is refused (403 `cross_site_request`) when the
  browser says it comes from elsewhere: an `Origin` that is neither the service's public
  origin (the issuer's, or the host the browser addressed), the frontend's, nor one of
  `AUTH_CORS_ORIGINS`; or
  `Sec-Fetch-Site: cross-site` without such an origin. A form posted by another site to the
  OAuth2 form endpoint (`/auth/token?cookie=true`) would otherwise log the victim's browser
  into the attacker's account (login CSRF). Clients that are not browsers send neither header
  and are not affected.
- a request authenticated by the cookie must also carry `Content-Type: application/json`,
  which HTML forms cannot send and cross-origin `fetch` cannot send without a CORS preflight.
"""

from __future__ import annotations

from email.message import Message
from functools import cache
from urllib.parse import urlsplit

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


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@cache
def _allowed_origins(
    issuer: str, frontend_url: str, cors_origins: tuple[str, ...]
) -> frozenset[str]:
    return frozenset(
        {
            _origin_of(issuer),
            _origin_of(frontend_url),
            *(o.rstrip("/").lower() for o in cors_origins),
        }
    )


def refuse_cross_site(request: Request, settings: Settings) -> None:
    """Raise the 403 unless the request may come from a page of an allowed origin."""
    allowed = _allowed_origins(settings.issuer, settings.frontend_url, tuple(settings.cors_origins))
    origin = request.headers.get("origin")
    fetch_site = request.headers.get("sec-fetch-site")
    if origin is not None:
        origin = origin.lower()
        # Same origin as the URL the browser asked for (Host is the browser's, not the page's).
        if origin in allowed or urlsplit(origin).netloc == request.headers.get("host", "").lower():
            return
    elif fetch_site is None or fetch_site in ("same-origin", "same-site", "none"):
        return
    raise ApiError(
        403,
        "cross_site_request",
        "This request comes from a page whose origin may not use the refresh cookie",
    )


def missing_token_detail(request: Request) -> str:
    """Why a refresh came with no token, naming the usual cause when a browser page sent it:
    a page and an API under different host names (`localhost` and `127.0.0.1` are two sites),
    whose cookie the browser refused to keep (SameSite) and so never sends."""
    detail = "Send refresh_token in the body, or the refresh cookie"
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is None:
        return detail
    page_host = urlsplit(origin).hostname
    api_host = urlsplit(f"//{host}").hostname
    if page_host and api_host and page_host != api_host:
        detail += (
            f". The page ({origin}) and the API ({host}) have different host names, so the "
            "browser keeps no refresh cookie for the page: use one host name for both "
            "(e.g. localhost)"
        )
    return detail


def token_from(
    request: Request, settings: Settings, body_token: str | None
) -> tuple[str | None, bool]:
    """(the refresh token, whether it came from the cookie). The body wins over the cookie."""
    if body_token:
        return body_token, False
    cookie = request.cookies.get(settings.refresh_cookie_name)
    if not cookie:
        return None, False
    refuse_cross_site(request, settings)
    if not _is_json(request):
        raise ApiError(
            403,
            "csrf_check_failed",
            "Requests authenticated by the refresh cookie must send Content-Type: application/json",
        )
    return cookie, True
