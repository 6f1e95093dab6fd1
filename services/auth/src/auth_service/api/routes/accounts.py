"""Registration, login and the current user."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from auth_service.api import PREFIX
from auth_service.api.cookies import refuse_cross_site, set_refresh_cookie
from auth_service.api.deps import Context, CookieMode, CurrentUser
from auth_service.schemas import LoginRequest, RegisterRequest, TokenPair, UpdateMeRequest, UserOut
from auth_service.services import login, registration, user_admin
from taskgate_common.errors import error_responses

router = APIRouter(prefix=PREFIX, tags=["accounts"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    summary="Create an account",
    responses=error_responses(409, 422, 429, 503),
)
async def register(body: RegisterRequest, ctx: Context, request: Request) -> UserOut:
    await ctx.limits.register(request)
    user = await registration.sign_up(ctx, body)
    return UserOut.model_validate(user)


def _answer(ctx: Context, response: Response, pair: TokenPair, cookie: bool) -> TokenPair:
    response.headers.update(NO_STORE)
    return set_refresh_cookie(response, ctx.settings, pair) if cookie else pair


@router.post(
    "/login",
    response_model=TokenPair,
    response_model_exclude_none=True,
    summary="Log in with a username or email and a password (JSON)",
    responses=error_responses(401, 403, 422, 429, 503),
    operation_id="login",
)
async def login_json(
    body: LoginRequest,
    ctx: Context,
    request: Request,
    response: Response,
    cookie: CookieMode = False,
) -> TokenPair:
    if cookie:
        refuse_cross_site(request, ctx.settings)
    pair = await login.login(ctx, body.identifier, body.password, request)
    return _answer(ctx, response, pair, cookie)


@router.get(
    "/me",
    response_model=UserOut,
    summary="The user the access token belongs to",
    responses=error_responses(401, 503),
    operation_id="getMe",
)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.patch(
    "/me",
    response_model=UserOut,
    summary="Change your username, or ask for a new email (needs current_password; the new "
    "address is pending until the link mailed to it is opened)",
    responses=error_responses(401, 409, 422, 429, 503),
)
async def update_me(
    body: UpdateMeRequest, user: CurrentUser, ctx: Context, request: Request
) -> UserOut:
    await ctx.limits.profile_change(request, user)
    return UserOut.model_validate(await user_admin.update_me(ctx, request, user, body))
