"""The one verifier of taskgate access tokens, used by the auth and the tasks service alike.

The rules (design.md, "Tokens"; RFC 9068 `at+jwt`), in the order they are checked:

1. at most `MAX_TOKEN_LENGTH` characters, three base64url segments with a JSON header;
2. header `alg` is `RS256` (so `none`, `HS256` key confusion, `RS512`… are refused), `typ` is
   `at+jwt` or `application/at+jwt` (case-insensitive), `kid` is a string of 1 to
   `MAX_KID_LENGTH` characters naming a key the caller knows;
3. the signature verifies with that key;
4. every claim auth writes is present (`REQUIRED_CLAIMS`); `iss` is the expected issuer, `aud`
   contains the expected audience; `exp`, `nbf` and `iat` hold within `leeway` seconds of skew;
5. `sub` and `sid` are UUIDs in their canonical hyphenated form, `ver` a non-negative integer,
   `role` and `jti` short non-empty strings.

Only the key lookup differs between the services (auth: its own key ring; tasks: the cached
JWKS, which may have to be fetched), so it is a parameter: `verify_access_token` takes a plain
function, `verify_access_token_async` an awaitable one. Both run exactly the same checks;
`header_key_id` and `decode_claims` are the two halves they are made of.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

ALGORITHM = "RS256"
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
# Every claim auth writes (design.md): a token without one of them was not made by auth.
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "sub", "iss", "aud", "jti", "sid", "role", "ver")
# Far above any token auth issues (about 900 characters): refused before any parsing or hashing.
MAX_TOKEN_LENGTH = 8192
# A kid is an RFC 7638 thumbprint (43 characters); a bound keeps forged ones out of look-ups,
# logs and metrics.
MAX_KID_LENGTH = 256
MAX_ROLE_LENGTH = 32
MAX_JTI_LENGTH = 128

KeyLookup = Callable[[str], RSAPublicKey | None]
AsyncKeyLookup = Callable[[str], Awaitable[RSAPublicKey | None]]


class TokenRejected(Exception):
    """Why a token was refused; `reason` is a stable code used in responses and metrics.

    Reasons: `malformed`, `bad_algorithm`, `not_access_token`, `unknown_key`, `bad_signature`,
    `expired`, `not_yet_valid`, `wrong_issuer`, `wrong_audience`, `invalid_claims`, `invalid`.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims of an access token."""

    subject: uuid.UUID  # `sub`: the user
    session_id: uuid.UUID  # `sid`: the login (refresh-token family)
    role: str
    token_version: int  # `ver`: the user's token version when the token was issued
    issued_at: int  # `iat`
    expires_at: int  # `exp`
    token_id: str  # `jti`
    kid: str  # the key that verified it


def header_key_id(token: str) -> str:
    """The `kid` of a token whose header passes every rule that needs no key (steps 1-2)."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("malformed", "The token is not a well-formed JWT")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise TokenRejected("malformed", "The token is not a well-formed JWT") from None
    if header.get("alg") != ALGORITHM:
        raise TokenRejected("bad_algorithm", "Only RS256 tokens are accepted")
    if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
        raise TokenRejected("not_access_token", "The token is not an access token")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        raise TokenRejected("unknown_key", "The token was signed by an unknown key")
    return kid


def decode_claims(
    token: str,
    kid: str,
    key: RSAPublicKey | None,
    *,
    issuer: str,
    audience: str,
    leeway_seconds: int,
) -> AccessClaims:
    """Steps 3-5 with the key `kid` named (None: no such key)."""
    if key is None:
        raise TokenRejected("unknown_key", "The token was signed by an unknown key")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=leeway_seconds,
            options={"require": list(REQUIRED_CLAIMS)},
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
    except (
        jwt.MissingRequiredClaimError,
        jwt.exceptions.InvalidSubjectError,
        jwt.exceptions.InvalidJTIError,
    ):
        raise TokenRejected("invalid_claims", "The token's claims are incomplete") from None
    except jwt.InvalidTokenError:
        raise TokenRejected("invalid", "The token is invalid") from None
    return _typed(claims, kid)


def verify_access_token(
    token: str,
    find_key: KeyLookup,
    *,
    issuer: str,
    audience: str,
    leeway_seconds: int,
) -> AccessClaims:
    """The claims of a valid access token, or `TokenRejected`; `find_key(kid)` gives the key."""
    kid = header_key_id(token)
    return decode_claims(
        token, kid, find_key(kid), issuer=issuer, audience=audience, leeway_seconds=leeway_seconds
    )


async def verify_access_token_async(
    token: str,
    find_key: AsyncKeyLookup,
    *,
    issuer: str,
    audience: str,
    leeway_seconds: int,
) -> AccessClaims:
    """`verify_access_token` with a key lookup that may wait (a JWKS fetch)."""
    kid = header_key_id(token)
    key = await find_key(kid)
    return decode_claims(
        token, kid, key, issuer=issuer, audience=audience, leeway_seconds=leeway_seconds
    )


def _canonical_uuid(value: object, claim: str) -> uuid.UUID:
    """A UUID in the hyphenated form auth writes (case aside); braces, URNs, ints refused."""
    parsed: uuid.UUID | None
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != str(value).lower():
        raise TokenRejected("invalid_claims", f"The token's `{claim}` is not a UUID")
    return parsed


def _short_text(value: object, claim: str, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise TokenRejected("invalid_claims", f"The token's `{claim}` is malformed")
    return value


def _typed(claims: dict[str, Any], kid: str) -> AccessClaims:
    version = claims["ver"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise TokenRejected("invalid_claims", "The token's `ver` is malformed")
    return AccessClaims(
        subject=_canonical_uuid(claims["sub"], "sub"),
        session_id=_canonical_uuid(claims["sid"], "sid"),
        role=_short_text(claims["role"], "role", MAX_ROLE_LENGTH),
        token_version=version,
        # PyJWT has already checked that both are numbers (else `invalid`).
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
        token_id=_short_text(claims["jti"], "jti", MAX_JTI_LENGTH),
        kid=kid,
    )
