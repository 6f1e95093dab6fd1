"""Mailing a single-use link, after the response: issue the token, commit, then send.

Every job runs in the background (`ctx.jobs`): the request that asked for the mail neither
waits for the relay nor learns how it went. The token is committed before the mail leaves, so a
delivered link always works; a failed send is logged and counted (`auth_emails_total`), and the
user asks again. Tokens and addresses are never logged; the user id is.
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
from auth_service.core.mail_templates import duration, render
from auth_service.core.mailer import SEND_ERRORS
from auth_service.models import EmailToken, TokenPurpose, User
from auth_service.repositories import email_tokens, users

TOKEN_BYTES = 32  # 256 bits of randomness
LINK_PATHS = {
    TokenPurpose.PASSWORD_RESET: "/reset-password",
    TokenPurpose.EMAIL_VERIFICATION: "/verify-email",
}

logger = logging.getLogger("taskgate.auth.mail")


def token_usable(token: EmailToken | None, user: User | None, now: datetime) -> bool:
    """Live, for an active user, and sent to the address the account still has."""
    return (
        token is not None
        and user is not None
        and user.is_active
        and token.expires_at > now
        and token.email.lower() == user.email.lower()
    )


def _ttl(ctx: AuthContext, purpose: TokenPurpose) -> int:
    settings = ctx.settings
    if purpose is TokenPurpose.PASSWORD_RESET:
        return settings.reset_token_ttl_seconds
    return settings.verify_email_token_ttl_seconds


def schedule_password_reset(ctx: AuthContext, email: str) -> None:
    """The whole forgot-password work, including looking the address up, happens after the
    response: the request does the same thing whether or not the account exists."""
    _spawn(ctx, TokenPurpose.PASSWORD_RESET, _password_reset_job(ctx, email))


def schedule_verification(ctx: AuthContext, user_id: uuid.UUID) -> None:
    _spawn(ctx, TokenPurpose.EMAIL_VERIFICATION, _verification_job(ctx, user_id))


def _spawn(ctx: AuthContext, purpose: TokenPurpose, job: Coroutine[Any, Any, None]) -> None:
    if not ctx.mailer.enabled:
        job.close()
        return
    if not ctx.jobs.spawn(_guarded(ctx, purpose, job), name=f"mail:{purpose.value}"):
        job.close()
        ctx.metrics.emails.labels(kind=purpose.value, result="dropped").inc()
        logger.error("mail queue full; mail dropped", extra={"kind": purpose.value})


async def _guarded(ctx: AuthContext, purpose: TokenPurpose, job: Coroutine[Any, Any, None]) -> None:
    """Expected failures end here: counted and logged, never raised to anybody."""
    try:
        await job
    except SEND_ERRORS as exc:
        ctx.metrics.emails.labels(kind=purpose.value, result="failed").inc()
        logger.warning(
            "mail not sent: %s: %s", type(exc).__name__, exc, extra={"kind": purpose.value}
        )
    except SQLAlchemyError as exc:
        ctx.metrics.emails.labels(kind=purpose.value, result="failed").inc()
        logger.error(
            "mail not sent (database): %s", type(exc).__name__, extra={"kind": purpose.value}
        )


async def _password_reset_job(ctx: AuthContext, email: str) -> None:
    async with ctx.sessions() as db, db.begin():
        user = await users.find_by_email(db, email)
        if user is None or not user.is_active:
            return
        token = await _issue(ctx, db, user, TokenPurpose.PASSWORD_RESET)
    await _send(ctx, user, TokenPurpose.PASSWORD_RESET, token)


async def _verification_job(ctx: AuthContext, user_id: uuid.UUID) -> None:
    async with ctx.sessions() as db, db.begin():
        user = await users.get(db, user_id)
        if user is None or not user.is_active or user.email_verified:
            return
        token = await _issue(ctx, db, user, TokenPurpose.EMAIL_VERIFICATION)
    await _send(ctx, user, TokenPurpose.EMAIL_VERIFICATION, token)


async def _issue(ctx: AuthContext, db: AsyncSession, user: User, purpose: TokenPurpose) -> str:
    """A new token for the user; his earlier tokens of this purpose die (caller commits)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = datetime.now(UTC) + timedelta(seconds=_ttl(ctx, purpose))
    await email_tokens.replace(
        db,
        user_id=user.id,
        purpose=purpose,
        token=token,
        email=user.email,
        expires_at=expires_at,
    )
    return token


async def _send(ctx: AuthContext, user: User, purpose: TokenPurpose, token: str) -> None:
    link = f"{ctx.settings.frontend_url}{LINK_PATHS[purpose]}?{urlencode({'token': token})}"
    mail = render(
        purpose.value,
        username=user.username,
        email=user.email,
        link=link,
        expires_in=duration(_ttl(ctx, purpose)),
    )
    await ctx.mailer.send(user.email, mail)
    ctx.metrics.emails.labels(kind=purpose.value, result="sent").inc()
    logger.info("mail sent", extra={"kind": purpose.value, "user_id": str(user.id)})
