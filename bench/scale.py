"""`make bench-scale`: what the task paths cost as one user's tasks grow, among many users.

Starts the stack as `make dev` does (limits lifted, as `make bench`), seeds by SQL
`BENCH_SCALE_USERS` background users (default 10,000) with 100 tasks each, plus three measured
users with 1,000, 10,000 and 100,000 tasks on their default board, then times each path for
each measured user, one request at a time, straight at the tasks service: p50 and p99 over
`BENCH_SCALE_REQUESTS` requests (default 200). Prints a Markdown table and writes
bench/results/scale.json. Not part of `make test` (it takes minutes and ~2 GB of disk).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).parent))

from bench_stack import NO_RATE_LIMITS, machine

from taskgate_devstack.postgres import free_port
from taskgate_devstack.stack import DevStack, StackConfig

RESULTS = Path(__file__).parent / "results"
SIZES = (1_000, 10_000, 100_000)
BACKGROUND_USERS = int(os.environ.get("BENCH_SCALE_USERS", "10000"))
REQUESTS = int(os.environ.get("BENCH_SCALE_REQUESTS", "200"))
GAP = 1 << 20

# One user's board, columns and tasks in three statements; `needle` and `rare` are in few rows.
SEED_SQL = """
WITH owners AS (
    SELECT unnest($1::uuid[]) AS owner_id, unnest($2::int[]) AS task_count
), new_boards AS (
    INSERT INTO boards (id, owner_id, name, position, is_default)
    SELECT gen_random_uuid(), owner_id, 'My board', 1048576, true FROM owners
    RETURNING id, owner_id
), new_columns AS (
    INSERT INTO board_columns (id, board_id, owner_id, name, category, position)
    SELECT gen_random_uuid(), b.id, b.owner_id, c.name, c.category, c.rank * 1048576
    FROM new_boards AS b, (VALUES ('To do', 'todo'::task_status, 1),
        ('In progress', 'in_progress'::task_status, 2), ('Done', 'done'::task_status, 3))
        AS c (name, category, rank)
    RETURNING id, board_id, owner_id, category
)
INSERT INTO tasks (id, owner_id, board_id, column_id, title, description, status, position,
                   priority, labels, completed_at)
SELECT gen_random_uuid(), c.owner_id, c.board_id, c.id,
       CASE WHEN n % 997 = 0 THEN 'find the needle ' || n ELSE 'card number ' || n END,
       'what card ' || n || ' is about', c.category, n::bigint * 1048576,
       (ARRAY['low', 'medium', 'high'])[1 + n % 3]::task_priority,
       CASE WHEN n % 500 = 0 THEN ARRAY['rare', 'seed'] ELSE ARRAY['seed'] END,
       CASE WHEN c.category = 'done' THEN now() END
FROM new_columns AS c JOIN owners USING (owner_id)
CROSS JOIN LATERAL generate_series(1, owners.task_count / 3) AS n
"""


async def seed(database_url: str, measured: dict[int, uuid.UUID]) -> float:
    """Bulk load, then the same state the service keeps: for the load only, the GIN indexes
    queue their entries (merged once at the end) and the column-count trigger is off (the
    counts are computed once at the end, as migration 0003 does), and so is the change log
    (a bulk load, not a user's changes: migration 0004)."""
    started = time.perf_counter()
    db = await asyncpg.connect(database_url)
    try:
        await db.execute("SET taskgate.change_log = 'off'")
        gin = [
            row["indexname"]
            for row in await db.fetch(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'"
                " AND indexdef LIKE '%USING gin%'"
            )
        ]
        for index in gin:
            await db.execute(f"ALTER INDEX {index} SET (fastupdate = on)")
        await db.execute("ALTER TABLE tasks DISABLE TRIGGER tasks_count_in_columns")
        batch = 1_000
        for start in range(0, BACKGROUND_USERS, batch):
            owners = [uuid.uuid4() for _ in range(min(batch, BACKGROUND_USERS - start))]
            await db.execute(SEED_SQL, owners, [100] * len(owners))
        await db.execute(SEED_SQL, list(measured.values()), list(measured))
        await db.execute("ALTER TABLE tasks ENABLE TRIGGER tasks_count_in_columns")
        await db.execute(
            "UPDATE board_columns SET task_count = counted.n FROM (SELECT column_id,"
            " count(*) AS n FROM tasks GROUP BY column_id) AS counted"
            " WHERE board_columns.id = counted.column_id"
        )
        for index in gin:
            await db.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")
            await db.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
        await db.execute("VACUUM ANALYZE")
    finally:
        await db.close()
    return time.perf_counter() - started


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def timed(call: Callable[[], Awaitable[httpx.Response]]) -> dict[str, float]:
    for _ in range(10):  # warm the pool, the caches and the prepared statements
        (await call()).raise_for_status()
    samples = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = await call()
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(_percentile(samples, 0.99), 2),
    }


