"""Ending every session of a user: logout everywhere, and changing the password."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from auth_service.context import AuthContext
from auth_service.models import User
from auth_service.repositories import email_tokens, sessions, users
from auth_service.services.password_checks import check_current_password


async def logout_all(ctx: AuthContext, user: User) -> None:
    """Revoke every family and move `token_version` on, so access tokens die with them."""
    now = datetime.now(UTC)
    async with ctx.sessions() as db, db.begin():
        await users.update_fields(db, user.id, bump_token_version=True)
        revoked = await sessions.revoke_user_sessions(db, user.id, now, "logout_all")
    ctx.metrics.sessions_revoked.labels(reason="logout_all").inc(revoked)


async def change_password(
    ctx: AuthContext, request: Request, user: User, current_password: str, new_password: str
) -> None:
    await check_current_password(ctx, request, user, current_password)
    password_hash = await ctx.hasher.hash(new_password)
    now = datetime.now(UTC)
    async with ctx.sessions() as db, db.begin():
        # A pending email change dies too: it may be the work of whoever knew the old password.
        await users.update_fields(
            db, user.id, bump_token_version=True, password_hash=password_hash, pending_email=None
        )
        revoked = await sessions.revoke_user_sessions(db, user.id, now, "password_change")
        # A reset or email-change link mailed before the change must not undo it.
        await email_tokens.delete_for_user(db, user.id)
    ctx.metrics.sessions_revoked.labels(reason="password_change").inc(revoked)
