"""App rate limits on the credential endpoints, in memory and in a real Redis.

Limits are set low enough to reach in a few requests: no test waits for a window to pass.
"""

from __future__ import annotations

import time

from auth_factories import MakeAccountFn
from limits_support import client, limited_app, login, metric

from auth_service.core.config import Settings
from taskgate_devstack.postgres import free_port
from taskgate_devstack.pytest_plugin import RedisForTests
from taskgate_devstack.redis import RedisServer


async def test_login_per_ip_answers_429_with_headers(settings: Settings, store_url: str) -> None:
    async with (
        limited_app(
            settings, rate_limit_storage_url=store_url, rate_limit_login_per_ip="3/minute"
        ) as app,
        client(app) as http,
    ):
        answers = [await login(http, f"nobody{n}", "wrong password") for n in range(4)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" for a in answers)
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert 0 < int(refused.headers["RateLimit-Reset"]) <= 60
    assert metric(app, "auth_rate_limited_total", limit="login_ip") == 1


async def test_a_successful_answer_carries_the_headers_too(
    settings: Settings, make_account: MakeAccountFn, store_url: str
) -> None:
    account = await make_account()
    async with limited_app(settings, rate_limit_storage_url=store_url) as app, client(app) as http:
        response = await login(http, account.username, account.password)
    assert response.status_code == 200
    # The tightest of the two limits: per account (5/minute) before per IP (10/minute).
    assert response.headers["RateLimit-Limit"] == "5"
    assert response.headers["RateLimit-Remaining"] == "4"


async def test_two_instances_sharing_redis_enforce_one_limit(
    settings: Settings, redis: RedisForTests
) -> None:
    options = {"rate_limit_storage_url": redis.url, "rate_limit_login_per_ip": "4/minute"}
    async with (
        limited_app(settings, **options) as a,
        limited_app(settings, **options) as b,
        client(a) as http_a,
        client(b) as http_b,
    ):
        statuses = [
            (await login(http, "nobody", "wrong password")).status_code
            for http in (http_a, http_b, http_a, http_b, http_a, http_b)
        ]
    assert statuses == [401, 401, 401, 401, 429, 429]


async def test_memory_mode_limits_each_instance_on_its_own(settings: Settings) -> None:
    options = {"rate_limit_storage_url": "memory://", "rate_limit_login_per_ip": "2/minute"}
    async with (
        limited_app(settings, **options) as a,
        limited_app(settings, **options) as b,
        client(a) as http_a,
        client(b) as http_b,
    ):
        first = [(await login(http_a, "nobody", "x")).status_code for _ in range(3)]
        second = [(await login(http_b, "nobody", "x")).status_code for _ in range(2)]
    assert first == [401, 401, 429]
    assert second == [401, 401]


async def test_per_account_limit_holds_whatever_the_ip(settings: Settings, store_url: str) -> None:
    async with limited_app(
        settings, rate_limit_storage_url=store_url, rate_limit_login_per_account="2/minute"
    ) as app:
        statuses = []
        for n, name in enumerate(["Victim", "victim", " VICTIM "]):
            async with client(app, f"198.51.100.{n + 1}") as http:
                statuses.append((await login(http, name, "guess")).status_code)
    assert statuses == [401, 401, 429]


async def test_token_endpoint_shares_the_login_buckets(settings: Settings) -> None:
    async with (
        limited_app(settings, rate_limit_login_per_ip="2/minute") as app,
        client(app) as http,
    ):
        await login(http, "nobody", "x")
        form = {"grant_type": "password", "username": "nobody", "password": "x"}
        await http.post("/auth/token", data=form)
        third = await http.post("/auth/token", data=form)
    assert third.status_code == 429


async def test_register_per_ip(settings: Settings, store_url: str) -> None:
    async with (
        limited_app(
            settings, rate_limit_storage_url=store_url, rate_limit_register_per_ip="2/minute"
        ) as app,
        client(app) as http,
    ):
        statuses = [
            (
                await http.post(
                    "/auth/register",
                    json={
                        "email": f"reg{n}-{time.time_ns()}@example.com",
                        "username": f"reg{n}_{time.time_ns() % 10**9}",
                        "password": "long enough password",
                    },
                )
            ).status_code
            for n in range(3)
        ]
    assert statuses == [201, 201, 429]


async def test_refresh_is_limited_per_family(
    settings: Settings, make_account: MakeAccountFn, store_url: str
) -> None:
    account = await make_account()
    async with (
        limited_app(
            settings, rate_limit_storage_url=store_url, rate_limit_refresh_per_family="2/minute"
        ) as app,
        client(app) as http,
    ):
        tokens = (await login(http, account.username, account.password)).json()
        other = (await login(http, account.username, account.password)).json()
        statuses = []
        for _ in range(3):
            answer = await http.post(
                "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                tokens = answer.json()  # rotated: a new token, the same family
        other_family = await http.post(
            "/auth/refresh", json={"refresh_token": other["refresh_token"]}
        )
    assert statuses == [200, 200, 429]
    assert other_family.status_code == 200


async def test_forgot_password_is_limited_per_account(settings: Settings, store_url: str) -> None:
    async with (
        limited_app(
            settings,
            rate_limit_storage_url=store_url,
            rate_limit_forgot_password_per_account="2/hour",
        ) as app,
        client(app) as http,
    ):
        statuses = [
            (await http.post("/auth/forgot-password", json={"email": email})).status_code
            for email in ("someone@example.com", "SomeOne@example.com", "someone@EXAMPLE.com")
        ]
        other = await http.post("/auth/forgot-password", json={"email": "other@example.com"})
    assert statuses == [202, 202, 429]
    assert other.status_code == 202


async def test_a_spoofed_forwarded_for_from_an_untrusted_client_is_ignored(
    settings: Settings,
) -> None:
    async with (
        limited_app(
            settings, rate_limit_login_per_ip="2/minute", trusted_proxies=["10.0.0.0/8"]
        ) as app,
        client(app, "203.0.113.9") as http,
    ):
        statuses = [
            (
                await http.post(
                    "/auth/login",
                    json={"username": f"nobody{n}", "password": "x"},
                    headers={"X-Forwarded-For": f"198.51.100.{n}"},
                )
            ).status_code
            for n in range(3)
        ]
    assert statuses == [401, 401, 429]


async def test_a_trusted_proxy_forwards_the_client_address(settings: Settings) -> None:
    async with (
        limited_app(
            settings, rate_limit_login_per_ip="2/minute", trusted_proxies=["10.0.0.0/8"]
        ) as app,
        client(app, "10.0.0.2") as gateway,
    ):

        async def attempt(forwarded: str) -> int:
            answer = await gateway.post(
                "/auth/login",
                json={"username": f"n{time.time_ns()}", "password": "x"},
                headers={"X-Forwarded-For": forwarded},
            )
            return answer.status_code

        # The client invents the left part; the right-most untrusted address counts.
        first = [await attempt(f"1.1.1.{n}, 198.51.100.7") for n in range(3)]
        second = [await attempt("198.51.100.8") for _ in range(2)]
    assert first == [401, 401, 429]
    assert second == [401, 401]


async def test_redis_down_fails_closed_with_503_and_is_counted(
    settings: Settings, spare_redis: RedisServer
) -> None:
    async with (
        limited_app(settings, rate_limit_storage_url=spare_redis.url) as app,
        client(app) as http,
    ):
        assert (await login(http, "nobody", "x")).status_code == 401
        spare_redis.stop()
        started = time.monotonic()
        answers = [await login(http, "nobody", "x") for _ in range(2)]
        elapsed = time.monotonic() - started
    assert [a.status_code for a in answers] == [503, 503]
    assert answers[0].json()["code"] == "rate_limiter_unavailable"
    assert int(answers[0].headers["Retry-After"]) > 0
    assert elapsed < 3  # bounded: a dead store never hangs a request
    assert metric(app, "auth_rate_limit_store_errors_total", outcome="refused") == 2


async def test_redis_down_fails_open_when_configured(settings: Settings) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with (
        limited_app(settings, rate_limit_storage_url=dead, rate_limit_fail_closed=False) as app,
        client(app) as http,
    ):
        answer = await login(http, "nobody", "x")
        registered = await http.post("/auth/forgot-password", json={"email": "someone@example.com"})
    assert answer.status_code == 401  # checked as if no limit existed
    assert registered.status_code == 202
    assert "RateLimit-Limit" not in answer.headers
    assert metric(app, "auth_rate_limit_store_errors_total", outcome="allowed") >= 2
