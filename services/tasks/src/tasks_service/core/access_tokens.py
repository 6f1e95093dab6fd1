"""The tasks service's side of token verification: the shared rules
(`taskgate_common.access_tokens`) with the cached JWKS as key lookup, and a cache of verified
tokens.

Verified claims are cached per token (keyed by its SHA-256) until the token expires, so a busy
client pays for the RSA check once, not on every request. Revocation is checked on every
request, cached or not (`services/access.py`, `core/revocations.py`).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from taskgate_common.access_tokens import (
    MAX_TOKEN_LENGTH,
    AccessClaims,
    TokenRejected,
    verify_access_token_async,
)
from tasks_service.core.config import Settings
from tasks_service.core.jwks_cache import JwksCache

__all__ = ["KeysUnavailable", "Principal", "TokenRejected", "TokenVerifier"]


class KeysUnavailable(Exception):
    """No key set was ever fetched, so no token can be checked (auth unreachable since start)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, from a verified token."""

    user_id: uuid.UUID
    role: str
    expires_at: int
    kid: str
    session_id: uuid.UUID
    token_version: int
    issued_at: int

    @classmethod
    def from_claims(cls, claims: AccessClaims) -> Principal:
        return cls(
            user_id=claims.subject,
            role=claims.role,
            expires_at=claims.expires_at,
            kid=claims.kid,
            session_id=claims.session_id,
            token_version=claims.token_version,
            issued_at=claims.issued_at,
        )


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
        if len(token) > MAX_TOKEN_LENGTH:  # before hashing it
            raise TokenRejected("malformed", "The token is not a well-formed JWT")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self._verified.get(digest)
        if cached is not None:
            # A key removed from the JWKS (revoked) also drops the tokens it verified.
            if self._still_valid(cached) and self._jwks.has_key(cached.kid):
                self._verified.move_to_end(digest)
                return cached
            del self._verified[digest]
        claims = await verify_access_token_async(
            token,
            self._key_for,
            issuer=self._settings.auth_issuer,
            audience=self._settings.token_audience,
            leeway_seconds=self._settings.token_leeway_seconds,
        )
        principal = Principal.from_claims(claims)
        self._remember(digest, principal)
        return principal

    async def _key_for(self, kid: str) -> RSAPublicKey | None:
        key = await self._jwks.key_for(kid)
        if key is None and not self._jwks.loaded:
            raise KeysUnavailable
        return key

    def _still_valid(self, principal: Principal) -> bool:
        return self._clock() < principal.expires_at + self._settings.token_leeway_seconds

    def _remember(self, digest: bytes, principal: Principal) -> None:
        size = self._settings.token_cache_size
        if size == 0:
            return
        self._verified[digest] = principal
        while len(self._verified) > size:
            self._verified.popitem(last=False)
