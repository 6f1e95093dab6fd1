"""A small SMTP client (aiosmtplib): one connection per mail, a bounded number at once.

STARTTLS, implicit TLS or plain, with optional credentials. The password comes from
`AUTH_SMTP_PASSWORD` or `AUTH_SMTP_PASSWORD_FILE` and is never logged or shown in an error.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

import aiosmtplib

from auth_service.core.config import Settings
from auth_service.core.mail_templates import RenderedMail
from taskgate_common.settings import read_secret_file

# What a failed send raises: SMTP refusals, connection and TLS errors, timeouts.
SEND_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)


class MailConfigError(ValueError):
    """The SMTP settings cannot work; raised at startup so the operator sees it at once."""


def smtp_password(settings: Settings) -> str | None:
    if settings.smtp_password is not None:
        return settings.smtp_password.get_secret_value()
    if settings.smtp_password_file is not None:
        password = read_secret_file(
            settings.smtp_password_file, "AUTH_SMTP_PASSWORD_FILE", MailConfigError
        )
        return password or None  # an empty secret means "no login"
    return None


def build_message(sender: str, to: str, mail: RenderedMail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._password = smtp_password(settings)
        if self._password is not None and settings.smtp_username is None:
            raise MailConfigError("AUTH_SMTP_PASSWORD is set but AUTH_SMTP_USERNAME is not")
        self._limiter = asyncio.Semaphore(settings.smtp_max_concurrent)

    @property
    def enabled(self) -> bool:
        return self._settings.mail_enabled

    async def send(self, to: str, mail: RenderedMail) -> None:
        """Deliver one mail to the relay; raises one of SEND_ERRORS when it cannot."""
        settings = self._settings
        message = build_message(settings.smtp_from, to, mail)
        async with self._limiter:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=self._password,
                use_tls=settings.smtp_security == "tls",
                start_tls=settings.smtp_security == "starttls",
                validate_certs=settings.smtp_validate_certs,
                timeout=settings.smtp_timeout_seconds,
            )

    def __repr__(self) -> str:  # never the password
        s = self._settings
        return f"Mailer(host={s.smtp_host!r}, port={s.smtp_port}, security={s.smtp_security!r})"
