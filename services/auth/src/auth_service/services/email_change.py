"""Changing the email address: proven by the password now, and by the new mailbox later.

An access token alone must not be enough to move an account to another mailbox (from there a
password reset takes the account for good). So the request needs the current password, checked
like a login; the new address waits in `pending_email` until the link mailed to it is opened;
until then login, resets and notices keep using the old address, which is told of the request.
The answer is the same whether or not another account has the new address: the mail job, after
the response, finds that out (`mail_jobs.schedule_email_change`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from auth_service.context import AuthContext
from auth_service.core.identity_keys import identity_key
from auth_service.models import TokenPurpose, User
from auth_service.repositories import email_tokens, users
from auth_service.services import mail_jobs, registration
from taskgate_common.errors import ApiError

PURPOSE = TokenPurpose.EMAIL_CHANGE


def invalid_change_token() -> ApiError:
    return ApiError(
        400,
        "invalid_email_change_token",
        "The confirmation link is invalid, used or expired; ask for the change again",
    )


async def request_change(ctx: AuthContext, user: User, new_email: str) -> User:
    """Record the pending address (mailing both addresses) or, when only the spelling of the
    current address changes, take it at once. The caller has checked the password and
    counted the mails against the account-mail limits (`user_admin.update_me`)."""
    if identity_key(new_email) == user.email_key:
        # The same mailbox (another case or width): nothing to prove, no mail.
        async with ctx.sessions() as db, db.begin():
            updated = await users.update_fields(db, user.id, email=new_email, pending_email=None)
            await email_tokens.delete_for_user(db, user.id, PURPOSE)
    else:
        async with ctx.sessions() as db, db.begin():
            updated = await users.update_fields(db, user.id, pending_email=new_email)
            # A link for an earlier pending address dies with it.
            await email_tokens.delete_for_user(db, user.id, PURPOSE)
        if updated is not None:
            mail_jobs.schedule_email_change(ctx, updated.id)
            ctx.metrics.email_changes.labels(result="requested").inc()
    if updated is None:  # deleted in between
        raise ApiError(404, "user_not_found", "No such user")
    return updated


async def confirm_change(ctx: AuthContext, token: str) -> None:
    """The owner of the new mailbox opened the link: the pending address becomes the account's
    address, verified; links mailed to the old address die with it."""
    now = datetime.now(UTC)
    try:
        async with ctx.sessions() as db, db.begin():
            user = await mail_jobs.spend_token(db, token, PURPOSE, now)
            if user is None:
                ctx.metrics.email_changes.labels(result="invalid_token").inc()
                raise invalid_change_token()  # rolls back: nothing changes
            assert user.pending_email is not None
            if await users.taken_fields(db, user.pending_email, None, exclude=user.id):
                raise registration.taken("email")
            await users.update_fields(
                db, user.id, email=user.pending_email, pending_email=None, email_verified=True
            )
            await email_tokens.delete_for_user(db, user.id)
    except IntegrityError as exc:  # another account took the address in between
        if users.violated_unique_field(exc) != "email":
            raise
        raise registration.taken("email") from None
    ctx.metrics.email_changes.labels(result="confirmed").inc()