async def measure_user(client: httpx.AsyncClient, token: str) -> dict[str, dict[str, float]]:
    headers = {"Authorization": f"Bearer {token}"}
    boards = (await client.get("/api/boards", headers=headers)).json()["items"]
    board_id = boards[0]["id"]
    view = (await client.get(f"/api/boards/{board_id}?limit=50", headers=headers)).json()
    todo, doing, _ = view["columns"]
    cursor = todo["next_cursor"]
    created = (await client.post("/api/tasks", json={"title": "mover"}, headers=headers)).json()
    anchor = doing["items"][len(doing["items"]) // 2]["id"]
    columns = [todo["id"], doing["id"]]
    moves = iter(range(10**9))
    checklists = iter(range(10**9))

    async def move() -> httpx.Response:
        target = columns[next(moves) % 2]
        body: dict[str, Any] = {"column_id": target}
        if target == doing["id"]:
            body["before_id"] = anchor
        return await client.post(f"/api/tasks/{created['id']}/move", json=body, headers=headers)

    async def checklist() -> httpx.Response:
        n = next(checklists)
        items = [{"text": f"step {i}", "done": i < n % 5} for i in range(5)]
        return await client.patch(
            f"/api/tasks/{created['id']}", json={"checklist": items}, headers=headers
        )

    async def create() -> httpx.Response:
        return await client.post(
            "/api/tasks", json={"title": "new card", "column_id": todo["id"]}, headers=headers
        )

    paths: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
        "board": lambda: client.get(f"/api/boards/{board_id}?limit=50", headers=headers),
        "column page": lambda: client.get(
            f"/api/columns/{todo['id']}/tasks?limit=50&cursor={cursor}", headers=headers
        ),
        "status view (/api/board)": lambda: client.get("/api/board?limit=50", headers=headers),
        "list": lambda: client.get("/api/tasks?limit=50", headers=headers),
        "search (q=needle)": lambda: client.get("/api/tasks?q=needle&limit=50", headers=headers),
        "label filter": lambda: client.get(
            "/api/tasks?label=rare&sort=-created_at&limit=50", headers=headers
        ),
        "create": create,
        "move": move,
        "checklist update": checklist,
    }
    return {name: await timed(call) for name, call in paths.items()}


async def register(client: httpx.AsyncClient) -> tuple[uuid.UUID, str, str]:
    username = f"scale_{uuid.uuid4().hex[:12]}"
    password = f"scale password {username}"
    response = await client.post(
        "/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": password},
    )
    response.raise_for_status()
    return uuid.UUID(response.json()["id"]), username, password


async def measure(auth_url: str, tasks_url: str, database: str) -> tuple[dict[int, Any], float]:
    async with (
        httpx.AsyncClient(base_url=auth_url, timeout=30) as auth,
        httpx.AsyncClient(base_url=tasks_url, timeout=60) as tasks,
    ):
        accounts = {size: await register(auth) for size in SIZES}
        seconds = await seed(database, {size: account[0] for size, account in accounts.items()})
        figures = {}
        for size, (_, username, password) in accounts.items():
            login = await auth.post(
                "/auth/login", json={"username": username, "password": password}
            )
            login.raise_for_status()
            figures[size] = await measure_user(tasks, login.json()["access_token"])
    return figures, seconds


def main() -> None:
    """The stack starts outside the event loop (its launcher runs loops of its own)."""
    config = StackConfig.load()
    for name in config.ports:
        config.ports[name] = free_port()
    os.environ.update(NO_RATE_LIMITS)
    with tempfile.TemporaryDirectory(prefix="taskgate-bench-scale-") as work:
        stack = DevStack(config, Path(work), logs_to_files=True)
        stack.start()
        try:
            database = stack.postgres["tasks"].url(
                config.databases["tasks"]["name"], driver="postgresql"
            )
            figures, seconds = asyncio.run(measure(stack.url("auth"), stack.url("tasks"), database))
        finally:
            stack.destroy()
    report(figures, seconds)


def report(figures: dict[int, dict[str, dict[str, float]]], seed_seconds: float) -> None:
    total = BACKGROUND_USERS * 100 + sum(SIZES)
    print(
        f"\n{total:,} tasks ({BACKGROUND_USERS:,} users x 100, plus one user each with "
        f"{', '.join(f'{size:,}' for size in SIZES)}); seeded in {seed_seconds:.0f} s; "
        f"{REQUESTS} sequential requests per path, straight at the tasks service.\n"
    )
    header = " | ".join(f"{size:,} tasks p50 / p99 ms" for size in SIZES)
    print(f"| path | {header} |")
    print("|---|" + "---|" * len(SIZES))
    for path in figures[SIZES[0]]:
        cells = " | ".join(
            f"{figures[size][path]['p50_ms']} / {figures[size][path]['p99_ms']}" for size in SIZES
        )
        print(f"| {path} | {cells} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(),
                "background_users": BACKGROUND_USERS,
                "requests_per_path": REQUESTS,
                "seed_seconds": round(seed_seconds, 1),
                "figures": {str(size): paths for size, paths in figures.items()},
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
