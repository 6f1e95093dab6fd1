"""Two replicas of each service behind the real gateway, sharing a Redis for their limits, as
`TASKGATE_REPLICAS=2 make dev` runs them (docs/operations.md, "Several replicas").

What holds across replicas: the rate limits and the lockout, one successor for concurrent
refreshes of one token, list cursors, a signing-key rotation; what a rolling restart of every
replica under load costs (nothing) and what a replica killed with SIGKILL costs (only the
requests it held, and no acknowledged write). That the requests really spread over both
replicas is read from each replica's own `/metrics`, or the gateway's access log.

The module runs a stack of its own (temporary_stack(..., replicas=2)). Its gateway checks
`/health/ready` every second instead of every 5 s (TASKGATE_HEALTHCHECK_INTERVAL), and the
services drain 4 s on SIGTERM (the interval, the check's 2 s timeout and a margin), so that a
replica's restart takes seconds, not the 6 s drain the dev stack uses per replica. Its Redis
calls may take 2 s instead of 0.25 s before failing: on the shared 2-core test machine, a
starved event loop made the 0.25 s bound fail requests that had nothing to do with Redis.
Figures are printed (`-s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import jwt
import pytest
from e2e_support import GatewayAccount, new_account, temporary_stack
from reliability_support import all_tasks, own_ip_client, wait_until
from sse_client import open_stream

from auth_service.core.signing_keys import write_new_key
from taskgate_devstack.pytest_plugin import NO_REDIS
from taskgate_devstack.redis import redis_binary
from taskgate_devstack.stack import DevStack

DRAIN_SECONDS = "4"
REPLICA_ENV = {
    "auth": {
        "AUTH_RATE_LIMIT_LOGIN_PER_IP": "4/minute",  # the limit the first test meets
        "AUTH_RATE_LIMIT_LOGIN_PER_ACCOUNT": "1000/minute",
        "AUTH_RATE_LIMIT_REGISTER_PER_IP": "1000/minute",
        "AUTH_RATE_LIMIT_REFRESH_PER_IP": "1000/minute",
        "AUTH_RATE_LIMIT_REFRESH_PER_FAMILY": "1000/minute",
        "AUTH_LOCKOUT_THRESHOLD": "4",
        "AUTH_SHUTDOWN_DRAIN_SECONDS": DRAIN_SECONDS,
        "AUTH_RATE_LIMIT_STORAGE_TIMEOUT_SECONDS": "2",
    },
    "tasks": {
        "TASKS_RATE_LIMIT_WRITES_PER_USER": "100000/minute",
        "TASKS_SHUTDOWN_DRAIN_SECONDS": DRAIN_SECONDS,
        "TASKS_RATE_LIMIT_STORAGE_TIMEOUT_SECONDS": "2",
    },
}
GATEWAY_ENV = {"TASKGATE_HEALTHCHECK_INTERVAL": "1s"}

_names = itertools.count(1)


@pytest.fixture(scope="module")
def replicated() -> Iterator[DevStack]:
    if redis_binary() is None:
        pytest.skip(NO_REDIS)
    with temporary_stack(
        REPLICA_ENV, prefix="taskgate-replicas-", replicas=2, gateway_env=GATEWAY_ENV
    ) as stack:
        assert stack.replica_names("auth") == ["auth", "auth_2"]
        assert stack.replica_names("tasks") == ["tasks", "tasks_2"]
        yield stack


@pytest.fixture(scope="module")
def gateway_url(replicated: DevStack) -> str:
    return f"http://localhost:{replicated.config.ports['gateway']}"


def client(base_url: str) -> httpx.AsyncClient:
    """A client with a loopback source address of its own (its own per-IP buckets)."""
    return own_ip_client(base_url, timeout=30.0)


@pytest.fixture
async def gateway(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client(gateway_url) as http:
        yield http


# --- the replicas' own metrics -------------------------------------------------------------


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric != name:
            continue
        if all(f'{key}="{wanted}"' in label_text for key, wanted in labels.items()):
            total += float(value)
    return total


async def metrics(stack: DevStack, service: str) -> dict[str, str]:
    """Each replica's `/metrics` page, by replica name."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        return {
            name: (await http.get(f"{stack.url(name)}/metrics")).text
            for name in stack.replica_names(service)
        }


def deltas(
    before: dict[str, str], after: dict[str, str], name: str, **labels: str
) -> dict[str, float]:
    return {
        replica: sample(after[replica], name, **labels) - sample(before[replica], name, **labels)
        for replica in before
    }


