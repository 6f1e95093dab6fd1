"""The OAuth 2.0 endpoints standard clients use unchanged: the token endpoint (RFC 6749:
password and refresh_token grants) and token revocation (RFC 7009).

Requests are `application/x-www-form-urlencoded` (RFC 6749 section 3.2), read here rather than by
FastAPI so that every malformed request is an RFC error (`400 invalid_request`), never the JSON
API's 422. Parameters sent without a value count as omitted; a parameter sent twice is refused.
Every failure is answered by `api/oauth_errors.py` as `{error, error_description, detail, code}`.

This server has public clients only: `client_id` may be sent and is not checked, and a client
secret (in the form, or a non-empty HTTP Basic password) is `401 invalid_client`, because no
client has one. There are no scopes: a `scope` parameter is ignored and none is returned.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import jwt
from fastapi import APIRouter, Request, Response

from auth_service.api import PREFIX
from auth_service.api.cookies import clearing_header, refuse_cross_site, set_refresh_cookie
from auth_service.api.deps import Context
from auth_service.api.oauth_errors import (
    NO_STORE,
    OAuthProblem,
    OAuthRoute,
    invalid_request,
    oauth_error_responses,
)
from auth_service.schemas import TokenPair
from auth_service.services import login, refresh_sessions
from taskgate_common.errors import ApiError

router = APIRouter(prefix=PREFIX, tags=["oauth"], route_class=OAuthRoute)

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 32
# The JSON API's bounds (schemas.LoginRequest, RefreshTokenValue): longer is malformed.
MAX_LENGTHS = {"username": 320, "password": 128, "refresh_token": 4096, "token": 4096}
GRANT_TYPES = ("password", "refresh_token")
# Client authentication other than "none": every one of them carries a secret nobody has.
CLIENT_CREDENTIALS = ("client_secret", "client_assertion", "client_assertion_type")
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="taskgate"'}


def _form_body(properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    """The OpenAPI request body of a form the route reads itself."""
    return {
        **extra,
        "requestBody": {
            "required": True,
            "content": {
                FORM_TYPE: {
                    "schema": {"type": "object", "properties": properties, "required": required}
                }
            },
        },
    }


_CLIENT_ID = {"type": "string", "description": "Optional; public clients only, not checked"}

TOKEN_REQUEST = _form_body(
    {
        "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
        "username": {
            "type": "string",
            "maxLength": MAX_LENGTHS["username"],
            "description": "password grant: a username or an email address",
        },
        "password": {
            "type": "string",
            "maxLength": MAX_LENGTHS["password"],
            "description": "password grant",
        },
        "refresh_token": {
            "type": "string",
            "maxLength": MAX_LENGTHS["refresh_token"],
            "description": "refresh_token grant; in cookie mode it may be left out to use "
            "the refresh cookie",
        },
        "scope": {"type": "string", "description": "Ignored: there are no scopes"},
        "client_id": _CLIENT_ID,
    },
    ["grant_type"],
    parameters=[
        {
            "name": "cookie",
            "in": "query",
            "required": False,
            "description": "Browser mode: the refresh token travels in an HttpOnly cookie "
            "(Path=/auth), not in the body; the refresh_token grant may then leave "
            "refresh_token out to use the cookie",
            "schema": {"type": "boolean", "default": False},
        }
    ],
)
REVOKE_REQUEST = _form_body(
    {
        "token": {"type": "string", "description": "The refresh token to revoke"},
        "token_type_hint": {"type": "string", "enum": ["refresh_token", "access_token"]},
        "client_id": _CLIENT_ID,
    },
    ["token"],
)


@dataclass(frozen=True)
class OAuthForm:
    """The parameters of one form request: each at most once, none empty."""

    params: dict[str, str]

    def get(self, name: str) -> str | None:
        value = self.params.get(name)
        limit = MAX_LENGTHS.get(name)
        if value is not None and limit is not None and len(value) > limit:
            raise invalid_request(f"{name} is longer than {limit} characters")
        return value

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise invalid_request(f"The {name} parameter is required")
        return value


def _content_type(request: Request) -> str:
    message = Message()
    message["content-type"] = request.headers.get("content-type", "")
    return message.get_content_type()


def _parse(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid_request(
            "The body is not a UTF-8 application/x-www-form-urlencoded form of at most "
            f"{MAX_FIELDS} parameters"
        ) from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if not value:  # RFC 6749 section 3.2: sent without a value = omitted
            continue
        if name in params:
            raise invalid_request(f"The {name} parameter is sent more than once")
        params[name] = value
    return params


def _refuse_client_secrets(request: Request, params: dict[str, str]) -> None:
    """Public clients only: anything that presents a client secret is `invalid_client`.

    HTTP Basic with an empty password is no secret (Swagger UI's Authorize button sends
    `Basic Og==`, an empty client id and secret, by default) and passes, as does `client_id`.
    """
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = None
        if decoded is None or ":" not in decoded:
            raise OAuthProblem(
                "invalid_client",
                "Malformed HTTP Basic client credentials",
                status_code=401,
                headers=BASIC_CHALLENGE,
            )
        if unquote_plus(decoded.partition(":")[2]):
            raise _no_client_secrets()
    if any(name in params for name in CLIENT_CREDENTIALS):
        raise _no_client_secrets()


def _no_client_secrets() -> OAuthProblem:
    return OAuthProblem(
        "invalid_client",
        "No client has a secret here (public clients only): send client_id alone, or nothing",
        status_code=401,
        headers=BASIC_CHALLENGE,
    )


_BOOLEANS = dict.fromkeys(("true", "t", "yes", "y", "on", "1"), True) | dict.fromkeys(
    ("false", "f", "no", "n", "off", "0"), False
)


def _cookie_mode(request: Request) -> bool:
    """`?cookie=` read by hand (the same words FastAPI takes for a bool), so that a bad value
    is `invalid_request` like every other error here, and the operation documents no 422."""
    values = request.query_params.getlist("cookie")
    if not values:
        return False
    if len(values) > 1 or values[0].lower() not in _BOOLEANS:
        raise invalid_request("cookie must be true or false, once")
    return _BOOLEANS[values[0].lower()]


async def read_form(request: Request) -> OAuthForm:
    """The request's form, or the RFC error that says what is wrong with it."""
    if _content_type(request) != FORM_TYPE:
        raise invalid_request(f"Send the parameters as {FORM_TYPE}")
    params = _parse(await request.body())
    _refuse_client_secrets(request, params)
    return OAuthForm(params)


