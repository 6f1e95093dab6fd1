"""The dev stack's SMTP server (aiosmtpd): keeps every mail as a file and prints its links.

Nothing is relayed anywhere. Each accepted message becomes `<directory>/<time>-<n>.eml`
(written to a temporary name first, so a reader never sees half a mail), and the links in its
plain-text body go to the console, so a developer can click a reset link without a mail client.
Tests in the same process can wait for a mail with `wait_for` instead of polling the directory.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

LINK = re.compile(r"https?://[^\s<>\"']+")


def parse_mail(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def read_mail(path: Path) -> EmailMessage:
    return parse_mail(path.read_bytes())


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    text: str = part.get_content()
    return text


def links(message: EmailMessage) -> list[str]:
    return LINK.findall(plain_text(message))


class _Store:
    def __init__(self, directory: Path, echo: Callable[[str], None]) -> None:
        self.directory = directory
        self.echo = echo
        self.stored: list[Path] = []
        self.changed = threading.Condition()
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}-{next(self._numbers):04d}.eml"
        partial = path.with_suffix(".part")
        partial.write_bytes(raw)
        partial.replace(path)
        message = parse_mail(raw)
        lines = [f"[mail] to {', '.join(envelope.rcpt_tos)}: {message['Subject']} ({path.name})"]
        lines += [f"[mail]   {link}" for link in links(message)]
        self.echo("\n".join(lines))
        with self.changed:
            self.stored.append(path)
            self.changed.notify_all()
        return "250 Message accepted for delivery"


def _print(text: str) -> None:
    print(text, flush=True)


class MailSink:
    def __init__(self, directory: Path, port: int, echo: Callable[[str], None] = _print) -> None:
        self.directory = directory
        self.port = port
        self._store = _Store(directory, echo)
        self._controller = Controller(self._store, hostname="127.0.0.1", port=port)
        self._running = False

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._controller.start()
        self._running = True

    def stop(self) -> None:
        if self._running:
            self._controller.stop()
            self._running = False

    def stored(self) -> list[Path]:
        """The files of every mail received since start, oldest first."""
        with self._store.changed:
            return list(self._store.stored)

    def wait_for(
        self, match: Callable[[EmailMessage], bool], count: int = 1, timeout: float = 30.0
    ) -> list[Path]:
        """Block until `count` stored mails satisfy `match`; their files, oldest first."""
        deadline = time.monotonic() + timeout
        with self._store.changed:
            while len(found := [p for p in self._store.stored if match(read_mail(p))]) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(found)} of {count} expected mails after {timeout}s")
                self._store.changed.wait(remaining)
            return found
