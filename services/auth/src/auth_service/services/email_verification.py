"""Proving an email address: mail a single-use link; using it marks the address verified."""

from __future__ import annotations

from datetime import UTC, datetime

from auth_service.context import AuthContext
from auth_service.models import TokenPurpose, User
from auth_service.repositories import users
from auth_service.services import mail_jobs
from taskgate_common.errors import ApiError

PURPOSE = TokenPurpose.EMAIL_VERIFICATION


def request_verification(ctx: AuthContext, user: User) -> None:
    """Mail a new link (earlier ones die); the caller is authenticated, so errors may speak."""
    if user.email_verified:
        raise ApiError(400, "email_already_verified", "This email address is already verified")
    mail_jobs.schedule_verification(ctx, user.id)


async def verify_email(ctx: AuthContext, token: str) -> None:
    now = datetime.now(UTC)
    async with ctx.sessions() as db, db.begin():
        user = await mail_jobs.spend_token(db, token, PURPOSE, now)
        if user is None:
            ctx.metrics.email_verifications.labels(result="invalid_token").inc()
            raise ApiError(
                400,
                "invalid_verification_token",
                "The verification link is invalid, used or expired; ask for a new one",
            )
        await users.update_fields(db, user.id, email_verified=True)
    ctx.metrics.email_verifications.labels(result="success").inc()
