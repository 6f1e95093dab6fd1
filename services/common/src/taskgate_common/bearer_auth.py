"""The one security scheme both services declare: a Bearer access token from `/auth/token`.

Declared as OAuth 2.0's password flow, so that the Authorize button of Swagger UI on either
page (`/auth/docs`, `/api/docs`) asks for a username and a password and gets a token from the
auth service through the gateway. `tokenUrl` is a path: Swagger UI and OAuth client libraries
resolve it against the document's `servers`, the gateway's origin.
"""

from __future__ import annotations

from fastapi.security import OAuth2PasswordBearer

TOKEN_URL = "/auth/token"

bearer_token = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    scheme_name="OAuth2",
    description="An access token (`Authorization: Bearer …`) from `POST /auth/token` or "
    "`POST /auth/login`; Authorize here logs in with a username (or email) and password",
    auto_error=False,
)
