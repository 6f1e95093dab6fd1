"""A real browser for the end-to-end tests: Debian's Chromium, driven by Playwright.

Playwright never downloads a browser here; it drives `/usr/bin/chromium` (`.ci/run` installs
the Debian package, so CI runs what a developer's machine skips). The flags keep Chromium from
calling Google's services, which this machine's closed network refuses many times a second.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Route, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_available() -> bool:
    return shutil.which(CHROMIUM) is not None


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def cut_off_network(page: Page, *allowed_origins: str) -> list[str]:
    """Abort every request of the page to another origin; the list collects their URLs."""
    allowed = {_origin(origin) for origin in allowed_origins}
    refused: list[str] = []

    def handle(route: Route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or _origin(url) in allowed:
            route.continue_()
        else:
            refused.append(url)
            route.abort("internetdisconnected")

    page.route("**/*", handle)
    return refused


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
