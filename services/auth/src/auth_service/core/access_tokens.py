"""Issue and verify RS256 access tokens (RFC 9068 `at+jwt`) exactly as the design states."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from auth_service.core.signing_keys import KeyRing

ACCESS_TOKEN_TYPE = "at+jwt"
ALGORITHM = "RS256"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "sub", "iss", "aud", "jti"]
# Far above any token auth issues (as in the tasks verifier): refused before any parsing.
MAX_TOKEN_LENGTH = 8192


class TokenRejected(Exception):
    """Why a token was refused; `reason` is a stable code used in responses and metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class AccessClaims:
    subject: uuid.UUID
    session_id: uuid.UUID | None
    role: str
    token_version: int
    expires_at: int
    token_id: str


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


def verify_access_token(
    token: str,
    keys: KeyRing,
    *,
    issuer: str,
    audience: str,
    leeway_seconds: int,
) -> AccessClaims:
    """Return the claims of a valid access token, or raise `TokenRejected`."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("malformed", "The token is not a well-formed JWT")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise TokenRejected("malformed", "The token is not a well-formed JWT") from None
    if header.get("alg") != ALGORITHM:
        raise TokenRejected("bad_algorithm", "Only RS256 tokens are accepted")
    typ = str(header.get("typ", "")).lower()
    if typ not in (ACCESS_TOKEN_TYPE, f"application/{ACCESS_TOKEN_TYPE}"):
        raise TokenRejected("not_access_token", "The token is not an access token")
    kid = header.get("kid")
    key = keys.find(kid) if isinstance(kid, str) else None
    if key is None:
        raise TokenRejected("unknown_key", "The token was signed by an unknown key")
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=leeway_seconds,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRejected("expired", "The token has expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenRejected("not_yet_valid", "The token is not valid yet") from None
    except jwt.InvalidAudienceError:
        raise TokenRejected("wrong_audience", "The token is not meant for this service") from None
    except jwt.InvalidIssuerError:
        raise TokenRejected("wrong_issuer", "The token was issued by someone else") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("bad_signature", "The token signature is invalid") from None
    except jwt.InvalidTokenError:
        raise TokenRejected("invalid", "The token is invalid") from None
    return _claims(claims)


def _claims(claims: dict[str, Any]) -> AccessClaims:
    try:
        subject = uuid.UUID(str(claims["sub"]))
        sid = claims.get("sid")
        version = claims.get("ver", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("ver")
        return AccessClaims(
            subject=subject,
            session_id=uuid.UUID(str(sid)) if sid is not None else None,
            role=str(claims.get("role", "user")),
            token_version=version,
            expires_at=int(claims["exp"]),
            token_id=str(claims["jti"]),
        )
    except (ValueError, TypeError, KeyError):
        raise TokenRejected("invalid_claims", "The token's claims are malformed") from None