async def in_gateway_pool(stack: DevStack, replica: str) -> bool:
    """Whether the gateway currently sends traffic to `replica` (its health-check state)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        text = (await http.get(f"{stack.url('gateway_metrics')}/metrics")).text
    return sample(text, "traefik_service_server_up", url=stack.url(replica)) == 1.0


# --- limits, lockout, refresh, cursors ----------------------------------------------------


async def test_the_login_rate_limit_holds_across_replicas(replicated: DevStack) -> None:
    """4 logins per minute per address: with each replica counting alone, 8 would pass."""
    before = await metrics(replicated, "auth")
    async with client(f"http://localhost:{replicated.config.ports['gateway']}") as http:
        answers = []
        for _ in range(8):
            login = {"username": f"nobody_{next(_names)}_{uuid.uuid4().hex[:6]}", "password": "x"}
            answers.append(await http.post("/auth/login", json=login))
    after = await metrics(replicated, "auth")
    assert [a.status_code for a in answers] == [401] * 4 + [429] * 4
    for answer in answers[4:]:
        assert answer.json()["code"] == "rate_limited"
        assert answer.headers["RateLimit-Limit"] == "4"  # the app's limit, not the gateway's
    allowed = deltas(before, after, "http_requests_total", handler="/auth/login", status="401")
    refused = deltas(before, after, "http_requests_total", handler="/auth/login", status="429")
    print(f"\nlogins allowed per replica {allowed}, refused {refused}")
    # Both replicas refused while each had allowed fewer than the limit: one shared count.
    assert sum(allowed.values()) == 4
    for replica in allowed:
        assert refused[replica] >= 1
        assert allowed[replica] < 4


async def test_the_lockout_holds_across_replicas(
    replicated: DevStack, gateway: httpx.AsyncClient, gateway_url: str
) -> None:
    """4 failed logins in a row lock the name, though no replica saw 4 of them."""
    account = await new_account(gateway)
    before = await metrics(replicated, "auth")
    for _ in range(4):  # each from an address of its own: only the lockout counts them all
        async with client(gateway_url) as http:
            wrong = {"username": account.username, "password": "not the password"}
            assert (await http.post("/auth/login", json=wrong)).status_code == 401
    async with client(gateway_url) as http:
        right = {"username": account.username, "password": account.password}
        locked = await http.post("/auth/login", json=right)
    after = await metrics(replicated, "auth")
    assert locked.status_code == 429
    assert locked.json()["code"] == "login_locked"
    failures = deltas(before, after, "auth_logins_total", result="invalid_credentials")
    print(f"\nfailed logins per replica {failures}")
    assert sum(failures.values()) == 4
    assert all(0 < count < 4 for count in failures.values())
    assert sum(deltas(before, after, "auth_login_lockouts_total").values()) == 1


async def test_concurrent_refreshes_over_both_replicas_mint_one_successor(
    replicated: DevStack, gateway: httpx.AsyncClient, gateway_url: str
) -> None:
    """Eight tabs refresh the same token at once, through the gateway to both auth replicas:
    one rotation, seven grace replays, and all eight hold the same successor."""
    account = await new_account(gateway)
    clients = [client(gateway_url) for _ in range(8)]
    before = await metrics(replicated, "auth")
    try:
        answers = await asyncio.gather(
            *(
                http.post("/auth/refresh", json={"refresh_token": account.refresh_token})
                for http in clients
            )
        )
    finally:
        for http in clients:
            await http.aclose()
    after = await metrics(replicated, "auth")
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    successors = {a.json()["refresh_token"] for a in answers}
    assert len(successors) == 1
    assert successors != {account.refresh_token}
    served = deltas(before, after, "http_requests_total", handler="/auth/refresh", status="200")
    rotations = deltas(before, after, "auth_refreshes_total", result="success")
    replays = deltas(before, after, "auth_refreshes_total", result="grace_replay")
    print(f"\nrefreshes served per replica {served}; rotations {rotations}; replays {replays}")
    assert all(count >= 1 for count in served.values())
    assert sum(rotations.values()) == 1
    assert sum(replays.values()) == 7
    # The one successor is live: it rotates on.
    (successor,) = successors
    onward = await gateway.post("/auth/refresh", json={"refresh_token": successor})
    assert onward.status_code == 200
    assert onward.json()["refresh_token"] not in {successor, account.refresh_token}


async def test_a_list_cursor_from_one_tasks_replica_works_at_the_other(
    replicated: DevStack, gateway: httpx.AsyncClient
) -> None:
    """The replicas sign cursors with one shared key (TASKS_CURSOR_SECRET_FILE)."""
    account = await new_account(gateway)
    for title in ("one", "two", "three"):
        created = await gateway.post("/api/tasks", json={"title": title}, headers=account.headers)
        assert created.status_code == 201
    async with (
        client(replicated.url("tasks")) as first,
        client(replicated.url("tasks_2")) as second,
    ):
        page = await first.get("/api/tasks", params={"limit": 1}, headers=account.headers)
        assert page.status_code == 200
        cursor = page.json()["next_cursor"]
        assert cursor
        following = await second.get(
            "/api/tasks", params={"limit": 1, "cursor": cursor}, headers=account.headers
        )
    assert following.status_code == 200, following.text
    assert following.json()["items"][0]["id"] != page.json()["items"][0]["id"]


async def test_a_change_through_either_replica_reaches_streams_on_both(
    replicated: DevStack, gateway: httpx.AsyncClient
) -> None:
    """Streams of one user held by both tasks replicas (the gateway spreads them) each get
    every change, whichever replica took the write: LISTEN/NOTIFY on the shared database."""
    account = await new_account(gateway)
    async with contextlib.AsyncExitStack() as streams:
        readers = []
        for _ in range(4):
            reader = await streams.enter_async_context(
                open_stream(gateway, headers=account.headers, timeout=30)
            )
            assert (await reader.next()).event == "ready"
            readers.append(reader)
        held = {
            name: sample(text, "tasks_event_streams")
            for name, text in (await metrics(replicated, "tasks")).items()
        }
        assert held == {"tasks": 2.0, "tasks_2": 2.0}, held
        for title in ("one", "two", "three", "four"):
            created = await gateway.post(
                "/api/tasks", json={"title": title}, headers=account.headers
            )
            assert created.status_code == 201
            for reader in readers:
                entries = await reader.until(created.json()["id"], timeout=5)
                assert entries[-1]["data"]["title"] == title


async def test_a_replica_stopping_ends_its_streams_with_a_reason(
    replicated: DevStack, gateway: httpx.AsyncClient
) -> None:
    """SIGTERM ends a replica's open streams with `server_shutdown` (after its drain), so the
    process can stop (uvicorn waits for open answers) and clients reconnect elsewhere."""
    account = await new_account(gateway)
    async with (
        client(replicated.url("tasks_2")) as direct,
        open_stream(direct, headers=account.headers, timeout=60) as stream,
    ):
        assert (await stream.next()).event == "ready"
        stopping = asyncio.create_task(asyncio.to_thread(replicated.stop_service, "tasks_2"))
        end = await stream.next(timeout=60)
        await stopping
    assert end.event == "end"
    assert end.json()["code"] == "server_shutdown"
    await asyncio.to_thread(replicated.start_service, "tasks_2")
    await wait_until(lambda: in_gateway_pool(replicated, "tasks_2"), timeout=60)


# --- load ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    request_id: str
    started: float
    ended: float
    status: int  # 0: no answer (transport error)
    code: str | None = None
    task_id: str | None = None


@dataclass
class Load:
    """Steady traffic through the gateway from workers of their own addresses, each request
    recorded; `stop` ends it."""

    gateway_url: str
    account: GatewayAccount
    outcomes: list[Outcome] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def request(self, http: httpx.AsyncClient, kind: str) -> None:
        request_id = uuid.uuid4().hex
        headers = {**self.account.headers, "X-Request-ID": request_id}
        started = time.monotonic()
        try:
            if kind == "create":  # POST: never retried by the gateway
                response = await http.post("/api/tasks", json={"title": kind}, headers=headers)
            elif kind == "list":
                response = await http.get("/api/tasks", params={"limit": 5}, headers=headers)
            elif kind == "me":
                response = await http.get("/auth/me", headers=headers)
            else:  # "logout": a POST to auth (any token: 204, reveals nothing)
                response = await http.post(
                    "/auth/logout", json={"refresh_token": "x" * 43}, headers=headers
                )
        except httpx.TransportError:
            self.outcomes.append(Outcome(kind, request_id, started, time.monotonic(), 0))
            return
        outcome = Outcome(kind, request_id, started, time.monotonic(), response.status_code)
        if response.status_code >= 400:
            outcome.code = response.json().get("code")
        elif kind == "create":
            outcome.task_id = response.json()["id"]
        self.outcomes.append(outcome)

    async def worker(self, kind: str, pause: float) -> None:
        async with client(self.gateway_url) as http:
            while not self.stop.is_set():
                await self.request(http, kind)
                await asyncio.sleep(pause)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 0 or o.status >= 400]

    def summary(self) -> Counter[tuple[str, int]]:
        return Counter((o.kind, o.status) for o in self.outcomes)


@asynccontextmanager
async def running(load: Load, kinds: list[str], pause: float) -> AsyncIterator[Load]:
    """`load` with one worker per entry of `kinds`, from its first answers until the end."""
    workers = [asyncio.create_task(load.worker(kind, pause)) for kind in kinds]

    async def warm() -> bool:
        return len(load.outcomes) >= 2 * len(kinds)

    try:
        await wait_until(warm, timeout=60)
        yield load
    finally:
        load.stop.set()
        await asyncio.gather(*workers)


async def stored_ids(gateway_url: str, account: GatewayAccount) -> set[str]:
    """Every task of `account`, page by page through the gateway (so the pages come from both
    tasks replicas, each accepting the other's cursor)."""
    async with client(gateway_url) as http:
        return {str(task["id"]) for task in await all_tasks(http, account.headers)}


# --- a rolling restart, rotating the signing key on the way -----------------------------------


@dataclass
class RollingRestart:
    load: Load
    seconds: float
    # Per replica: seconds to stop (drain included), to be ready again, to be back in the pool.
    steps: dict[str, tuple[float, float, float]]
    out_of_pool_at_exit: dict[str, bool]
    old_kid: str
    new_kid: str


ROLLING_ORDER = ["tasks", "tasks_2", "auth", "auth_2"]


@pytest.fixture(scope="module")
async def rolling_restart(replicated: DevStack, gateway_url: str) -> RollingRestart:
    """Every replica stopped (SIGTERM, drain) and started again, one at a time, each back in
    the gateway's pool before the next goes, while six workers keep sending reads and writes
    to both services. The tasks replicas go first; the auth replicas come back with a new
    signing key (the documented rotation, in one step: new key added and made the signer),
    so the tasks replicas meet the new `kid` with the old JWKS in their cache."""
    async with client(gateway_url) as http:
        account = await new_account(http)
    old_kid = jwt.get_unverified_header(account.access_token)["kid"]
    keys_dir = replicated.data_dir / "rotated-keys"
    keys_dir.mkdir()
    shutil.copy(replicated.data_dir / "keys" / "signing-key.pem", keys_dir / "a-old.pem")
    new_key = write_new_key(keys_dir / "b-new.pem")
    load = Load(gateway_url, account)
    out_of_pool: dict[str, bool] = {}
    steps: dict[str, tuple[float, float, float]] = {}
    kinds = ["create", "create", "list", "list", "me", "logout"]
    async with running(load, kinds, pause=0.03):
        started = time.monotonic()
        for name in ROLLING_ORDER:
            if name == "auth":
                replicated.update_service_env(
                    "auth", {"AUTH_SIGNING_KEYS_DIR": str(keys_dir), "AUTH_ACTIVE_KEY_ID": "b-new"}
                )
            step = time.monotonic()
            await asyncio.to_thread(replicated.stop_service, name)
            stopped = time.monotonic() - step
            out_of_pool[name] = not await in_gateway_pool(replicated, name)
            await asyncio.to_thread(replicated.start_service, name)
            ready = time.monotonic() - step

            async def back(name: str = name) -> bool:
                return await in_gateway_pool(replicated, name)

            await wait_until(back, timeout=60)
            steps[name] = (round(stopped, 1), round(ready, 1), round(time.monotonic() - step, 1))
        seconds = time.monotonic() - started
    return RollingRestart(load, seconds, steps, out_of_pool, old_kid, new_key.kid)


async def test_a_rolling_restart_under_load_fails_no_request(
    rolling_restart: RollingRestart, gateway_url: str
) -> None:
    load = rolling_restart.load
    failures = load.failures()
    print(
        f"\nrolling restart of {len(ROLLING_ORDER)} replicas: {rolling_restart.seconds:.1f}s, "
        f"{len(load.outcomes)} requests, {len(failures)} failed; {dict(load.summary())}; "
        f"per replica (stopped, ready, back in the pool) after s: {rolling_restart.steps}; "
        f"out of the gateway's pool when the process exited: {rolling_restart.out_of_pool_at_exit}"
    )
    assert [(f.kind, f.status, f.code) for f in failures] == []
    acked = {o.task_id for o in load.outcomes if o.task_id is not None}
    assert acked <= await stored_ids(gateway_url, load.account)


async def test_a_key_rotation_reaches_both_tasks_replicas(
    replicated: DevStack, rolling_restart: RollingRestart, gateway_url: str
) -> None:
    """A token of the new key is accepted by each tasks replica, which fetched the JWKS again
    on meeting the unknown `kid`; tokens of the old key, still published, still work."""
    account = rolling_restart.load.account
    before = await metrics(replicated, "tasks")
    async with client(gateway_url) as http:
        login = await http.post(
            "/auth/login", json={"username": account.username, "password": account.password}
        )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == rolling_restart.new_kid
    assert rolling_restart.new_kid != rolling_restart.old_kid
    for name in replicated.replica_names("tasks"):
        async with client(replicated.url(name)) as direct:
            new = await direct.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
            assert new.status_code == 200, (name, new.text)
            old = await direct.get("/api/tasks", headers=account.headers)
            assert old.status_code == 200, (name, old.text)
    after = await metrics(replicated, "tasks")
    refetched = deltas(before, after, "tasks_jwks_refreshes_total", trigger="unknown_kid")
    print(f"\nJWKS fetched again on the new kid, per tasks replica: {refetched}")
    assert all(count >= 1 for count in refetched.values())


# --- a crash ----------------------------------------------------------------------------------


def routed_to(stack: DevStack) -> dict[str, str]:
    """Request ID -> the upstream URL the gateway sent it to, from its access log."""
    routes: dict[str, str] = {}
    for line in (stack.data_dir / "logs" / "gateway-access.log").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("request_X-Request-Id"):
            routes[entry["request_X-Request-Id"]] = entry.get("ServiceURL", "")
    return routes


async def test_a_replica_killed_under_load_costs_only_the_requests_it_held(
    replicated: DevStack, gateway_url: str
) -> None:
    """SIGKILL one tasks replica in the middle of steady writes and reads (and of a burst of
    reads, so that it surely holds some): only requests the gateway gave the dead replica
    fail (502, never replayed: the gateway cannot know how far they got) — those it held, and
    any sent to it before the gateway saw its first failure; everything sent once the gateway
    took it out (its passive health check does on the first failed request) succeeds; and
    every write the client saw acknowledged is stored.

    Run last: the killed replica is not started again (the module's stack goes next)."""
    async with client(gateway_url) as http:
        account = await new_account(http)
    load = Load(gateway_url, account)
    victim = "tasks_2"
    async with running(load, ["create", "create", "create", "list", "list", "list"], pause=0):
        async with client(gateway_url) as burst_client:
            burst = [asyncio.create_task(load.request(burst_client, "list")) for _ in range(6)]
            await asyncio.sleep(0.01)  # on their way: half of them to the victim
            killed_at = time.monotonic()
            await asyncio.to_thread(replicated.kill_service, victim)
            await asyncio.gather(*burst)

        async def out() -> bool:
            return not await in_gateway_pool(replicated, victim)

        taken_out = await wait_until(out, timeout=30, interval=0.05)
        out_at = time.monotonic()  # seen out of the pool by now (it may have left earlier)
        sent_until_out = sum(o.started > killed_at for o in load.outcomes)

        async def more_sent() -> bool:  # and on for a while, with the victim out of the pool
            return sum(o.started > killed_at for o in load.outcomes) >= sent_until_out + 50

        await wait_until(more_sent, timeout=60, interval=0.05)
    failures = load.failures()
    held = [o for o in load.outcomes if o.started < killed_at < o.ended]
    after_kill = [o for o in load.outcomes if o.started > killed_at]
    after_out = [o for o in load.outcomes if o.started > out_at]
    failed_creates = [f for f in failures if f.kind == "create"]
    stored = await stored_ids(gateway_url, account)
    acked = {o.task_id for o in load.outcomes if o.task_id is not None}
    print(
        f"\nSIGKILL of {victim}: {len(load.outcomes)} requests, {len(failures)} failed "
        f"(in flight at the kill: {len(held)}; sent after it: {len(after_kill)}, of which "
        f"{len(after_out)} after the gateway took it out, all answered); "
        f"out of the gateway's pool {taken_out:.2f}s after the kill; "
        f"{len(acked)} writes acknowledged, all stored; "
        f"{len(stored - acked)} of {len(failed_creates)} unacknowledged ones stored too"
    )
    assert [f for f in failures if f.started > out_at] == []
    assert all((f.status, f.code) == (502, "bad_gateway") for f in failures), failures
    routes = routed_to(replicated)
    assert {routes.get(f.request_id) for f in failures} <= {replicated.url(victim)}
    assert acked <= stored
    assert len(stored - acked) <= len(failed_creates)
