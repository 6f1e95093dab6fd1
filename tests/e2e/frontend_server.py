"""A frontend's dev server, reduced to one page: the README's frontend code and the sync code
of docs/tasks-api.md ("Staying in sync"), on loopback.

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

ROOT = Path(__file__).parents[2]
README_API = 'const API = "http://localhost:8080";'


def snippet(document: str, name: str) -> str:
    """The code between `<!-- {name}:start -->` and its end in `document`, as written there."""
    pattern = re.compile(rf"<!-- {name}:start -->\s*```js\n(.*?)```", re.DOTALL)
    match = pattern.search((ROOT / document).read_text())
    assert match, f"{document} has no {name}"
    return match.group(1)


def readme_snippet() -> str:
    """The README's frontend code, as written there."""
    code = snippet("README.md", "frontend-snippet")
    assert README_API in code
    return code


def page_html() -> bytes:
    script = readme_snippet().replace(
        README_API, 'const API = new URLSearchParams(location.search).get("api");'
    )
    script += snippet("docs/tasks-api.md", "sync-snippet")
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
