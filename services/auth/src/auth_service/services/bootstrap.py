"""The first admin: from the `users create-admin` command, or from the environment at startup."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.context import AuthContext
from auth_service.core.config import Settings
from auth_service.core.passwords import PasswordHasher
from auth_service.models import Role, User
from auth_service.repositories import users
from auth_service.schemas import RegisterRequest
from auth_service.services.registration import create_account
from taskgate_common.errors import ApiError
from taskgate_common.settings import read_secret_file

logger = logging.getLogger("taskgate.auth.bootstrap")


async def create_admin(
    sessions: async_sessionmaker[AsyncSession],
    hasher: PasswordHasher,
    *,
    email: str,
    username: str,
    password: str,
) -> User:
    """Create an admin account; pydantic's ValidationError or a 409 ApiError when refused.

    The operator typed the address, so it counts as verified: `AUTH_REQUIRE_VERIFIED_EMAIL`
    never locks out the first admin.
    """
    request = RegisterRequest(email=email, username=username, password=password)
    return await create_account(sessions, hasher, request, Role.ADMIN, email_verified=True)


def _bootstrap_password(settings: Settings) -> str | None:
    if settings.bootstrap_admin_password is not None:
        return settings.bootstrap_admin_password.get_secret_value()
    if settings.bootstrap_admin_password_file is not None:
        try:
            return read_secret_file(
                settings.bootstrap_admin_password_file, "AUTH_BOOTSTRAP_ADMIN_PASSWORD_FILE"
            )
        except ValueError as exc:  # logged, not raised: the bootstrap never fails startup
            logger.error("%s", exc)
    return None


async def bootstrap_admin(ctx: AuthContext) -> User | None:
    """Create the configured admin when the database has no admin yet; never fails startup.

    Idempotent: once any admin exists it does nothing, so it never resets a password or
    promotes an existing account.
    """
    settings = ctx.settings
    email, username = settings.bootstrap_admin_email, settings.bootstrap_admin_username
    wanted = (
        email,
        username,
        settings.bootstrap_admin_password,
        settings.bootstrap_admin_password_file,
    )
    if all(value is None for value in wanted):
        return None
    password = _bootstrap_password(settings)
    if not (email and username and password):
        logger.error(
            "admin bootstrap skipped: set AUTH_BOOTSTRAP_ADMIN_EMAIL, _USERNAME and _PASSWORD "
            "(or _PASSWORD_FILE)"
        )
        return None
    try:
        async with ctx.sessions() as db:
            if await users.admin_exists(db):
                return None
        user = await create_admin(
            ctx.sessions, ctx.hasher, email=email, username=username, password=password
        )
    except ValidationError as exc:
        fields = ", ".join(str(error["loc"][0]) for error in exc.errors())
        logger.error("admin bootstrap skipped: invalid %s", fields)
        return None
    except ApiError as exc:
        logger.warning("admin bootstrap skipped: %s (an existing account is not promoted)", exc)
        return None
    except (SQLAlchemyError, OSError) as exc:
        logger.error("admin bootstrap failed, retried at next start: %s", type(exc).__name__)
        return None
    logger.info("bootstrap admin created", extra={"user_id": str(user.id)})
    return user
