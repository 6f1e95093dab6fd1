"""Mailing a single-use link, after the response: issue the token, commit, then send.

Every job runs in the background (`ctx.jobs`): the request that asked for the mail neither
waits for the relay nor learns how it went. The token is committed before the mail leaves, so a
delivered link always works; a failed send is logged and counted (`auth_emails_total`), and the
user asks again. Tokens and addresses are never logged; the user id is.

No mail carries text a user chose (a username, the other address of an email change): such
text could read as a link or an instruction in someone else's mailbox. Links only ever go to
the address they prove: resets and verifications to the account's address, an email change's
confirmation to the pending address; the old address gets a notice without a link.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.context import AuthContext
from auth_service.core.identity_keys import identity_key
from auth_service.core.mail_templates import duration, render
from auth_service.core.mailer import SEND_ERRORS
from auth_service.models import EmailToken, TokenPurpose, User
from auth_service.repositories import email_tokens, users

TOKEN_BYTES = 32  # 256 bits of randomness
LINK_PATHS = {
    TokenPurpose.PASSWORD_RESET: "/reset-password",
    TokenPurpose.EMAIL_VERIFICATION: "/verify-email",
    TokenPurpose.EMAIL_CHANGE: "/confirm-email-change",
}
CHANGE_NOTICE = "email_change_notice"
CHANGE_TAKEN = "email_change_taken"

logger = logging.getLogger("taskgate.auth.mail")


def proven_address(user: User, purpose: TokenPurpose) -> str | None:
    """The address a token of `purpose` proves: the pending one for an email change."""
    return user.pending_email if purpose is TokenPurpose.EMAIL_CHANGE else user.email


def token_usable(token: EmailToken | None, user: User | None, now: datetime) -> bool:
    """Live, for an active user, and sent to the address it is still meant to prove."""
    if token is None or user is None or not user.is_active or token.expires_at <= now:
        return False
    address = proven_address(user, TokenPurpose(token.purpose))
    return address is not None and identity_key(token.email) == identity_key(address)


async def spend_token(
    db: AsyncSession, token: str, purpose: TokenPurpose, now: datetime
) -> User | None:
    """Use up a mailed token and lock its user; the user, or None when the token was not
    usable (the caller then raises, and rolling back gives the token back)."""
    consumed = await email_tokens.consume(db, token, purpose)
    user = await users.get_for_update(db, consumed.user_id) if consumed else None
    return user if token_usable(consumed, user, now) else None


def _ttl(ctx: AuthContext, purpose: TokenPurpose) -> int:
    settings = ctx.settings
    if purpose is TokenPurpose.PASSWORD_RESET:
        return settings.reset_token_ttl_seconds
    return settings.verify_email_token_ttl_seconds


def schedule_password_reset(ctx: AuthContext, email: str) -> None:
    """The whole forgot-password work, including looking the address up, happens after the
    response: the request does the same thing whether or not the account exists."""
    _spawn(ctx, TokenPurpose.PASSWORD_RESET.value, _password_reset_job(ctx, email))


def schedule_verification(ctx: AuthContext, user_id: uuid.UUID) -> None:
    _spawn(ctx, TokenPurpose.EMAIL_VERIFICATION.value, _verification_job(ctx, user_id))


def schedule_email_change(ctx: AuthContext, user_id: uuid.UUID) -> None:
    """A notice to the current address, and the confirmation link to the pending one (or,
    when another account has that address, a note saying so: the requester learns nothing)."""
    _spawn(ctx, CHANGE_NOTICE, _change_notice_job(ctx, user_id))
    _spawn(ctx, TokenPurpose.EMAIL_CHANGE.value, _email_change_job(ctx, user_id))


def _spawn(ctx: AuthContext, kind: str, job: Coroutine[Any, Any, None]) -> None:
    if not ctx.mailer.enabled:
        job.close()
        return
    if not ctx.jobs.spawn(_guarded(ctx, kind, job), name=f"mail:{kind}"):
        job.close()
        ctx.metrics.emails.labels(kind=kind, result="dropped").inc()
        logger.error("mail queue full; mail dropped", extra={"kind": kind})


async def _guarded(ctx: AuthContext, kind: str, job: Coroutine[Any, Any, None]) -> None:
    """Expected failures end here: counted and logged, never raised to anybody."""
    try:
        await job
    except SEND_ERRORS as exc:
        ctx.metrics.emails.labels(kind=kind, result="failed").inc()
        logger.warning("mail not sent: %s: %s", type(exc).__name__, exc, extra={"kind": kind})
    except SQLAlchemyError as exc:
        ctx.metrics.emails.labels(kind=kind, result="failed").inc()
        logger.error("mail not sent (database): %s", type(exc).__name__, extra={"kind": kind})


async def _password_reset_job(ctx: AuthContext, email: str) -> None:
    async with ctx.sessions() as db, db.begin():
        user = await users.find_by_email(db, email)
        if user is None or not user.is_active:
            return
        token = await _issue(ctx, db, user, TokenPurpose.PASSWORD_RESET)
    await _send_link(ctx, user, TokenPurpose.PASSWORD_RESET, token)


async def _verification_job(ctx: AuthContext, user_id: uuid.UUID) -> None:
    async with ctx.sessions() as db, db.begin():
        user = await users.get(db, user_id)
        if user is None or not user.is_active or user.email_verified:
            return
        token = await _issue(ctx, db, user, TokenPurpose.EMAIL_VERIFICATION)
    await _send_link(ctx, user, TokenPurpose.EMAIL_VERIFICATION, token)


async def _email_change_job(ctx: AuthContext, user_id: uuid.UUID) -> None:
    async with ctx.sessions() as db, db.begin():
        user = await users.get(db, user_id)
        if user is None or not user.is_active or user.pending_email is None:
            return
        taken = await users.taken_fields(db, user.pending_email, None, exclude=user.id)
        token = None if taken else await _issue(ctx, db, user, TokenPurpose.EMAIL_CHANGE)
    if token is None:
        ctx.metrics.email_changes.labels(result="taken").inc()
        await _send_plain(ctx, user, user.pending_email, CHANGE_TAKEN)
    else:
        await _send_link(ctx, user, TokenPurpose.EMAIL_CHANGE, token)


async def _change_notice_job(ctx: AuthContext, user_id: uuid.UUID) -> None:
    async with ctx.sessions() as db:
        user = await users.get(db, user_id)
    if user is None or not user.is_active:
        return
    await _send_plain(ctx, user, user.email, CHANGE_NOTICE)


async def _issue(ctx: AuthContext, db: AsyncSession, user: User, purpose: TokenPurpose) -> str:
    """A new token for the user; his earlier tokens of this purpose die (caller commits)."""
    address = proven_address(user, purpose)
    assert address is not None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = datetime.now(UTC) + timedelta(seconds=_ttl(ctx, purpose))
    await email_tokens.replace(
        db,
        user_id=user.id,
        purpose=purpose,
        token=token,
        email=address,
        expires_at=expires_at,
    )
    return token


async def _send_link(ctx: AuthContext, user: User, purpose: TokenPurpose, token: str) -> None:
    address = proven_address(user, purpose)
    assert address is not None
    link = f"{ctx.settings.frontend_url}{LINK_PATHS[purpose]}?{urlencode({'token': token})}"
    mail = render(purpose.value, link=link, expires_in=duration(_ttl(ctx, purpose)))
    await ctx.mailer.send(address, mail)
    ctx.metrics.emails.labels(kind=purpose.value, result="sent").inc()
    logger.info("mail sent", extra={"kind": purpose.value, "user_id": str(user.id)})


async def _send_plain(ctx: AuthContext, user: User, address: str, kind: str) -> None:
    """A notice with no link and no values at all."""
    await ctx.mailer.send(address, render(kind))
    ctx.metrics.emails.labels(kind=kind, result="sent").inc()
    logger.info("mail sent", extra={"kind": kind, "user_id": str(user.id)})
