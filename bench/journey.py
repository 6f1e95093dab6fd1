"""The cost of a whole frontend session: how many sessions per second one core sustains.

A session is what the reference web app does for a person who opens their board and works a
while, through the gateway: sign in (a login with the password, or, for a returning visitor,
a refresh of the cookie's token), load the board (`GET /api/boards`, then the board with its
cards), read the change cursor, then 20 moves and edits (edits with `If-Match`), polling
`GET /api/changes?since=` after every fifth, and one token refresh halfway. 29 requests.

Each bench user runs one session after another (a person does not race their own edits);
`--users` of them at once. The figure that matters is the server CPU per session, summed
over auth, tasks, the gateway and both PostgreSQL clusters (the load generator's own CPU is
not counted): one core sustains 1000 / that many sessions per second. Part of `make bench`;
alone: `uv run python bench/journey.py`. Writes bench/results/journey.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from bench_stack import CpuClock, Target, start_stack, write_results
from seed import BenchUser, seed_users

STATUSES = ("todo", "in_progress", "done")
OPERATIONS = 20
POLL_EVERY = 5


@dataclass
class Person:
    user: BenchUser
    refresh_token: str = ""
    access_token: str = ""
    sessions: int = 0
    requests: int = 0
    failures: list[str] = field(default_factory=list)


class Journey:
    def __init__(self, client: httpx.AsyncClient, person: Person) -> None:
        self.client = client
        self.person = person

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if self.person.access_token:
            headers["Authorization"] = f"Bearer {self.person.access_token}"
        response = await self.client.request(method, path, headers=headers, **kwargs)
        self.person.requests += 1
        if response.status_code >= 400:
            self.person.failures.append(f"{method} {path}: {response.status_code}")
        return response

    async def sign_in(self, returning: bool) -> None:
        person = self.person
        person.access_token = ""
        if returning and person.refresh_token:
            answer = await self.call(
                "POST", "/auth/refresh", json={"refresh_token": person.refresh_token}
            )
        else:
            answer = await self.call(
                "POST",
                "/auth/login",
                json={"username": person.user.username, "password": person.user.password},
            )
        tokens = answer.json()
        person.access_token, person.refresh_token = tokens["access_token"], tokens["refresh_token"]

    async def refresh(self) -> None:
        answer = await self.call(
            "POST", "/auth/refresh", json={"refresh_token": self.person.refresh_token}
        )
        tokens = answer.json()
        self.person.access_token = tokens["access_token"]
        self.person.refresh_token = tokens["refresh_token"]

    async def session(self, returning: bool) -> None:
        await self.sign_in(returning)
        boards = (await self.call("GET", "/api/boards")).json()
        board = (await self.call("GET", f"/api/boards/{boards['items'][0]['id']}")).json()
        cards = [card for column in board["columns"] for card in column["items"]]
        cursor = (await self.call("GET", "/api/changes")).json()["next_cursor"]
        for n in range(OPERATIONS):
            card = cards[n % len(cards)]
            if n % 2 == 0:
                answer = await self.call(
                    "POST",
                    f"/api/tasks/{card['id']}/move",
                    json={"status": STATUSES[(n // 2) % 3]},
                )
            else:
                answer = await self.call(
                    "PATCH",
                    f"/api/tasks/{card['id']}",
                    json={"title": f"edited {n} {time.monotonic():.3f}"},
                    headers={"If-Match": f'"{card["version"]}"'},
                )
            if answer.status_code < 400:
                card["version"] = answer.json()["version"]
            if (n + 1) % POLL_EVERY == 0:
                cursor = (await self.call("GET", "/api/changes", params={"since": cursor})).json()[
                    "next_cursor"
                ]
            if n == OPERATIONS // 2:
                await self.refresh()
        self.person.sessions += 1


async def drive(
    target: Target, users: list[BenchUser], seconds: float, returning: bool
) -> list[Person]:
    people = [Person(user) for user in users]
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=target.gateway, timeout=30) as client:

        async def run(person: Person) -> None:
            journey = Journey(client, person)
            if returning:  # a visitor who logged in before: their cookie holds a token
                await journey.sign_in(returning=False)
            while time.monotonic() < deadline:
                await journey.session(returning)

        await asyncio.gather(*(run(person) for person in people))
    return people


def measure(target: Target, users: list[BenchUser], seconds: float) -> list[dict[str, Any]]:
    clocks = {
        "auth": CpuClock(target.pid("auth")),
        "tasks": CpuClock(target.pid("tasks")),
        "gateway": CpuClock(target.pid("gateway")),
        "PostgreSQL": CpuClock(
            target.postgres_pid("auth"), target.postgres_pid("tasks"), tree=True
        ),
    }
    rows = []
    for label, returning in (("returning (refresh)", True), ("new login (password)", False)):
        asyncio.run(drive(target, users, 2.0, returning))  # warm-up
        before = {name: clock.read() for name, clock in clocks.items()}
        started = time.perf_counter()
        people = asyncio.run(drive(target, users, seconds, returning))
        elapsed = time.perf_counter() - started
        sessions = sum(person.sessions for person in people)
        per_session = {
            name: round((clock.read() - before[name]) * 1000 / max(sessions, 1), 2)
            for name, clock in clocks.items()
        }
        total = sum(per_session.values())
        failures = [failure for person in people for failure in person.failures]
        rows.append(
            {
                "session": label,
                "sessions": sessions,
                "sessions_per_s": round(sessions / elapsed, 1),
                "requests_per_session": round(
                    sum(p.requests for p in people) / max(sessions, 1), 1
                ),
                "server_cpu_ms_per_session": per_session,
                "server_cpu_ms_per_session_total": round(total, 1),
                "sessions_per_core_second": round(1000 / total, 1) if total else None,
                "failures": len(failures),
                "failure_examples": failures[:5],
            }
        )
    return rows


def print_rows(rows: list[dict[str, Any]], users: int) -> None:
    print(f"\nWhole sessions ({users} people at once, each session 29 requests):\n")
    print(
        "| session | sessions/s | server CPU ms/session (auth / tasks / gateway / PostgreSQL) "
        "| sessions per core-second | failures |"
    )
    print("|---|---:|---|---:|---:|")
    for row in rows:
        cpu = row["server_cpu_ms_per_session"]
        parts = " / ".join(
            f"{cpu[name]:.1f}" for name in ("auth", "tasks", "gateway", "PostgreSQL")
        )
        print(
            f"| {row['session']} | {row['sessions_per_s']} | "
            f"{row['server_cpu_ms_per_session_total']} ({parts}) | "
            f"{row['sessions_per_core_second']} | {row['failures']} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/journey.py")
    parser.add_argument(
        "--duration", type=float, default=float(os.environ.get("BENCH_DURATION", 10)) * 2
    )
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="taskgate-bench-journey-"))
    print("whole sessions: starting the stack…", flush=True)
    target = start_stack(work / "stack")
    try:
        users = asyncio.run(seed_users(target.gateway, args.users, 20))
        rows = measure(target, users, args.duration)
    finally:
        target.close()
    print_rows(rows, args.users)
    write_results("journey", vars(args), rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
