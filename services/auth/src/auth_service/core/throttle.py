"""Which application rate limits each credential endpoint counts against (docs/security.md).

Per client IP first (cheap, and stops a flood before it costs a password hash), then per
account: the login name's identity key, whatever IP it comes from. Every password check
(login, change-password, the email change) shares the login buckets; every endpoint that
mails on a signed-in user's behalf shares the account-mail buckets. Refresh is counted per
session family, found from the presented token's hash.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from auth_service.core.client_ip import ClientIp
from auth_service.core.config import Settings
from auth_service.core.identity_keys import identity_key
from auth_service.models import User
from auth_service.repositories.refresh_tokens import hash_token, session_id_of
from taskgate_common.rate_limits import AppRateLimiter, Limit, digest


class CredentialLimits:
    def __init__(
        self,
        settings: Settings,
        limiter: AppRateLimiter | None,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self.limiter = limiter
        self.fail_closed = settings.rate_limit_fail_closed
        self.client_ip = ClientIp(settings.trusted_proxies)
        self.sessions = sessions
        self.login_ip = Limit.parse("login_ip", settings.rate_limit_login_per_ip)
        self.login_account = Limit.parse("login_account", settings.rate_limit_login_per_account)
        self.register_ip = Limit.parse("register_ip", settings.rate_limit_register_per_ip)
        self.refresh_ip = Limit.parse("refresh_ip", settings.rate_limit_refresh_per_ip)
        self.refresh_family = Limit.parse("refresh_family", settings.rate_limit_refresh_per_family)
        self.forgot_ip = Limit.parse(
            "forgot_password_ip", settings.rate_limit_forgot_password_per_ip
        )
        self.forgot_account = Limit.parse(
            "forgot_password_account", settings.rate_limit_forgot_password_per_account
        )
        self.mail_ip = Limit.parse("account_mail_ip", settings.rate_limit_account_mail_per_ip)
        self.mail_account = Limit.parse(
            "account_mail_account", settings.rate_limit_account_mail_per_account
        )
        self.profile_ip = Limit.parse("profile_ip", settings.rate_limit_profile_per_ip)
        self.profile_account = Limit.parse(
            "profile_account", settings.rate_limit_profile_per_account
        )

    async def _hit(self, request: Request, *checks: tuple[Limit, str]) -> None:
        if self.limiter is not None:
            await self.limiter.hit(request, *checks, fail_closed=self.fail_closed)

    async def login(self, request: Request, identifier: str) -> None:
        await self._hit(
            request,
            (self.login_ip, self.client_ip(request.scope)),
            (self.login_account, digest(identity_key(identifier))),
        )

    async def password_check(self, request: Request, user: User) -> None:
        """A signed-in user's password check counts like a login with his username."""
        await self.login(request, user.username)

    async def account_mail(self, request: Request, user: User) -> None:
        """A mail sent on a signed-in user's behalf (verification, email change)."""
        await self._hit(
            request,
            (self.mail_ip, self.client_ip(request.scope)),
            (self.mail_account, str(user.id)),
        )

    async def profile_change(self, request: Request, user: User) -> None:
        await self._hit(
            request,
            (self.profile_ip, self.client_ip(request.scope)),
            (self.profile_account, str(user.id)),
        )

    async def register(self, request: Request) -> None:
        await self._hit(request, (self.register_ip, self.client_ip(request.scope)))

    async def refresh(self, request: Request, token: str | None) -> None:
        """Per IP, then (only if that passed: it costs a query) per family of the token."""
        if self.limiter is None:
            return
        await self._hit(request, (self.refresh_ip, self.client_ip(request.scope)))
        if not token:
            return
        token_hash = hash_token(token)
        async with self.sessions() as db:
            family = await session_id_of(db, token_hash)
        # An unknown token has no family: it is counted on its own hash.
        await self._hit(request, (self.refresh_family, str(family) if family else token_hash.hex()))

    async def forgot_password(self, request: Request, email: str) -> None:
        await self._hit(
            request,
            (self.forgot_ip, self.client_ip(request.scope)),
            (self.forgot_account, digest(identity_key(email))),
        )
