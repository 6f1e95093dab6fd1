"""The auth service's public keys, fetched in the background and kept through auth outages.

Not PyJWT's `PyJWKClient`: that one fetches synchronously (blocking the event loop), forgets its
keys when a fetch fails, and refetches on every unknown `kid`, so forged `kid`s would turn into a
request flood toward auth. Here fetches are async and single-flight, the last good key set is
kept when auth is unreachable, and unknown `kid`s may force at most one fetch per cooldown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from tasks_service.core.config import Settings
from tasks_service.metrics import TasksMetrics

logger = logging.getLogger("tasks.jwks")

MIN_KEY_BITS = 2048
# Refresh when this share of the TTL has passed, so a fresh set is in hand before expiry.
REFRESH_AHEAD = 0.8
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)


class JwksError(Exception):
    """A JWKS (or discovery) document that cannot be used."""


class JwksNotLoaded(RuntimeError):
    """No key set was fetched yet (what readiness reports while auth has never answered)."""


@dataclass(frozen=True)
class KeySet:
    keys: Mapping[str, RSAPublicKey]
    fetched_at: float
    expires_at: float


def parse_jwks(document: Any) -> dict[str, RSAPublicKey]:
    """The usable RS256 signing keys of a JWKS document, by `kid`; others are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("the document has no `keys` list")
    keys: dict[str, RSAPublicKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if (
            jwk.get("kty") != "RSA"
            or jwk.get("use", "sig") != "sig"
            or jwk.get("alg", "RS256") != "RS256"
            or not isinstance(kid, str)
            or not kid
        ):
            continue
        try:
            # Only the public members: a JWKS that leaks `d` must not give us a private key.
            key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": jwk.get("n"), "e": jwk.get("e")})
        except Exception:  # any malformed member; PyJWT raises several types
            logger.warning("skipping a malformed JWK", extra={"kid": kid[:64]})
            continue
        if isinstance(key, RSAPublicKey) and key.key_size >= MIN_KEY_BITS:
            keys[kid] = key
    if not keys:
        raise JwksError("the document has no usable RS256 key")
    return keys


def cache_ttl(cache_control: str | None, settings: Settings) -> float:
    """The `max-age` of a response, or the default, clamped to the configured floor/ceiling."""
    ttl = settings.jwks_default_ttl_seconds
    if cache_control:
        if _NO_CACHE.search(cache_control):
            ttl = settings.jwks_min_ttl_seconds
        elif match := _MAX_AGE.search(cache_control):
            ttl = float(match.group(1))
    return min(max(ttl, settings.jwks_min_ttl_seconds), settings.jwks_max_ttl_seconds)


def describe_fetch_error(exc: Exception) -> str:
    """A short, secret-free line for health and logs (the revocation follower uses it too)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class JwksCache:
    """Holds the current key set; refreshes it in a background task started by `start()`."""

    def __init__(
        self,
        settings: Settings,
        metrics: TasksMetrics,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._client = client
        self._owns_client = client is None
        self._clock = clock
        self._wall_clock = wall_clock
        self._jwks_url = str(settings.auth_jwks_url) if settings.auth_jwks_url else None
        self._key_set: KeySet | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._last_forced_fetch: float | None = None
        self._failures = 0
        self._last_error: str | None = None
        self._runner: asyncio.Task[None] | None = None
        metrics.jwks_stale.set_function(lambda: 1.0 if self.stale else 0.0)

    @property
    def loaded(self) -> bool:
        return self._key_set is not None

    @property
    def stale(self) -> bool:
        """Past the key set's max-age (the refresh ahead of it kept failing), or none yet."""
        return self._key_set is None or self._clock() >= self._key_set.expires_at

    def has_key(self, kid: str) -> bool:
        return self._key_set is not None and kid in self._key_set.keys

    async def start(self) -> None:
        """Begin background refreshing; returns at once, whether or not auth is reachable."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._settings.jwks_fetch_timeout_seconds,
                headers={"Accept": "application/json", "User-Agent": "taskgate-tasks"},
            )
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="jwks-refresh")

    async def stop(self) -> None:
        for task in (self._runner, self._inflight):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._runner = None
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def key_for(self, kid: str) -> RSAPublicKey | None:
        """The key for `kid`; an unknown `kid` forces a fetch at most once per cooldown."""
        if self._key_set is not None and (key := self._key_set.keys.get(kid)) is not None:
            return key
        now = self._clock()
        cooldown = self._settings.jwks_unknown_kid_cooldown_seconds
        if self._last_forced_fetch is not None and now - self._last_forced_fetch < cooldown:
            return None
        # Set before awaiting, so concurrent requests with forged kids do not fetch again.
        self._last_forced_fetch = now
        await self.refresh("unknown_kid")
        return self._key_set.keys.get(kid) if self._key_set is not None else None

    async def refresh(self, trigger: str = "scheduled") -> bool:
        """Fetch now (joining a fetch already under way); True when the key set was replaced."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._fetch(trigger))
        return await asyncio.shield(self._inflight)

    def state(self) -> dict[str, Any]:
        """What readiness reports: how many keys, how old, and whether auth answers."""
        key_set = self._key_set
        now = self._clock()
        return {
            "loaded": key_set is not None,
            "keys": len(key_set.keys) if key_set else 0,
            "age_seconds": round(now - key_set.fetched_at, 1) if key_set else None,
            "stale": self.stale,
            "consecutive_failures": self._failures,
            "last_error": self._last_error,
        }

    async def _run(self) -> None:
        while True:
            try:
                ok = await self.refresh("scheduled")
            except Exception:  # the loop must outlive any surprise
                logger.exception("JWKS refresh crashed")
                ok = False
            await asyncio.sleep(self._next_delay(ok))

    def _next_delay(self, ok: bool) -> float:
        key_set = self._key_set
        if ok and key_set is not None:
            return (key_set.expires_at - key_set.fetched_at) * REFRESH_AHEAD
        backoff = float(2 ** min(self._failures - 1, 16)) if self._failures else 1.0
        return min(backoff, self._settings.jwks_retry_max_seconds)

    async def _fetch(self, trigger: str) -> bool:
        try:
            url = await self._resolve_jwks_url()
            response = await self._http().get(url)
            response.raise_for_status()
            keys = parse_jwks(response.json())
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, JwksError) as exc:
            self._failures += 1
            self._last_error = describe_fetch_error(exc)
            self._metrics.jwks_fetch_failures.labels(trigger=trigger).inc()
            logger.warning(
                "JWKS fetch failed; keeping the last good key set",
                extra={
                    "trigger": trigger,
                    "error": self._last_error,
                    "cached_keys": len(self._key_set.keys) if self._key_set else 0,
                    "consecutive_failures": self._failures,
                },
            )
            return False
        now = self._clock()
        ttl = cache_ttl(response.headers.get("cache-control"), self._settings)
        self._key_set = KeySet(keys=keys, fetched_at=now, expires_at=now + ttl)
        self._failures = 0
        self._last_error = None
        self._metrics.jwks_refreshes.labels(trigger=trigger).inc()
        self._metrics.jwks_keys.set(len(keys))
        self._metrics.jwks_last_success.set(self._wall_clock())
        logger.info("JWKS refreshed", extra={"trigger": trigger, "keys": len(keys), "ttl": ttl})
        return True

    async def _resolve_jwks_url(self) -> str:
        if self._jwks_url is None:
            response = await self._http().get(self._settings.discovery_url)
            response.raise_for_status()
            document = response.json()
            jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("http://", "https://")):
                raise JwksError("the openid-configuration has no usable `jwks_uri`")
            self._jwks_url = jwks_uri
        return self._jwks_url

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("JwksCache.start() was not called")
        return self._client
