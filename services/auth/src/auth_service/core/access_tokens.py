"""Issue RS256 access tokens (RFC 9068 `at+jwt`) exactly as the design states.

Verification is not here: both services use the one verifier in `taskgate_common.access_tokens`
(auth with its key ring as the key lookup, tasks with its cached JWKS).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from auth_service.core.signing_keys import KeyRing
from taskgate_common.access_tokens import ALGORITHM

ACCESS_TOKEN_TYPE = "at+jwt"


def issue_access_token(
    keys: KeyRing,
    *,
    issuer: str,
    audience: list[str],
    subject: uuid.UUID,
    session_id: uuid.UUID,
    role: str,
    token_version: int,
    ttl_seconds: int,
    now: int | None = None,
) -> str:
    """A signed token carrying every claim the shared verifier requires."""
    issued_at = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(subject),
        "aud": audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "sid": str(session_id),
        "role": role,
        "ver": token_version,
    }
    headers = {"kid": keys.active.kid, "typ": ACCESS_TOKEN_TYPE}
    return jwt.encode(claims, keys.active.private_key, algorithm=ALGORITHM, headers=headers)
