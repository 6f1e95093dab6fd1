"""Request size limits at the service itself, as a pure ASGI middleware.

The gateway already caps bodies, but a service port can be exposed by mistake, and uvicorn with
httptools (what `uvicorn[standard]` runs) accepts headers of any size. So each service refuses,
in the design's JSON error shape, headers above `max_header_bytes` (431) and bodies above
`max_body_bytes` (413): at once when `Content-Length` says so, else while the body streams in,
so no more than the cap is ever handed to the app. Pure ASGI: a few integer additions per
request, and streaming stays intact.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskgate_common.errors import error_response

# ": " and CRLF around each header line: many tiny headers cost what they cost on the wire.
_LINE_OVERHEAD = 4
_CONTENT_LENGTH = b"content-length"
# More digits than this is above any cap, and too long for `int()` to be worth calling.
_MAX_LENGTH_DIGITS = 18


def _body_detail(limit: int) -> str:
    return f"The request body is larger than the service accepts (limit: {limit} bytes)"


class _BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the cap.

    An `HTTPException`, so FastAPI's body reading re-raises it and the app's own handler
    answers the 413 (code `payload_too_large`, the gateway's code for the same refusal).
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, _body_detail(limit))


class RequestLimitsMiddleware:
    """Refuses oversized headers (431) and bodies (413), and a malformed `Content-Length` (400)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = 0
        length: bytes | None = None
        conflicting = False
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value) + _LINE_OVERHEAD
            if name == _CONTENT_LENGTH:
                conflicting = conflicting or (length is not None and value != length)
                length = value
        if header_bytes > self.max_header_bytes:
            detail = (
                "The request headers are larger than the service accepts "
                f"(limit: {self.max_header_bytes} bytes)"
            )
            await error_response(431, "headers_too_large", detail)(scope, receive, send)
            return
        if length is not None:
            if conflicting or not length.isdigit():
                detail = "The Content-Length header is not one whole number of bytes"
                await error_response(400, "bad_request", detail)(scope, receive, send)
                return
            if len(length) > _MAX_LENGTH_DIGITS or int(length) > self.max_body_bytes:
                # Answered before a byte of the body is read; closing spares reading the rest.
                response = error_response(
                    413,
                    "payload_too_large",
                    _body_detail(self.max_body_bytes),
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)
                return
        await self._counting_body(scope, receive, send)

    async def _counting_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, refusing once the body it reads passes the cap (chunked, or a server
        that does not hold the body to its `Content-Length`)."""
        limit = self.max_body_bytes
        received = 0
        too_large = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                raise _BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception:
            # The app's handlers normally answer the 413; this is for a body read where they
            # cannot (a streaming response already under way, a background read).
            if not too_large:
                raise
            if not started:
                response = error_response(413, "payload_too_large", _body_detail(limit))
                await response(scope, receive, send)
            # Once the response has started there is nothing left to say: stop here.
