"""Logging in with a password: the one place credentials are checked."""

from __future__ import annotations

from typing import NoReturn

from starlette.requests import Request

from auth_service.context import AuthContext
from auth_service.repositories import users
from auth_service.schemas import TokenPair
from auth_service.services.refresh_sessions import client_of, start_session
from taskgate_common.errors import ApiError


def _invalid_credentials() -> ApiError:
    return ApiError(
        401,
        "invalid_credentials",
        "Incorrect username or password",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _failed(ctx: AuthContext, identifier: str) -> NoReturn:
    """The same work and answer for an unknown account and a wrong password."""
    await ctx.lockout.failed(identifier)
    ctx.metrics.logins.labels(result="invalid_credentials").inc()
    raise _invalid_credentials()


async def login(ctx: AuthContext, identifier: str, password: str, request: Request) -> TokenPair:
    """Check the password and open a session.

    Counts the login rate limits itself (per client IP, then per login name), for every
    route that logs in (`/auth/login`, the token endpoint's password grant). `request` also
    gives the new session its device (`User-Agent`) and coarse client address.

    An unknown account costs one dummy verification, so timing does not tell which accounts
    exist; the body for both failures is the same. Failures count towards the lockout of
    the login name as typed, existing or not (`core/lockout.py`).
    """
    await ctx.limits.login(request, identifier)
    await ctx.lockout.check(identifier)  # locked: refused before any hash, known or not
    async with ctx.sessions() as db:
        user = await users.find_by_login(db, identifier)
    if user is None:
        await ctx.hasher.burn_dummy(password)
        await _failed(ctx, identifier)
    valid, upgraded_hash = await ctx.hasher.verify(password, user.password_hash)
    if not valid:
        await _failed(ctx, identifier)
    if not user.is_active:
        # Only said to someone who proved the password, so it reveals nothing new.
        ctx.metrics.logins.labels(result="user_inactive").inc()
        raise ApiError(
            401, "user_inactive", "This account is deactivated", {"WWW-Authenticate": "Bearer"}
        )
    if ctx.settings.require_verified_email and not user.email_verified:
        # Also only after the right password: a guesser learns nothing about the account.
        ctx.metrics.logins.labels(result="email_not_verified").inc()
        raise ApiError(
            403,
            "email_not_verified",
            "Verify your email address first: open the link mailed to you, or reset the "
            "password (forgot-password), which verifies the address too",
        )
    async with ctx.sessions() as db, db.begin():
        if upgraded_hash is not None:
            await users.set_password_hash(db, user.id, upgraded_hash)
        client = client_of(ctx, request)
        pair = await start_session(db, ctx, user, client)
    await ctx.lockout.clear(identifier)
    ctx.metrics.logins.labels(result="success").inc()
    return pair
