"""Turning a bearer token into the caller: the design's 401s, `token_revoked` for a login auth
has ended, and 503 while the keys or the revocations were never loaded."""

from __future__ import annotations

from taskgate_common.errors import ApiError
from tasks_service.context import TasksContext
from tasks_service.core.access_tokens import KeysUnavailable, Principal, TokenRejected

REALM = 'Bearer realm="tasks-api"'


def unauthorized(code: str, detail: str, error: str | None = "invalid_token") -> ApiError:
    """A 401 with the RFC 6750 challenge clients use to decide to refresh or log in again."""
    challenge = (
        REALM if error is None else f'{REALM}, error="{error}", error_description="{detail}"'
    )
    return ApiError(401, code, detail, {"WWW-Authenticate": challenge})


async def authenticate(ctx: TasksContext, token: str | None) -> Principal:
    if not token:
        ctx.metrics.token_rejections.labels(reason="missing").inc()
        # RFC 6750: no error code when the request carried no credentials at all.
        raise unauthorized("not_authenticated", "A Bearer access token is required", None)
    try:
        principal = await ctx.verifier.verify(token)
    except TokenRejected as rejected:
        ctx.metrics.token_rejections.labels(reason=rejected.reason).inc()
        code = "token_expired" if rejected.reason == "expired" else "invalid_token"
        raise unauthorized(code, rejected.message) from None
    except KeysUnavailable:
        # The token may well be valid; saying 401 would log the user out for our outage.
        raise ApiError(
            503,
            "auth_keys_unavailable",
            "Token keys have not been fetched from the auth service yet; try again shortly",
            {"Retry-After": "5"},
        ) from None
    revocations = ctx.revocations
    if not revocations.loaded and not await revocations.wait_loaded(
        ctx.settings.revocation_startup_wait_seconds
    ):
        # Never read since start: a revoked token cannot be told from a good one yet.
        raise ApiError(
            503,
            "revocations_unavailable",
            "Revocations have not been fetched from the auth service yet; try again shortly",
            {"Retry-After": "5"},
        )
    # Checked on every request, the cached verifications included: dict look-ups, no I/O.
    if revocations.is_revoked(principal.user_id, principal.session_id, principal.token_version):
        ctx.metrics.token_rejections.labels(reason="revoked").inc()
        raise unauthorized("token_revoked", "The token was revoked; log in again")
    return principal
