"""A small static file server for the reference web app (`web/`), standard library only.

The gateway routes the app's pages and assets here (gateway/dynamic/web.yml); everything
else stays with the services or the gateway's JSON 404. Pages are the app's client-side
routes (`/`, `/login`, `/reset-password`, ...): each answers `index.html`, so the links in
mails (`{AUTH_FRONTEND_URL}/verify-email?token=...`) open the app. Only files under the root
are served, never a dotfile, only GET and HEAD; every answer carries a strict
Content-Security-Policy ('self' only: nothing is loaded from elsewhere) and `no-cache` with
an ETag, so a reload always sees the current files at the cost of a 304.

`make dev` and the end-to-end tests run it inside the launcher (`WebServer`);
`python -m taskgate_devstack.web_server --root web --port 8083` runs it alone.
"""

from __future__ import annotations

import argparse
import hashlib
import mimetypes
import threading
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
INDEX = "index.html"


def resolve(root: Path, url_path: str) -> Path | None:
    """The file `url_path` names under `root`; `index.html` for a page (a path whose last
    segment has no extension); None when there is no such file or the path leaves the root."""
    path = unquote(urlsplit(url_path).path)
    parts = [part for part in path.split("/") if part]
    if any(part.startswith(".") or "\\" in part or "\0" in part for part in parts):
        return None
    page = not parts or "." not in parts[-1]
    candidate = root / INDEX if page else root.joinpath(*parts)
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_file() or not resolved.is_relative_to(root.resolve()):
        return None
    return resolved


class StaticHandler(BaseHTTPRequestHandler):
    root: ClassVar[Path]
    server_version = "taskgate-web"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def __getattr__(self, name: str) -> object:
        """GET and HEAD only: any other method (`do_POST`, ...) is a 405, not the base 501."""
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._plain(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, HEAD"})

    def _answer(self, with_body: bool) -> None:
        file = resolve(self.root, self.path)
        if file is None:
            self._plain(HTTPStatus.NOT_FOUND, {})
            return
        body = file.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {
            "Content-Type": TYPES.get(file.suffix)
            or mimetypes.guess_type(file.name)[0]
            or "application/octet-stream",
            "Cache-Control": "no-cache",
            "ETag": etag,
            "Last-Modified": formatdate(file.stat().st_mtime, usegmt=True),
        }
        if self.headers.get("If-None-Match") == etag:
            self._send(HTTPStatus.NOT_MODIFIED, headers, b"", with_body=False)
            return
        self._send(HTTPStatus.OK, headers, body, with_body)

    def _plain(self, status: HTTPStatus, headers: dict[str, str]) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        headers = {"Content-Type": "text/plain; charset=utf-8", **headers}
        self._send(status, headers, body, with_body=self.command != "HEAD")

    def _send(
        self, status: HTTPStatus, headers: dict[str, str], body: bytes, with_body: bool
    ) -> None:
        self.send_response(status)
        for name, value in {**SECURITY_HEADERS, **headers}.items():
            self.send_header(name, value)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the gateway's access log already records every request."""


class WebServer:
    """The static server on a thread of the calling process (the dev launcher)."""

    def __init__(self, root: Path, port: int, host: str = "127.0.0.1") -> None:
        handler = type("Handler", (StaticHandler,), {"root": root.resolve()})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="web-server", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m taskgate_devstack.web_server")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8083)
    args = parser.parse_args(argv)
    handler = type("Handler", (StaticHandler,), {"root": args.root.resolve()})
    with ThreadingHTTPServer((args.host, args.port), handler) as server:
        server.daemon_threads = True
        server.serve_forever()


if __name__ == "__main__":
    main()
