"""Every moving-window limit of one request, checked and counted in Redis in one round trip.

Why: through the `limits` library each limit item costs two scripts, one to count the hit and
one to read the window for the `RateLimit-*` headers, so a write paid two round trips and a
refresh (a per-address and a per-family limit) four: 0.3 and 0.9 ms of service CPU at the
bench's load. This script does what those two scripts do, for all of a request's items at
once, in the order they are checked, stopping at the first exhausted one as the loop did.

It keeps `limits`' layout and rule (a list of hit times per key, newest first, at most `limit`
long; a hit is refused when the `limit`-th newest is still inside the window), and a test
runs it beside `limits`' own moving window to keep the two in step. The in-memory store
(`make dev`, tests) still goes through `limits`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import coredis
from coredis.commands import Script
from limits import RateLimitItem

# KEYS: one window per item, in checking order. ARGV[1]: now (seconds); then, per key, its
# limit and its length in seconds. Returns {index of the refused key or 0, then per checked
# key: the hits inside the window and the oldest of them}.
_HIT_WINDOWS = """
local now = tonumber(ARGV[1])
local out = {0}
for i, key in ipairs(KEYS) do
    local limit = tonumber(ARGV[2 * i])
    local expiry = tonumber(ARGV[2 * i + 1])
    local start = now - expiry
    local edge = redis.call('lindex', key, limit - 1)
    local refused = edge and tonumber(edge) >= start
    if not refused then
        redis.call('lpush', key, ARGV[1])
        redis.call('ltrim', key, 0, limit - 1)
        redis.call('expire', key, expiry)
    end
    local low, high, last = 0, redis.call('llen', key) - 1, -1
    while low <= high do
        local mid = math.floor((low + high) / 2)
        if tonumber(redis.call('lindex', key, mid)) >= start then
            last = mid
            low = mid + 1
        else
            high = mid - 1
        end
    end
    out[#out + 1] = last + 1
    out[#out + 1] = last >= 0 and redis.call('lindex', key, last) or ARGV[1]
    if refused then
        out[1] = i
        return out
    end
end
return out
"""


@dataclass(frozen=True)
class WindowHit:
    """One item's answer: whether the hit counted, what is left and when the window frees."""

    allowed: bool
    remaining: int
    reset_at: float  # Unix time at which the oldest hit in the window leaves it


class RedisWindows:
    """The moving windows of `limits`' Redis store, hit together (see the module docstring)."""

    KEY_PREFIX = "LIMITS"  # `limits`' own prefix: the same keys as its moving window

    def __init__(self, url: str, *, timeout: float) -> None:
        # The URL as `limits` reads it: `redis+unix://` is coredis' `unix://`.
        self.client: coredis.Redis[bytes] = coredis.Redis.from_url(
            url.replace("redis+unix://", "unix://", 1),
            connect_timeout=timeout,
            stream_timeout=timeout,
        )
        self.script: Script[bytes] = self.client.register_script(_HIT_WINDOWS)

    async def hit(self, checks: Sequence[tuple[RateLimitItem, tuple[str, ...]]]) -> list[WindowHit]:
        """Hit each `(item, key parts)` in order; the answers up to the first refused one."""
        now = time.time()
        keys: list[str | bytes] = []
        args: list[str | bytes | int | float] = [repr(now)]
        for item, parts in checks:
            keys.append(f"{self.KEY_PREFIX}:{item.key_for(*parts)}")
            args += [item.amount, item.get_expiry()]
        reply = cast(list[Any], await self.script.execute(keys, tuple(args)))
        refused = int(reply[0])
        hits = []
        for index, (item, _) in enumerate(checks[: len(reply[1:]) // 2]):
            count, oldest = int(reply[1 + 2 * index]), float(reply[2 + 2 * index])
            hits.append(
                WindowHit(
                    allowed=refused != index + 1,
                    remaining=max(0, item.amount - count),
                    reset_at=oldest + item.get_expiry(),
                )
            )
        return hits
