"""Brute-force lockout: too many failed logins in a row lock a login name for a while.

The state sits in the rate-limit store (memory, or Redis shared by every replica), keyed by a
hash of the login name's identity key (`core/identity_keys.py`), not by account: unknown names
lock exactly like real ones, so neither the lock nor its timing tells which accounts exist.
Each lockout within `lockout_memory_seconds` of the last doubles the next one, up to the
maximum delay. Every endpoint that checks a password counts here (`services/password_checks`).
"""

from __future__ import annotations

import math
import time

from prometheus_client import CollectorRegistry, Counter

from auth_service.core.config import Settings
from auth_service.core.identity_keys import identity_key
from taskgate_common.errors import ApiError
from taskgate_common.rate_limits import AppRateLimiter, StoreUnavailable, digest


def login_locked(retry_after: int) -> ApiError:
    return ApiError(
        429,
        "login_locked",
        "Too many failed logins for this username or email; try again later or reset the password",
        {"Retry-After": str(max(1, retry_after))},
    )


class LoginLockout:
    def __init__(
        self, settings: Settings, limiter: AppRateLimiter | None, registry: CollectorRegistry
    ) -> None:
        self.settings = settings
        self.limiter = limiter if settings.lockout_threshold > 0 else None
        self.fail_closed = settings.rate_limit_fail_closed
        self.lockouts = Counter(
            "auth_login_lockouts_total",
            "Login names locked after too many failed logins in a row",
            registry=registry,
        )

    def _keys(self, identifier: str) -> tuple[str, str, str]:
        base = f"auth/lockout/{digest(identity_key(identifier))}"
        return f"{base}/failures", f"{base}/locked", f"{base}/strikes"

    async def check(self, *identifiers: str) -> None:
        """Raise the 429 while any of `identifiers` is locked (before any password is read)."""
        if self.limiter is None:
            return
        store = self.limiter.store
        try:
            for identifier in identifiers:
                _, locked, _ = self._keys(identifier)
                if await store.get(locked):
                    until = await store.expires_at(locked)
                    raise login_locked(math.ceil(until - time.time()))
        except StoreUnavailable:
            self.limiter.store_failed(self.fail_closed)

    async def failed(self, *identifiers: str) -> None:
        """Count a failed password; the `threshold`-th in a row locks the name."""
        if self.limiter is None:
            return
        settings = self.settings
        store = self.limiter.store
        try:
            for identifier in identifiers:
                failures, locked, strikes = self._keys(identifier)
                if await store.incr(failures, settings.lockout_window_seconds) < (
                    settings.lockout_threshold
                ):
                    continue
                strike = await store.incr(strikes, settings.lockout_memory_seconds)
                delay = min(
                    settings.lockout_base_delay_seconds * 2 ** min(strike - 1, 30),
                    settings.lockout_max_delay_seconds,
                )
                await store.clear(locked)
                await store.incr(locked, delay)
                await store.clear(failures)
                self.lockouts.inc()
        except StoreUnavailable:
            self.limiter.store_failed(fail_closed=False)  # the answer is a 401 anyway

    async def clear(self, *identifiers: str) -> None:
        """A successful login or a password reset forgives every past failure."""
        if self.limiter is None:
            return
        store = self.limiter.store
        try:
            for identifier in identifiers:
                for key in self._keys(identifier):
                    await store.clear(key)
        except StoreUnavailable:
            self.limiter.store_failed(fail_closed=False)
