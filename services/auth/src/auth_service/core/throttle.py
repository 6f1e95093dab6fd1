"""Which application rate limits each credential endpoint counts against (docs/security.md).

Per client IP first (cheap, and stops a flood before it costs a password hash), then per
account: the login name's identity key, whatever IP it comes from. Every password check
(login, change-password, the email change) shares the login buckets; every endpoint that
mails on a signed-in user's behalf shares the account-mail buckets. Refresh is counted per
client IP before the exchange and per session family inside it: the family comes from the
exchange's own locked look-up (`services/refresh_sessions.py`), so no query is made here.
"""

from __future__ import annotations

from starlette.requests import Request

from auth_service.core.client_ip import ClientIp
from auth_service.core.config import Settings
from auth_service.core.identity_keys import identity_key
from auth_service.models import User
from taskgate_common.rate_limits import AppRateLimiter, Limit, digest


class CredentialLimits:
    def __init__(self, settings: Settings, limiter: AppRateLimiter | None) -> None:
        self.limiter = limiter
        self.fail_closed = settings.rate_limit_fail_closed
        self.client_ip = ClientIp(settings.trusted_proxies)
        self.login_ip = Limit.parse("login_ip", settings.rate_limit_login_per_ip)
        self.login_account = Limit.parse("login_account", settings.rate_limit_login_per_account)
        self.register_ip = Limit.parse("register_ip", settings.rate_limit_register_per_ip)
        self.refresh_ip_limit = Limit.parse("refresh_ip", settings.rate_limit_refresh_per_ip)
        self.refresh_family_limit = Limit.parse(
            "refresh_family", settings.rate_limit_refresh_per_family
        )
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

    async def refresh_ip(self, request: Request) -> None:
        """Before the exchange: per client IP (cheap, and it stops a flood before any query)."""
        await self._hit(request, (self.refresh_ip_limit, self.client_ip(request.scope)))

    async def refresh_family(self, request: Request, family_key: str) -> None:
        """Inside the exchange, once its look-up found the family: per family (`family_key`
        is the family id; an unknown token has none and is counted on its own hash)."""
        await self._hit(request, (self.refresh_family_limit, family_key))

    async def forgot_password(self, request: Request, email: str) -> None:
        await self._hit(
            request,
            (self.forgot_ip, self.client_ip(request.scope)),
            (self.forgot_account, digest(identity_key(email))),
        )
