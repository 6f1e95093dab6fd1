"""CORS for browser frontends: Starlette's middleware, with its refusals in the design's JSON.

Starlette refuses a preflight with a plain-text `400 Disallowed CORS origin`, which the gateway
turned into its generic `400 bad_request`: a developer whose page is on an origin nobody listed
saw neither the status nor the reason. Here a refused origin is `403 origin_not_allowed`, naming
the origin and the setting that lists the allowed ones; a refused method or header is
`400 cors_preflight_refused`, naming what was asked. The browser still only reports a CORS
failure to the page's code, but the network panel and curl show why.

Everything else is Starlette's: allowed origins get the CORS headers on every answer, the
errors included (this middleware is outside the error handlers and the rate limits).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp

from taskgate_common.errors import error_response
from taskgate_common.rate_limits import RATE_HEADERS

ALLOW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ALLOW_HEADERS = ("Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Request-ID")
# A preflight's answer is cached by the browser for this long (Chromium caps it at 2 hours).
MAX_AGE_SECONDS = 600


class BrowserCors(CORSMiddleware):
    def __init__(
        self,
        app: ASGIApp,
        *,
        origins: Sequence[str],
        origins_setting: str,
        expose_headers: Sequence[str],
    ) -> None:
        super().__init__(
            app,
            allow_origins=list(origins),
            allow_credentials=True,
            allow_methods=list(ALLOW_METHODS),
            allow_headers=list(ALLOW_HEADERS),
            expose_headers=[*expose_headers, "X-Request-ID", "Retry-After", *RATE_HEADERS],
            max_age=MAX_AGE_SECONDS,
        )
        self.origins_setting = origins_setting

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {
            name: value
            for name, value in response.headers.items()
            if name.lower() not in ("content-type", "content-length")
        }
        origin = request_headers["origin"]
        if not self.is_allowed_origin(origin):
            return error_response(
                403,
                "origin_not_allowed",
                f"The origin {origin} may not call this API from a browser: it is not one of "
                f"the origins in {self.origins_setting}"
                + ("" if self.allow_origins else " (empty: only pages on the gateway's origin)"),
                headers,
            )
        method = request_headers["access-control-request-method"]
        refused = [] if method in self.allow_methods else [f"the method {method}"]
        asked = request_headers.get("access-control-request-headers", "").split(",")
        headers_refused = [h.strip() for h in asked if h.strip().lower() not in self.allow_headers]
        if headers_refused and not self.allow_all_headers:
            refused.append(f"the headers {', '.join(filter(None, headers_refused))}")
        if request_headers.get("access-control-request-private-network") is not None:
            refused.append("private network access")
        return error_response(
            400,
            "cors_preflight_refused",
            f"This API does not accept a browser request with {' and '.join(refused)}; it "
            f"accepts the methods {', '.join(ALLOW_METHODS)} and the headers "
            f"{', '.join(ALLOW_HEADERS)}",
            headers,
        )
