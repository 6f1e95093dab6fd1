"""Verifying auth's RS256 access tokens locally, exactly by the design's rules.

Verified claims are cached per token (keyed by its SHA-256) until the token expires, so a busy
client pays for the RSA check once, not on every request.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from tasks_service.core.config import Settings
from tasks_service.core.jwks_cache import JwksCache

ALGORITHM = "RS256"
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]
# Far above any real access token; refuses huge headers before any parsing or hashing.
MAX_TOKEN_LENGTH = 8192


class TokenRejected(Exception):
    """Why a token was refused; `reason` is a stable code used in metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class KeysUnavailable(Exception):
    """No key set was ever fetched, so no token can be checked (auth unreachable since start)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified token."""

    user_id: uuid.UUID
    role: str
    expires_at: int
    kid: str


class TokenVerifier:
    def __init__(
        self,
        settings: Settings,
        jwks: JwksCache,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._jwks = jwks
        self._clock = clock
        self._verified: OrderedDict[bytes, Principal] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        """The caller of a valid access token; raises `TokenRejected` or `KeysUnavailable`."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejected("malformed", "The token is not a well-formed JWT")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self._verified.get(digest)
        if cached is not None:
            # A key removed from the JWKS (revoked) also drops the tokens it verified.
            if self._still_valid(cached) and self._jwks.has_key(cached.kid):
                self._verified.move_to_end(digest)
                return cached
            del self._verified[digest]
        principal = await self._verify_fully(token)
        self._remember(digest, principal)
        return principal

    def _still_valid(self, principal: Principal) -> bool:
        return self._clock() < principal.expires_at + self._settings.token_leeway_seconds

    def _remember(self, digest: bytes, principal: Principal) -> None:
        size = self._settings.token_cache_size
        if size == 0:
            return
        self._verified[digest] = principal
        while len(self._verified) > size:
            self._verified.popitem(last=False)

    async def _verify_fully(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRejected("malformed", "The token is not a well-formed JWT") from None
        if header.get("alg") != ALGORITHM:
            raise TokenRejected("bad_algorithm", "Only RS256 tokens are accepted")
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise TokenRejected("not_access_token", "The token is not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise TokenRejected("unknown_key", "The token was signed by an unknown key")
        key = await self._jwks.key_for(kid)
        if key is None:
            if not self._jwks.loaded:
                raise KeysUnavailable
            raise TokenRejected("unknown_key", "The token was signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._settings.token_audience,
                issuer=self._settings.auth_issuer,
                leeway=self._settings.token_leeway_seconds,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("expired", "The token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("not_yet_valid", "The token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected(
                "wrong_audience", "The token is not meant for this service"
            ) from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("wrong_issuer", "The token was issued by someone else") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("bad_signature", "The token signature is invalid") from None
        except (jwt.MissingRequiredClaimError, jwt.exceptions.InvalidSubjectError):
            raise TokenRejected("invalid_claims", "The token's claims are incomplete") from None
        except jwt.InvalidTokenError:
            raise TokenRejected("invalid", "The token is invalid") from None
        subject = _user_id(claims["sub"])
        return Principal(
            user_id=subject,
            role=str(claims.get("role", "user")),
            expires_at=int(claims["exp"]),
            kid=kid,
        )


def _user_id(sub: object) -> uuid.UUID:
    """`sub` in the canonical hyphenated UUID form auth writes; anything else is refused."""
    try:
        subject = uuid.UUID(str(sub))
    except ValueError:
        subject = None
    if subject is None or str(subject) != str(sub).lower():
        raise TokenRejected("invalid_claims", "The token's subject is not a user id")
    return subject