@router.post(
    "/token",
    response_model=TokenPair,
    response_model_exclude_none=True,
    summary="OAuth 2.0 token endpoint: grant_type=password or refresh_token (form-encoded; "
    "errors as RFC 6749 section 5.2)",
    openapi_extra=TOKEN_REQUEST,
    responses=oauth_error_responses(400, 401, 403, 429, 503),
    operation_id="requestToken",
)
async def token(ctx: Context, request: Request, response: Response) -> TokenPair:
    response.headers.update(NO_STORE)
    cookie = _cookie_mode(request)
    if cookie:
        refuse_cross_site(request, ctx.settings)
    form = await read_form(request)
    grant_type = form.require("grant_type")
    if grant_type == "password":
        pair = await _password_grant(ctx, request, form)
    elif grant_type == "refresh_token":
        pair = await _refresh_grant(ctx, request, form, cookie)
    else:
        raise OAuthProblem(
            "unsupported_grant_type",
            f"grant_type must be one of: {', '.join(GRANT_TYPES)}",
        )
    return set_refresh_cookie(response, ctx.settings, pair) if cookie else pair


async def _password_grant(ctx: Context, request: Request, form: OAuthForm) -> TokenPair:
    username = form.require("username")
    password = form.require("password")
    return await login.login(ctx, username.strip(), password, request)


async def _refresh_grant(
    ctx: Context, request: Request, form: OAuthForm, cookie: bool
) -> TokenPair:
    presented = form.get("refresh_token")
    from_cookie = False
    if presented is None and cookie:  # browser mode: the token is the HttpOnly cookie
        presented = request.cookies.get(ctx.settings.refresh_cookie_name) or None
        from_cookie = presented is not None
    if presented is None:
        raise invalid_request(
            "The refresh_token parameter is required (or, with ?cookie=true, the refresh cookie)",
            "refresh_token_missing",
        )
    try:
        return await refresh_sessions.refresh(ctx, request, presented)
    except ApiError as exc:
        if from_cookie and exc.status_code == 401:  # the cookie is dead: let the browser drop it
            exc.headers.update(clearing_header(ctx.settings))
        raise


def _is_access_token(token: str) -> bool:
    """An RS256 access token's shape (`typ: at+jwt`); its signature does not matter here."""
    if token.count(".") != 2:
        return False
    try:
        return jwt.get_unverified_header(token).get("typ") == "at+jwt"
    except jwt.PyJWTError:
        return False


@router.post(
    "/revoke",
    response_class=Response,
    summary="OAuth 2.0 token revocation (RFC 7009): a refresh token ends its login; 200 for "
    "any token, unknown ones included",
    openapi_extra=REVOKE_REQUEST,
    responses={
        200: {"description": "Revoked, or unknown (the answer does not say which)"},
        **oauth_error_responses(400, 401, 503),
    },
    operation_id="revokeToken",
)
async def revoke(ctx: Context, request: Request) -> Response:
    form = await read_form(request)
    presented = form.params.get("token")
    if presented is None:
        raise invalid_request("The token parameter is required")
    if _is_access_token(presented):
        raise OAuthProblem(
            "unsupported_token_type",
            "Access tokens cannot be revoked one by one (they expire within minutes): revoke "
            "the refresh token, which ends the whole login, or POST /auth/logout-all",
        )
    # token_type_hint is not needed: every other token is looked up as a refresh token.
    await refresh_sessions.logout(ctx, presented)
    return Response(status_code=200, headers=NO_STORE)
