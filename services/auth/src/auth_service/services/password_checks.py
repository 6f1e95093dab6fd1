"""A signed-in user proving his password again: changing it, or changing the email.

Each such check is a login attempt for an attacker holding a stolen access token, so it is
treated as one: the login rate limits (per IP, and per account under the username), the
brute-force lockout of the account's login names, and the one bounded hashing pool that
login uses (`ctx.hasher`), so these endpoints cannot starve login of CPU.
"""

from __future__ import annotations

from starlette.requests import Request

from auth_service.context import AuthContext
from auth_service.models import User
from taskgate_common.errors import ApiError


def wrong_password() -> ApiError:
    return ApiError(
        401,
        "invalid_credentials",
        "The current password is incorrect",
        {"WWW-Authenticate": "Bearer"},
    )


async def check_current_password(
    ctx: AuthContext, request: Request, user: User, password: str
) -> None:
    """Return if `password` is the user's; else count the failure and raise the 401."""
    await ctx.limits.password_check(request, user)
    names = (user.username, user.email)
    await ctx.lockout.check(*names)
    valid, _ = await ctx.hasher.verify(password, user.password_hash)
    if not valid:
        await ctx.lockout.failed(*names)
        ctx.metrics.password_checks.labels(result="invalid_credentials").inc()
        raise wrong_password()
    ctx.metrics.password_checks.labels(result="success").inc()
