"""A real SMTP server for the tests (aiosmtpd), and an auth app that mails to it.

Delivery is awaited, never slept for: `MailTest.delivered()` drains the app's background jobs,
and a job ends only after the server has answered the mail's DATA, by which time the handler
below has stored it.
"""

from __future__ import annotations

import email
import email.policy
import re
import ssl
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from auth_service.context import AuthContext
from auth_service.core.config import Settings
from auth_service.main import create_app
from taskgate_devstack.postgres import free_port

FRONTEND = "http://frontend.test"


class _Collector:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on a free loopback port that keeps every message it accepts.

    With `credentials` it requires AUTH; with `tls` ("starttls" or "tls", implicit) it speaks
    TLS with `tls_context` (its certificate), as a real relay does.
    """

    def __init__(
        self,
        credentials: tuple[str, str] | None = None,
        tls: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.port = free_port()
        self._collector = _Collector()
        options: dict[str, Any] = {}
        if credentials is not None:
            options.update(authenticator=_Authenticator(*credentials), auth_required=True)
        if tls == "starttls":
            options.update(tls_context=tls_context, require_starttls=True)
        elif tls == "tls":
            # The socket itself is TLS, which aiosmtpd's AUTH check cannot see.
            options.update(ssl_context=tls_context, auth_require_tls=False)
        self._controller = Controller(
            self._collector, hostname="127.0.0.1", port=self.port, **options
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[EmailMessage]:
        with self._collector.lock:
            return list(self._collector.messages)

    def clear(self) -> None:
        with self._collector.lock:
            self._collector.messages.clear()


class _Authenticator:
    def __init__(self, username: str, password: str) -> None:
        self.expected = (username.encode(), password.encode())

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and (
                auth_data.login,
                auth_data.password,
            )
            == self.expected
        )
        return AuthResult(success=ok, handled=False)


def smtp_settings(base: Settings, sink: SmtpSink, **overrides: Any) -> Settings:
    return base.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "smtp_security": "none",
            "frontend_url": FRONTEND,
            **overrides,
        }
    )


@dataclass
class MailTest:
    http: httpx.AsyncClient
    ctx: AuthContext
    sink: SmtpSink | None

    async def delivered(self, to: str | None = None) -> list[EmailMessage]:
        """Every mail accepted so far (to `to` only, if given), once all sends have finished."""
        assert await self.ctx.jobs.drain(timeout=30)
        messages = self.sink.messages if self.sink is not None else []
        return [m for m in messages if to is None or m["To"] == to]


@asynccontextmanager
async def running(settings: Settings, sink: SmtpSink | None) -> AsyncIterator[MailTest]:
    """An auth app with these settings, started and stopped around the block."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            test = MailTest(http, app.state.ctx, sink)
            try:
                yield test
            finally:
                await test.ctx.jobs.drain(timeout=30)


def text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def html_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    content: str = part.get_content()
    return content


def link_token(message: EmailMessage, path: str) -> str:
    """The token of the `{FRONTEND}{path}?token=…` link in the plain-text body."""
    match = re.search(rf"{re.escape(FRONTEND + path)}\?token=([A-Za-z0-9_-]+)", text_body(message))
    assert match is not None, text_body(message)
    return match.group(1)


async def metric(http: httpx.AsyncClient, sample: str) -> float:
    """The value of one sample on `/metrics` (0 when absent)."""
    text = (await http.get("/metrics")).text
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def self_signed_server_context(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context
