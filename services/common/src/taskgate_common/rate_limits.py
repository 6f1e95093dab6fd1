"""Application rate limits on the `limits` library, one implementation for both services.

Counters live in process memory by default and in Redis when `*_RATE_LIMIT_STORAGE_URL` says
`redis://…`, so every replica counts against the same buckets. Every call to the store is
bounded in time; when the store fails, the caller decides per endpoint whether to let the
request through (fail open) or to refuse it with a 503 (fail closed), and the failure is
counted. A failed store is left alone for a moment instead of costing every request a timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from prometheus_client import CollectorRegistry, Counter
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskgate_common.errors import ApiError
from taskgate_common.redis_windows import RedisWindows

logger = logging.getLogger("taskgate.rate_limits")

Strategy = Literal["moving-window", "sliding-window-counter", "fixed-window"]
T = TypeVar("T")

STORE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")
UNAVAILABLE_RETRY_AFTER = 5
STATE_KEY = "rate_limit_quota"
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def check_storage_url(url: str) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in STORE_SCHEMES:
        raise ValueError(f"rate-limit storage must be one of {', '.join(STORE_SCHEMES)}://…")
    return url


def check_limit(text: str) -> str:
    """`10/minute`, `5 per second`, `100/hour;1000/day`: the `limits` notation."""
    if not parse_many(text):
        raise ValueError(f"not a rate limit: {text!r}")
    return text


def digest(value: str) -> str:
    """Keys from user input (emails, usernames) are stored hashed, never in clear text."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def _strategy(name: Strategy, storage: Storage) -> RateLimiter:
    if name == "moving-window":
        return MovingWindowRateLimiter(storage)
    if name == "sliding-window-counter":
        return SlidingWindowCounterRateLimiter(storage)
    return FixedWindowRateLimiter(storage)


class StoreUnavailable(Exception):
    """The counter store failed, timed out, or is resting after a recent failure."""


