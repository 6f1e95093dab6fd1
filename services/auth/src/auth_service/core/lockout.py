"""Brute-force lockout: too many failed logins in a row lock a login name for a while.

The state sits in the rate-limit store (memory, or Redis shared by every replica), keyed by a
hash of the login name as typed (normalised), not by account: unknown names lock exactly like
real ones, so neither the lock nor its timing tells which accounts exist. Each lockout within
`lockout_memory_seconds` of the last doubles the next one, up to the maximum delay.
"""

from __future__ import annotations

import math
import time
from functools import partial

from prometheus_client import CollectorRegistry, Counter

from auth_service.core.config import Settings
from taskgate_common.errors import ApiError
from taskgate_common.rate_limits import AppRateLimiter, StoreUnavailable, digest


def login_name(identifier: str) -> str:
    """Usernames and emails are unique regardless of case: so are their counters."""
    return identifier.strip().lower()


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
        base = f"auth/lockout/{digest(login_name(identifier))}"
        return f"{base}/failures", f"{base}/locked", f"{base}/strikes"

    async def check(self, identifier: str) -> None:
        """Raise the 429 while `identifier` is locked (before any password is looked at)."""
        if self.limiter is None:
            return
        store = self.limiter.store
        _, locked, _ = self._keys(identifier)
        try:
            if not await store.run(partial(store.storage.get, locked)):
                return
            until = await store.run(partial(store.storage.get_expiry, locked))
        except StoreUnavailable:
            self.limiter.store_failed(self.fail_closed)
            return
        raise login_locked(math.ceil(until - time.time()))

    async def failed(self, identifier: str) -> None:
        """Count a failed login; the `threshold`-th in a row locks the name."""
        if self.limiter is None:
            return
        settings = self.settings
        storage = self.limiter.store.storage
        failures, locked, strikes = self._keys(identifier)
        try:
            count = await self.limiter.store.run(
                partial(storage.incr, failures, settings.lockout_window_seconds)
            )
            if count < settings.lockout_threshold:
                return
            strike = await self.limiter.store.run(
                partial(storage.incr, strikes, settings.lockout_memory_seconds)
            )
            delay = min(
                settings.lockout_base_delay_seconds * 2 ** min(strike - 1, 30),
                settings.lockout_max_delay_seconds,
            )
            await self.limiter.store.run(partial(storage.clear, locked))
            await self.limiter.store.run(partial(storage.incr, locked, delay))
            await self.limiter.store.run(partial(storage.clear, failures))
        except StoreUnavailable:
            self.limiter.store_failed(fail_closed=False)  # the answer is a 401 anyway
            return
        self.lockouts.inc()

    async def clear(self, *identifiers: str) -> None:
        """A successful login or a password reset forgives every past failure."""
        if self.limiter is None:
            return
        storage = self.limiter.store.storage
        try:
            for identifier in identifiers:
                for key in self._keys(identifier):
                    await self.limiter.store.run(partial(storage.clear, key))
        except StoreUnavailable:
            self.limiter.store_failed(fail_closed=False)
