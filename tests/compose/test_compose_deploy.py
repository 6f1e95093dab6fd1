"""The Compose deploy as a user runs it: `make up`, then everything through the gateway.

The tests run in file order on one deploy (conftest.py) and build on each other: the account
made first is the one whose tasks must survive a database restart and `down`/`up`. Logins
stay under the deploy's real limits (10 per minute per address), the last test meets them.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from compose_stack import PHASES, ComposeStack


@dataclass
class Account:
    username: str
    password: str
    access_token: str
    refresh_token: str
    created_task_ids: set[str] = field(default_factory=set)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@pytest.fixture(scope="module")
def gateway(stack: ComposeStack) -> httpx.Client:
    return httpx.Client(base_url=stack.gateway, timeout=10)


@pytest.fixture(scope="module")
def account(gateway: httpx.Client) -> Account:
    """Registered and logged in through the gateway, as a frontend does."""
    username = f"compose_{uuid.uuid4().hex[:10]}"
    password = f"compose password {uuid.uuid4().hex[:6]}"
    registered = gateway.post(
        "/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": password},
    )
    assert registered.status_code == 201, registered.text
    tokens = gateway.post("/auth/login", json={"username": username, "password": password})
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    return Account(username, password, body["access_token"], body["refresh_token"])


def all_task_ids(gateway: httpx.Client, account: Account) -> set[str]:
    """Every task of the account, page by page."""
    ids: set[str] = set()
    params: dict[str, str | int] = {"limit": 100}
    for _ in range(100):
        page = gateway.get("/api/tasks", params=params, headers=account.headers)
        assert page.status_code == 200, page.text
        ids |= {task["id"] for task in page.json()["items"]}
        cursor = page.json().get("next_cursor")
        if not cursor:
            return ids
        params = {"limit": 100, "cursor": cursor}
    raise AssertionError("the task list did not end")


def test_a_user_registers_logs_in_keeps_tasks_and_refreshes(
    gateway: httpx.Client, account: Account
) -> None:
    for title in ("buy milk", "write the report"):
        created = gateway.post("/api/tasks", json={"title": title}, headers=account.headers)
        assert created.status_code == 201, created.text
        account.created_task_ids.add(created.json()["id"])
    listed = gateway.get("/api/tasks", headers=account.headers)
    assert listed.status_code == 200
    assert {task["title"] for task in listed.json()["items"]} == {"buy milk", "write the report"}

    refreshed = gateway.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != account.refresh_token
    account.access_token = refreshed.json()["access_token"]
    account.refresh_token = refreshed.json()["refresh_token"]
    assert gateway.get("/api/tasks", headers=account.headers).status_code == 200


def test_the_gateway_serves_the_web_app_and_keeps_json_404s(gateway: httpx.Client) -> None:
    """`/` is the reference web app (the `web` container, through the gateway's `web` router);
    an unknown path and the operator endpoints stay the JSON 404."""
    page = gateway.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = gateway.get("/js/main.js")
    assert script.status_code == 200
    for path in ("/nowhere", "/metrics", "/health"):
        missing = gateway.get(path)
        assert missing.status_code == 404, path
        assert missing.json()["code"] == "not_found"


def test_no_secret_is_visible_in_docker_inspect(stack: ComposeStack, account: Account) -> None:
    """Passwords and the key are files in volumes, not environment values."""
    secrets = [
        (stack.workdir / "secrets" / name).read_text().strip()
        for name in ("auth-db-password", "tasks-db-password")
    ]
    for service in ("auth", "tasks", "auth-db", "tasks-db"):
        for container in stack.container_ids(service):
            described = stack.inspect(container)
            assert not any(secret in described for secret in secrets), service
            assert "PRIVATE KEY" not in described


def test_a_database_restart_under_load_loses_no_acknowledged_write(
    stack: ComposeStack, gateway: httpx.Client, account: Account
) -> None:
    """One writer keeps creating tasks while the tasks database is down for a few seconds:
    every 201 it got is still there afterwards, and writes succeed again within a minute."""
    acknowledged: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()

    def write() -> None:
        with httpx.Client(base_url=stack.gateway, timeout=10) as client:
            for number in range(400):  # bounded: ~0.5 s apart, below 120 writes a minute
                if stop.is_set():
                    return
                try:
                    response = client.post(
                        "/api/tasks", json={"title": f"load {number}"}, headers=account.headers
                    )
                except httpx.HTTPError:
                    statuses.append(0)
                else:
                    statuses.append(response.status_code)
                    if response.status_code == 201:
                        acknowledged.append(response.json()["id"])
                time.sleep(0.5)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(3)
        before = len(acknowledged)
        assert before > 0, statuses
        (database,) = stack.container_ids("tasks-db")
        started_before = stack.started_at(database)
        # Down for a few seconds, as a crash or an upgrade would take it, then back.
        with PHASES.timed("tasks-db down (stop, 3 s, start)"):
            stack.compose_run("stop", "tasks-db")
            time.sleep(3)
            stack.compose_run("start", "tasks-db")
        assert stack.started_at(database) != started_before
        restarted = time.monotonic()
        recovered_after: float | None = None
        seen = len(statuses)
        while time.monotonic() - restarted < 90:
            if len(statuses) > seen and statuses[-1] == 201 and len(acknowledged) > before:
                recovered_after = time.monotonic() - restarted
                break
            time.sleep(0.2)
        assert recovered_after is not None, f"no write succeeded after the restart: {statuses}"
        PHASES.seconds["first write after the restart"] = recovered_after
        assert recovered_after < 60
    finally:
        stop.set()
        writer.join(timeout=30)
    # Failures during the outage are the gateway's or the service's "unavailable", never 500.
    assert set(statuses) <= {201, 502, 503, 504}, statuses
    account.created_task_ids |= set(acknowledged)
    assert account.created_task_ids <= all_task_ids(gateway, account)


def test_scaled_tasks_each_get_requests_and_are_each_scraped(
    stack: ComposeStack, gateway: httpx.Client, account: Account
) -> None:
    stack.compose_run(
        "up", "--detach", "--no-build", "--wait", "--scale", "tasks=2", *stack.services.split()
    )
    replicas = stack.container_ids("tasks")
    assert len(replicas) == 2
    marker = uuid.uuid4().hex[:8]
    served: dict[str, int] = {}
    deadline = time.monotonic() + 60  # the gateway follows the replicas within seconds
    number = 0
    while time.monotonic() < deadline:
        for _ in range(20):
            number += 1
            response = gateway.get(
                "/api/tasks", headers={**account.headers, "X-Request-ID": f"{marker}-{number}"}
            )
            assert response.status_code == 200, response.text
        served = {
            replica: stack.logs(replica).count(f'"request_id": "{marker}-') for replica in replicas
        }
        if all(served.values()):
            break
        time.sleep(1)
    assert all(served.values()), f"requests per replica: {served}"
    # A cursor made by one replica works on the other (one TASKS_CURSOR_SECRET).
    assert account.created_task_ids <= all_task_ids(gateway, account)

    deadline = time.monotonic() + 90  # DNS refresh 5 s, scrape interval 15 s
    while len(stack.prometheus_targets("tasks")) < 2 and time.monotonic() < deadline:
        time.sleep(2)
    assert len(stack.prometheus_targets("tasks")) == 2
    assert len(stack.prometheus_targets("auth")) == 1


def test_data_survives_down_and_up(
    stack: ComposeStack, gateway: httpx.Client, account: Account
) -> None:
    stack.make("down")
    assert stack.container_ids("tasks") == []
    stack.make("up")
    stack.wait_for_gateway()
    tokens = gateway.post(
        "/auth/login", json={"username": account.username, "password": account.password}
    )
    assert tokens.status_code == 200, tokens.text
    account.access_token = tokens.json()["access_token"]
    assert account.created_task_ids <= all_task_ids(gateway, account)


def test_login_limits_are_counted_in_redis(stack: ComposeStack, gateway: httpx.Client) -> None:
    """Wrong passwords for one account meet the per-account limit; the count is in Redis, so
    restarting auth does not reset it."""
    username = f"limited_{uuid.uuid4().hex[:8]}"
    registered = gateway.post(
        "/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": "x" * 16},
    )
    assert registered.status_code == 201, registered.text
    statuses = []
    for _ in range(6):
        attempt = gateway.post("/auth/login", json={"username": username, "password": "wrong" * 4})
        statuses.append(attempt.status_code)
        if attempt.status_code == 429:
            assert attempt.headers.get("Retry-After")
            break
    assert statuses[-1] == 429, statuses

    stack.compose_run("restart", "auth")
    stack.wait_for_gateway()
    again = gateway.post("/auth/login", json={"username": username, "password": "x" * 16})
    assert again.status_code == 429, again.text


def test_down_v_removes_the_deploy(stack: ComposeStack) -> None:
    stack.compose_run("down", "--volumes", "--remove-orphans")
    left = stack.compose_run("ps", "--all", "--quiet").stdout.split()
    assert left == []
    assert stack.project_volumes() == []
