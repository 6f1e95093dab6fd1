"""Forgotten passwords: mail a single-use link, then set a new password with it.

Asking never tells whether the address has an account: the request only schedules a job
(`mail_jobs`), which looks the address up after the response has gone. Resetting ends every
session and moves `token_version` on, like a password change.
"""

from __future__ import annotations

from datetime import UTC, datetime

from auth_service.context import AuthContext
from auth_service.models import TokenPurpose
from auth_service.repositories import email_tokens, sessions, users
from auth_service.services import mail_jobs
from taskgate_common.errors import ApiError

PURPOSE = TokenPurpose.PASSWORD_RESET


def invalid_reset_token() -> ApiError:
    return ApiError(
        400, "invalid_reset_token", "The reset link is invalid, used or expired; ask for a new one"
    )


def request_reset(ctx: AuthContext, email: str) -> None:
    """Constant work whatever `email` is: the look-up and the mail run in the background."""
    mail_jobs.schedule_password_reset(ctx, email)


async def reset_password(ctx: AuthContext, token: str, new_password: str) -> None:
    now = datetime.now(UTC)
    # A cheap look first, so a dead token costs no Argon2id hash.
    async with ctx.sessions() as db:
        found = await email_tokens.find(db, token, PURPOSE)
    if found is None or not mail_jobs.token_usable(*found, now):
        ctx.metrics.password_resets.labels(result="invalid_token").inc()
        raise invalid_reset_token()
    password_hash = await ctx.hasher.hash(new_password)
    async with ctx.sessions() as db, db.begin():
        # Consuming deletes the row: of two concurrent resets with one token, one wins.
        user = await mail_jobs.spend_token(db, token, PURPOSE, now)
        if user is None:
            ctx.metrics.password_resets.labels(result="invalid_token").inc()
            raise invalid_reset_token()  # rolls back: nothing changes
        # The link arrived in the mailbox of the account's own address (`token_usable` checks
        # the token was sent to it), so that address, and only it, is proven too. A pending
        # email change is dropped: whoever asked for it knew the password being replaced.
        await users.update_fields(
            db,
            user.id,
            bump_token_version=True,
            password_hash=password_hash,
            email_verified=True,
            pending_email=None,
        )
        revoked = await sessions.revoke_user_sessions(db, user.id, now, "password_reset")
        await email_tokens.delete_for_user(db, user.id)
    # Whoever holds the mailbox owns the account: past failed logins no longer lock it.
    await ctx.lockout.clear(user.username, user.email)
    ctx.metrics.sessions_revoked.labels(reason="password_reset").inc(revoked)
    ctx.metrics.password_resets.labels(result="success").inc()
