"""The one-script moving window (taskgate_common.redis_windows) against `limits`' own.

The script replaces `limits`' two scripts per item on the hot path; these tests keep the two
in step on a real Redis: the same hits allowed and refused, the same remaining and reset,
the same keys (so `limits` can read and clear what the script wrote), and the first
exhausted limit stops the request before later limits are counted.
"""

from __future__ import annotations

import math
import time

import pytest
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from taskgate_common.rate_limits import CounterStore
from taskgate_devstack.pytest_plugin import RedisForTests


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A settable `time.time` for both implementations (the window's edges, exactly)."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


def _stores(url: str) -> tuple[CounterStore, MovingWindowRateLimiter]:
    ours = CounterStore(url, timeout=2.0)
    assert ours.windows is not None  # the default strategy on Redis takes the one-script path
    theirs = MovingWindowRateLimiter(RedisStorage(f"async+{url}"))
    return ours, theirs


async def test_same_answers_as_limits_moving_window(
    redis: RedisForTests, clock: list[float]
) -> None:
    ours, theirs = _stores(redis.url)
    item = parse("3/10 seconds")
    # Hits at these offsets (s): three fit, the fourth and fifth are refused, then the oldest
    # leaves the window one by one.
    offsets = [0.0, 1.0, 2.0, 3.0, 9.9, 10.0, 10.5, 11.0, 11.5, 12.0, 25.0]
    start = clock[0]
    for offset in offsets:
        clock[0] = start + offset
        [(allowed, quota)] = await ours.hit_in_order([(item, ("ours", "k"))])
        their_allowed = await theirs.hit(item, "theirs", "k")
        stats = await theirs.get_window_stats(item, "theirs", "k")
        assert allowed == their_allowed, offset
        assert quota.remaining == max(0, stats.remaining), offset
        assert quota.reset_seconds == max(0, math.ceil(stats.reset_time - clock[0])), offset
        assert quota.limit == 3


async def test_limits_reads_and_clears_the_scripts_windows(
    redis: RedisForTests, clock: list[float]
) -> None:
    ours, theirs = _stores(redis.url)
    item = parse("2/minute")
    for _ in range(2):
        await ours.hit_in_order([(item, ("shared", "k"))])
    assert not await theirs.test(item, "shared", "k")  # same key, same layout: full
    await theirs.clear(item, "shared", "k")
    [(allowed, quota)] = await ours.hit_in_order([(item, ("shared", "k"))])
    assert allowed
    assert quota.remaining == 1


async def test_the_first_exhausted_limit_stops_the_later_ones(
    redis: RedisForTests, clock: list[float]
) -> None:
    ours, theirs = _stores(redis.url)
    per_address, per_account = parse("1/minute"), parse("5/minute")
    checks = [(per_address, ("t", "ip", "a")), (per_account, ("t", "acct", "x"))]
    first = await ours.hit_in_order(checks)
    assert [allowed for allowed, _ in first] == [True, True]
    assert [quota.remaining for _, quota in first] == [0, 4]
    refused = await ours.hit_in_order(checks)
    assert [allowed for allowed, _ in refused] == [False]  # stops at the address's limit
    assert refused[0][1].reset_seconds == 60
    # The account's window was not counted by the refused request: still four left.
    stats = await theirs.get_window_stats(per_account, "t", "acct", "x")
    assert stats.remaining == 4
