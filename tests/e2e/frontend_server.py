"""A frontend's dev server, reduced to one page: the README's frontend code, on loopback.

A real HTTP server, not a page made up by the browser driver: Chromium puts a page it did not
load from the network in the public address space, and then refuses its calls to the gateway on
loopback (Local Network Access), which a real dev server on `localhost` never meets. The page
takes the API's URL from its query string (`/?api=http://localhost:8080`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"
SNIPPET = re.compile(r"<!-- frontend-snippet:start -->\s*```js\n(.*?)```", re.DOTALL)
README_API = 'const API = "http://localhost:8080";'


def readme_snippet() -> str:
    """The README's frontend code, as written there."""
    match = SNIPPET.search(README.read_text())
    assert match, "README.md has no frontend snippet"
    assert README_API in match.group(1)
    return match.group(1)


def page_html() -> bytes:
    script = readme_snippet().replace(
        README_API, 'const API = new URLSearchParams(location.search).get("api");'
    )
    return f"<!doctype html><title>frontend</title><script>{script}</script>".encode()


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = page_html()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@dataclass
class FrontendServer:
    port: int

    @property
    def origins(self) -> tuple[str, str]:
        return (f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}")

    def url(self, host: str, api: str) -> str:
        return f"http://{host}:{self.port}/?api={api}"

    @classmethod
    @contextmanager
    def start(cls) -> Iterator[FrontendServer]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield cls(server.server_address[1])
        finally:
            server.shutdown()
            server.server_close()