class CounterStore:
    """The `limits` storage and strategy, with a time bound on every call."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        strategy: Strategy = "moving-window",
        pause_after_failure: float = 1.0,
    ) -> None:
        check_storage_url(url)
        self.url = url
        self.storage: Storage = (
            MemoryStorage(wrap_exceptions=True)
            if url.startswith("memory")
            else RedisStorage(
                f"async+{url}",
                wrap_exceptions=True,
                connect_timeout=timeout,
                stream_timeout=timeout,
            )
        )
        self.strategy: RateLimiter = _strategy(strategy, self.storage)
        # The default (moving window in Redis) hits all of a request's limits in one script.
        self.windows = (
            RedisWindows(url, timeout=timeout)
            if strategy == "moving-window" and not url.startswith("memory")
            else None
        )
        self.timeout = timeout
        self.pause_after_failure = pause_after_failure
        self._resting_until = 0.0

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        if time.monotonic() < self._resting_until:
            raise StoreUnavailable("resting after a recent failure")
        try:
            async with asyncio.timeout(self.timeout):
                return await call()
        except Exception as exc:  # any store failure is handled the same way by the caller
            self._resting_until = time.monotonic() + self.pause_after_failure
            logger.warning("rate-limit store failed: %s: %s", type(exc).__name__, exc)
            raise StoreUnavailable(str(exc)) from exc

    async def hit(self, item: RateLimitItem, *key: str) -> bool:
        return await self.run(lambda: self.strategy.hit(item, *key))

    async def hit_in_order(
        self, checks: Sequence[tuple[RateLimitItem, tuple[str, ...]]]
    ) -> list[tuple[bool, Quota]]:
        """Hit each `(item, key parts)` in order, up to and including the first refused one;
        with each, the quota it leaves. One round trip when `windows` is set, else two per
        item (the count, then the window's state)."""
        if self.windows is not None:
            windows = self.windows
            hits = await self.run(lambda: windows.hit(checks))
            now = time.time()
            return [
                (
                    hit.allowed,
                    Quota(item.amount, hit.remaining, max(0, math.ceil(hit.reset_at - now))),
                )
                for hit, (item, _) in zip(hits, checks, strict=False)
            ]
        answers: list[tuple[bool, Quota]] = []
        for item, key in checks:
            allowed = await self.hit(item, *key)
            answers.append((allowed, await self.quota(item, *key)))
            if not allowed:
                break
        return answers

    # Plain counters with an expiry, for state that is not a rate (the auth lockout): the
    # same store, the same time bound, and no caller reaching into the `limits` storage.
    async def incr(self, key: str, expiry_seconds: int) -> int:
        """Add one to `key` (created with `expiry_seconds` to live); the new value."""
        return await self.run(lambda: self.storage.incr(key, expiry_seconds))

    async def get(self, key: str) -> int:
        """The counter's value; 0 when it does not exist or has expired."""
        return await self.run(lambda: self.storage.get(key))

    async def expires_at(self, key: str) -> float:
        """When the counter expires, as a Unix time."""
        return await self.run(lambda: self.storage.get_expiry(key))

    async def clear(self, key: str) -> None:
        await self.run(lambda: self.storage.clear(key))

    async def quota(self, item: RateLimitItem, *key: str) -> Quota:
        stats = await self.run(lambda: self.strategy.get_window_stats(item, *key))
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Quota(item.amount, max(0, stats.remaining), reset)


@dataclass(frozen=True)
class Quota:
    """What the `RateLimit-*` headers tell the client about its tightest limit."""

    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


@dataclass(frozen=True)
class Limit:
    """One configured limit: a name (key part and metric label) and its `limits` items."""

    name: str
    items: tuple[RateLimitItem, ...]

    @classmethod
    def parse(cls, name: str, text: str) -> Limit:
        return cls(name, tuple(parse_many(check_limit(text))))


class RateLimitMetrics:
    def __init__(self, registry: CollectorRegistry, namespace: str) -> None:
        self.limited = Counter(
            f"{namespace}_rate_limited_total",
            "Requests refused with 429 by an application rate limit, by limit",
            ["limit"],
            registry=registry,
        )
        self.store_errors = Counter(
            f"{namespace}_rate_limit_store_errors_total",
            "Requests the rate-limit store could not answer, by outcome "
            "(allowed: failed open, refused: failed closed with 503)",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("allowed", "refused"):
            self.store_errors.labels(outcome=outcome)


def rate_limited(quota: Quota, detail: str = "Too many requests; try again later") -> ApiError:
    retry_after = max(1, quota.reset_seconds)
    return ApiError(
        429, "rate_limited", detail, {**quota.headers(), "Retry-After": str(retry_after)}
    )


def limiter_unavailable() -> ApiError:
    return ApiError(
        503,
        "rate_limiter_unavailable",
        "The rate limiter is unavailable, so this request is refused; try again shortly",
        {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )


class AppRateLimiter:
    """Counts requests against named limits; answers 429, or 503 when failing closed."""

    def __init__(self, store: CounterStore, metrics: RateLimitMetrics, namespace: str) -> None:
        self.store = store
        self.metrics = metrics
        self.namespace = namespace

    def store_failed(self, fail_closed: bool) -> None:
        """Count a store failure; raise the 503 when the endpoint fails closed."""
        if fail_closed:
            self.metrics.store_errors.labels(outcome="refused").inc()
            raise limiter_unavailable()
        self.metrics.store_errors.labels(outcome="allowed").inc()

    async def hit(self, request: Request, *checks: tuple[Limit, str], fail_closed: bool) -> None:
        """One request against each `(limit, key)`, in order; the first exhausted one answers."""
        tightest: Quota | None = getattr(request.state, STATE_KEY, None)
        # Each limit's items (e.g. "10/minute;100/hour" is two), keyed by namespace, name, key.
        flat = [
            (limit, item, (self.namespace, limit.name, key))
            for limit, key in checks
            for item in limit.items
        ]
        try:
            answers = await self.store.hit_in_order([(item, parts) for _, item, parts in flat])
        except StoreUnavailable:
            self.store_failed(fail_closed)
            return
        # Answers stop at the first refused item (later ones were not counted).
        for (allowed, quota), (limit, _, _) in zip(answers, flat, strict=False):
            if not allowed:
                self.metrics.limited.labels(limit=limit.name).inc()
                raise rate_limited(Quota(quota.limit, 0, quota.reset_seconds))
            if tightest is None or quota.remaining < tightest.remaining:
                tightest = quota
        if tightest is not None:
            setattr(request.state, STATE_KEY, tightest)


class RateLimitHeadersMiddleware:
    """Adds the `RateLimit-*` headers of the request's tightest limit to a successful answer.

    A dependency cannot set headers on a `Response` the route returns itself, so the limiter
    leaves the quota in the request state and this (pure ASGI) middleware writes it out.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                quota = scope.get("state", {}).get(STATE_KEY)
                headers = message.get("headers", [])
                if isinstance(quota, Quota) and not any(
                    name.lower() == b"ratelimit-limit" for name, _ in headers
                ):
                    message["headers"] = [
                        *headers,
                        *((k.lower().encode(), v.encode()) for k, v in quota.headers().items()),
                    ]
            await send(message)

        await self.app(scope, receive, send_with_quota)


class _LimiterSettings(Protocol):
    rate_limit_enabled: bool
    rate_limit_storage_url: str
    rate_limit_storage_timeout_seconds: float
    rate_limit_strategy: Strategy


def build_limiter(
    settings: _LimiterSettings, registry: CollectorRegistry, namespace: str
) -> AppRateLimiter | None:
    """The service's limiter, or None when `*_RATE_LIMIT_ENABLED` is false."""
    if not settings.rate_limit_enabled:
        return None
    store = CounterStore(
        settings.rate_limit_storage_url,
        timeout=settings.rate_limit_storage_timeout_seconds,
        strategy=settings.rate_limit_strategy,
    )
    return AppRateLimiter(store, RateLimitMetrics(registry, namespace), namespace)
