"""The soak run's load model (`make soak`, tests/soak): browser-like clients that remember
what each answer acknowledged, so the final state can be checked against it.

Each client has its own source address and session and touches only the tasks it created;
every answer is classified: acknowledged, refused (the gateway's 503: never reached a
service), or ambiguous (no answer, a 502, a service's 503: applied or not). A task record keeps
every title and status it may have, so a lost answer widens what is accepted, never hides a
lost acknowledged write.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import httpx

STATUSES = ["todo", "in_progress", "done"]
ACTIONS = {"create": 4, "patch": 3, "move": 3, "delete": 2, "list_tasks": 3, "board": 1}
# After a database restart: Traefik's health check (every 5 s) routes to the service again.
GRACE = 15.0

OK, REFUSED, AMBIGUOUS, UNEXPECTED = "ok", "refused", "ambiguous", "unexpected"


@dataclass
class Outage:
    database: str
    start: float
    end: float = 0.0


@dataclass
class Ledger:
    """Every answer, classified; the 5xx and transport errors with their time."""

    ops: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ok_at: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_errors: list[tuple[float, int, str]] = field(default_factory=list)
    transport_errors: list[tuple[float, str]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)

    async def call(
        self, op: str, request: Awaitable[httpx.Response], allowed: frozenset[int] = frozenset()
    ) -> tuple[str, httpx.Response | None]:
        started = time.monotonic()
        try:
            response = await request
        except httpx.TransportError as exc:
            self.transport_errors.append((time.monotonic(), f"{op}: {type(exc).__name__}"))
            self.ops[f"{op} no answer"] += 1
            return AMBIGUOUS, None
        now = time.monotonic()
        status = response.status_code
        self.ops[f"{op} {status}"] += 1
        self.latencies[op].append(now - started)
        if status < 300 or status in allowed:
            if status < 300:
                self.ok_at[op].append(now)
            return OK, response
        if status >= 500:
            code = response.json().get("code", "") if response.content else ""
            self.server_errors.append((now, status, code))
            # The gateway's 503 never reached a service; a service's 503 (database) or a 502
            # may have been applied, or not.
            return (REFUSED if code == "service_unavailable" else AMBIGUOUS), response
        self.unexpected.append(f"{op} -> {status} {response.text[:200]}")
        return UNEXPECTED, response

    def in_outage(self, moment: float) -> bool:
        return any(o.start <= moment <= o.end + GRACE for o in self.outages)


@dataclass
class TaskRecord:
    """What one client knows of a task it created: the titles and statuses it may have now
    (one each, unless a write's answer was lost) and its ETag (None: read it again)."""

    id: str
    titles: set[str]
    statuses: set[str]
    etag: str | None
    deleted: bool = False
    maybe_deleted: bool = False

    def update(self, response: httpx.Response) -> None:
        body = response.json()
        self.titles, self.statuses = {body["title"]}, {body["status"]}
        self.etag = response.headers["etag"]


@dataclass
class Account:
    user_id: str
    username: str
    password: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class SoakUser:
    account: Account
    records: dict[str, TaskRecord] = field(default_factory=dict)
    maybe_created: set[str] = field(default_factory=set)  # titles of creations without answer


class Client:
    """One browser: its own address, its own session, only its own tasks."""

    def __init__(
        self, n: int, user: SoakUser, ledger: Ledger, http: httpx.AsyncClient, pause: float
    ) -> None:
        self.n, self.user, self.ledger, self.http, self.pause = n, user, ledger, http, pause
        self.rng = random.Random(n)  # noqa: S311 (a reproducible load, not a secret)
        self.access = user.account.access_token
        self.refresh_token = ""
        self.unsure_session = False  # a refresh's answer was lost: its token may be spent
        self.mine: list[TaskRecord] = []
        self.counter = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    async def login(self) -> bool:
        account = self.user.account
        credentials = {"username": account.username, "password": account.password}
        outcome, response = await self.ledger.call(
            "login", self.http.post("/auth/login", json=credentials)
        )
        if outcome == OK and response is not None:
            tokens = response.json()
            self.access, self.refresh_token = tokens["access_token"], tokens["refresh_token"]
            self.unsure_session = False
        return outcome == OK

    async def refresh(self) -> None:
        allowed = frozenset({401}) if self.unsure_session else frozenset()
        outcome, response = await self.ledger.call(
            "refresh",
            self.http.post("/auth/refresh", json={"refresh_token": self.refresh_token}),
            allowed,
        )
        if outcome == AMBIGUOUS:
            self.unsure_session = True
        elif outcome == OK and response is not None and response.status_code == 401:
            await self.login()  # the lost refresh had rotated it: reuse revoked the family
        elif outcome == OK and response is not None:
            tokens = response.json()
            self.access, self.refresh_token = tokens["access_token"], tokens["refresh_token"]
            self.unsure_session = False

    async def run(self, deadline: float) -> None:
        assert await self.login()
        next_refresh = time.monotonic() + self.rng.uniform(5, 30)
        next_login = time.monotonic() + self.rng.uniform(30, 120)
        while (now := time.monotonic()) < deadline:
            if now >= next_refresh:
                await self.refresh()
                next_refresh = now + self.rng.uniform(10, 30)
            elif now >= next_login:
                await self.login()
                next_login = now + self.rng.uniform(60, 180)
            else:
                action = self.rng.choices(list(ACTIONS), list(ACTIONS.values()))[0]
                await getattr(self, action if self.mine or action == "list_tasks" else "create")()
            await asyncio.sleep(self.pause)

    async def create(self) -> None:
        self.counter += 1
        title, status = f"s{self.n}-{self.counter}", self.rng.choice(STATUSES)
        body = {"title": title, "status": status}
        outcome, response = await self.ledger.call(
            "create", self.http.post("/api/tasks", json=body, headers=self.headers)
        )
        if outcome == OK and response is not None:
            record = TaskRecord(response.json()["id"], set(), set(), None)
            record.update(response)
            self.mine.append(record)
            self.user.records[record.id] = record
        elif outcome == AMBIGUOUS:
            self.user.maybe_created.add(title)

    async def _known(self) -> TaskRecord | None:
        """A task of mine whose ETag is known (re-read first when it is not)."""
        record = self.rng.choice(self.mine)
        if record.etag is None:
            outcome, response = await self.ledger.call(
                "get", self.http.get(f"/api/tasks/{record.id}", headers=self.headers)
            )
            if outcome != OK or response is None:
                return None
            record.update(response)
        return record

    async def patch(self) -> None:
        record = await self._known()
        if record is None or record.etag is None:
            return
        self.counter += 1
        title = f"s{self.n}-{self.counter}-patched"
        headers = {**self.headers, "If-Match": record.etag}
        outcome, response = await self.ledger.call(
            "patch",
            self.http.patch(f"/api/tasks/{record.id}", json={"title": title}, headers=headers),
        )
        self._after_write(record, outcome, response, title=title)

    async def move(self) -> None:
        record = await self._known()
        if record is None:
            return
        status = self.rng.choice(STATUSES)
        outcome, response = await self.ledger.call(
            "move",
            self.http.post(
                f"/api/tasks/{record.id}/move", json={"status": status}, headers=self.headers
            ),
        )
        self._after_write(record, outcome, response, status=status)

    def _after_write(
        self,
        record: TaskRecord,
        outcome: str,
        response: httpx.Response | None,
        title: str | None = None,
        status: str | None = None,
    ) -> None:
        if outcome == OK and response is not None:
            record.update(response)
        elif outcome == AMBIGUOUS:
            record.titles |= {title} if title else set()
            record.statuses |= {status} if status else set()
            record.etag = None

    async def delete(self) -> None:
        record = self.mine.pop(self.rng.randrange(len(self.mine)))
        outcome, _ = await self.ledger.call(
            "delete", self.http.delete(f"/api/tasks/{record.id}", headers=self.headers)
        )
        if outcome == OK:
            record.deleted = True
        elif outcome == AMBIGUOUS:
            record.maybe_deleted = True
        else:
            self.mine.append(record)

    async def list_tasks(self) -> None:
        outcome, response = await self.ledger.call(
            "list", self.http.get("/api/tasks?limit=20", headers=self.headers)
        )
        if outcome == OK and response is not None:
            self._only_mine(response.json()["items"])

    async def board(self) -> None:
        outcome, response = await self.ledger.call(
            "board", self.http.get("/api/board?limit=10", headers=self.headers)
        )
        if outcome == OK and response is not None:
            for column in response.json()["columns"]:
                self._only_mine(column["items"])

    def _only_mine(self, items: list[dict[str, Any]]) -> None:
        leaked = [item["id"] for item in items if item["owner_id"] != self.user.account.user_id]
        if leaked:
            self.ledger.unexpected.append(f"another user's tasks listed: {leaked[:5]}")


def check_state(user: SoakUser, stored: list[dict[str, Any]]) -> Counter[str]:
    """The stored tasks are what the acknowledged operations add up to."""
    me = user.account.user_id
    assert all(task["owner_id"] == me for task in stored)
    by_id = {task["id"]: task for task in stored}
    figures: Counter[str] = Counter(stored=len(stored))
    for record in user.records.values():
        task = by_id.get(record.id)
        if record.deleted:
            assert task is None, f"deleted (acknowledged) but stored: {record.id}"
            figures["deleted"] += 1
            continue
        if record.maybe_deleted:
            figures["maybe_deleted"] += 1
            if task is None:
                continue
        assert task is not None, f"created (acknowledged) but missing: {record.id}"
        assert task["title"] in record.titles, (task["title"], record.titles)
        assert task["status"] in record.statuses, (task["status"], record.statuses)
        figures["kept"] += 1
    unknown = [task for task_id, task in by_id.items() if task_id not in user.records]
    assert all(task["title"] in user.maybe_created for task in unknown), unknown[:3]
    figures["created_without_answer_and_stored"] += len(unknown)
    return figures
