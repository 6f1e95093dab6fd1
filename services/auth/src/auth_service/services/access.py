"""Turning a bearer access token into the current user, with revocation checks."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from auth_service.context import AuthContext
from auth_service.core.config import SERVICE_AUDIENCE
from auth_service.models import Role, User
from auth_service.repositories import users
from taskgate_common.access_tokens import TokenRejected, verify_access_token
from taskgate_common.errors import ApiError


def unauthorized(code: str, detail: str, error: str = "invalid_token") -> ApiError:
    """A 401 with the RFC 6750 challenge clients use to decide to refresh or log in again."""
    challenge = f'Bearer error="{error}", error_description="{detail}"'
    return ApiError(401, code, detail, {"WWW-Authenticate": challenge})


async def current_user(ctx: AuthContext, token: str) -> User:
    """The user of a valid, unrevoked access token (the shared verifier's rules, then the
    database: the user exists and is active, `ver` is current, the session `sid` is live)."""
    settings = ctx.settings

    def find_key(kid: str) -> RSAPublicKey | None:
        key = ctx.keys.find(kid)
        return key.public_key if key is not None else None

    try:
        claims = verify_access_token(
            token,
            find_key,
            issuer=settings.issuer,
            audience=SERVICE_AUDIENCE,
            leeway_seconds=settings.token_leeway_seconds,
        )
    except TokenRejected as rejected:
        ctx.metrics.token_rejections.labels(reason=rejected.reason).inc()
        code = "token_expired" if rejected.reason == "expired" else "invalid_token"
        raise unauthorized(code, rejected.message) from None
    async with ctx.sessions() as db:
        found = await users.get_with_session_state(db, claims.subject, claims.session_id)
    if found is None:
        ctx.metrics.token_rejections.labels(reason="unknown_user").inc()
        raise unauthorized("invalid_token", "The token's user no longer exists")
    user, session_live = found
    if not user.is_active:
        ctx.metrics.token_rejections.labels(reason="user_inactive").inc()
        raise unauthorized("user_inactive", "This account is deactivated")
    # A session that is gone (purged after logout or reuse detection) counts as revoked.
    if claims.token_version < user.token_version or not session_live:
        ctx.metrics.token_rejections.labels(reason="revoked").inc()
        raise unauthorized("token_revoked", "The token was revoked; log in again")
    return user


def require_admin(user: User) -> User:
    if user.role is not Role.ADMIN:
        raise ApiError(403, "admin_required", "Only an admin may do this")
    return user
