"""Mail bodies from the package's `templates/` files (string.Template, `$name` placeholders).

Each kind has `<kind>.txt` (first line `Subject: …`, a blank line, then the plain-text body)
and `<kind>.html`. Values are HTML-escaped in the HTML body; the plain text takes them as is.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from string import Template


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@cache
def _load(name: str) -> str:
    return files("auth_service").joinpath("templates", name).read_text(encoding="utf-8")


def render(kind: str, **values: str) -> RenderedMail:
    """Fill the templates of `kind`; a placeholder without a value is an error, not a blank."""
    header, _, body = _load(f"{kind}.txt").partition("\n\n")
    if not header.startswith("Subject: "):
        raise ValueError(f"templates/{kind}.txt must start with a `Subject: ` line")
    escaped = {name: html.escape(value, quote=True) for name, value in values.items()}
    return RenderedMail(
        subject=Template(header.removeprefix("Subject: ").strip()).substitute(values),
        text=Template(body).substitute(values),
        html=Template(_load(f"{kind}.html")).substitute(escaped),
    )


def duration(seconds: int) -> str:
    """`30 minutes`, `24 hours`, `1 day`: how long a link lives, for people."""
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0 and not (unit == "day" and seconds < 172_800):
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
