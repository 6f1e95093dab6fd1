"""No read or placement query scans a user's tasks: each is an index range (or the columns'
kept counts), so its cost does not grow with how many tasks the user has.

The repositories' own statements run under `EXPLAIN ANALYZE` on a user with 20,000 tasks among
30,000: a sequential scan of `tasks` anywhere in a plan fails the test, and so does reading
more than `MAX_ROWS_READ` rows of `tasks` (rows returned plus rows a filter threw away), which
is what an index scan over all the user's rows (the old board's window functions, a label
filter walked along the date index) would do.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from taskgate_devstack.pytest_plugin import PostgresForTests
from tasks_service.core.config import Settings
from tasks_service.migrate import upgrade
from tasks_service.models import TaskStatus
from tasks_service.repositories import boards, task_lists, tasks

GAP = 1 << 20
MAX_ROWS_READ = 1_000


class PlanRecorder:
    """Stands in for a connection: runs each statement as the services' connections do and
    keeps the plan of its sixth run under `EXPLAIN ANALYZE`. asyncpg prepares every statement,
    and from the sixth run PostgreSQL may use a generic plan, made without the parameters'
    values (a LIMIT, a keyset bound): the services set `plan_cache_mode`
    (`DB_PLAN_CACHE_MODE`) so that it does not, and this runs with their setting."""

    def __init__(self, db: asyncpg.Connection) -> None:
        self.db = db
        self.plans: list[dict[str, Any]] = []

    async def _plan(self, sql: str, *args: Any) -> None:
        values = ", ".join(_literal(arg) for arg in args)
        execute = f"EXECUTE planned({values})" if args else "EXECUTE planned"
        await self.db.execute(f"PREPARE planned AS {sql}")
        try:
            for _ in range(5):
                await self.db.execute(execute)
            plan = await self.db.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {execute}")
        finally:
            await self.db.execute("DEALLOCATE planned")
        self.plans.append(json.loads(plan)[0]["Plan"])

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        await self._plan(sql, *args)
        return []

    async def fetchrow(self, sql: str, *args: Any) -> None:
        await self._plan(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> None:
        await self._plan(sql, *args)


def _literal(value: Any) -> str:
    """A test value as an SQL literal for EXECUTE (the prepared statement's types apply)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        items = ",".join('"' + str(item).replace('"', '\\"') + '"' for item in value)
        return "'{" + items + "}'"
    return "'" + str(value).replace("'", "''") + "'"


def _scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(plan["Node Type"], plan.get("Relation Name", ""))]
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


def _rows_read(plan: dict[str, Any], relation: str = "tasks") -> int:
    """Rows of `relation` the executor touched: returned, or removed by a filter or recheck."""
    read = 0
    if plan.get("Relation Name") == relation:
        per_loop = (
            plan["Actual Rows"]
            + plan.get("Rows Removed by Filter", 0)
            + plan.get("Rows Removed by Index Recheck", 0)
        )
        read += int(per_loop * plan["Actual Loops"])
    return read + sum(_rows_read(child, relation) for child in plan.get("Plans", []))


@pytest.fixture(scope="module")
async def seeded(postgres_server: PostgresForTests) -> AsyncIterator[dict[str, Any]]:
    """A big user (20,000 tasks on two boards) among 200 small ones (50 each), in a database
    of its own (the suite's is emptied after every test)."""
    url = await asyncio.to_thread(postgres_server.fresh_database, "tasks_plans")
    await asyncio.to_thread(upgrade, url)
    db = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    big = uuid.uuid4()
    try:
        # A bulk load: no change-log entries for it (migration 0004).
        await db.execute("SET taskgate.change_log = 'off'")
        await db.execute(
            """
            WITH owners AS (
                SELECT $1::uuid AS owner_id, 2 AS board_count, 20000 AS task_count
                UNION ALL SELECT gen_random_uuid(), 1, 50 FROM generate_series(1, 200)
            ), new_boards AS (
                INSERT INTO boards (id, owner_id, name, position, is_default)
                SELECT gen_random_uuid(), owner_id, 'b' || n, n * 1048576, n = 1
                FROM owners, generate_series(1, board_count) AS n
                RETURNING id, owner_id
            ), new_columns AS (
                INSERT INTO board_columns (id, board_id, owner_id, name, category, position)
                SELECT gen_random_uuid(), b.id, b.owner_id, c.category::text, c.category,
                       c.rank * 1048576
                FROM new_boards AS b, (VALUES ('todo'::task_status, 1),
                    ('in_progress'::task_status, 2), ('done'::task_status, 3)) AS c (category, rank)
                RETURNING id, board_id, owner_id, category
            )
            INSERT INTO tasks (id, owner_id, board_id, column_id, title, description, status,
                               position, priority, labels, completed_at)
            SELECT gen_random_uuid(), c.owner_id, c.board_id, c.id,
                   CASE WHEN n % 1000 = 7 AND owners.task_count > 50 THEN 'the needle ' || n
                        ELSE 'task ' || n END,
                   'about task ' || n, c.category, n::bigint * 1048576, 'medium',
                   CASE WHEN n % 1000 = 0 THEN ARRAY['rare'] ELSE ARRAY['common'] END,
                   CASE WHEN c.category = 'done' THEN now() END
            FROM new_columns AS c
            JOIN owners USING (owner_id)
            CROSS JOIN LATERAL generate_series(1, owners.task_count / (owners.board_count * 3)) AS n
            """,
            big,
        )
        await db.execute("ANALYZE tasks; ANALYZE boards; ANALYZE board_columns")
        # As the services' connections set them (DB_RANDOM_PAGE_COST, DB_PLAN_CACHE_MODE).
        service = Settings()
        await db.execute(f"SET random_page_cost = {service.db_random_page_cost}")
        await db.execute(f"SET plan_cache_mode = {service.db_plan_cache_mode}")
        board_id = await db.fetchval(
            "SELECT id FROM boards WHERE owner_id = $1 AND is_default", big
        )
        column_id = await db.fetchval(
            "SELECT id FROM board_columns WHERE board_id = $1 ORDER BY position LIMIT 1", board_id
        )
        yield {"db": db, "owner": big, "board": board_id, "column": column_id}
    finally:
        await db.close()


def _filters(**given: Any) -> dict[str, Any]:
    names = task_lists.FILTERS
    return {name: given.get(name) for name in names}


CASES: dict[str, Callable[[PlanRecorder, dict[str, Any]], Awaitable[Any]]] = {
    "list by position": lambda r, s: task_lists.page(
        r, s["owner"], _filters(), "position", None, 51
    ),
    "list by position, next page": lambda r, s: task_lists.page(
        r, s["owner"], _filters(), "position", [TaskStatus.TODO, 500 * GAP, uuid.uuid4()], 51
    ),
    "list newest first": lambda r, s: task_lists.page(
        r, s["owner"], _filters(), "-created_at", None, 51
    ),
    "list recently changed": lambda r, s: task_lists.page(
        r, s["owner"], _filters(), "-updated_at", None, 51
    ),
    "list by due date": lambda r, s: task_lists.page(r, s["owner"], _filters(), "due_at", None, 51),
    "list one status": lambda r, s: task_lists.page(
        r, s["owner"], _filters(status=["done"]), "position", None, 51
    ),
    "search": lambda r, s: task_lists.page(
        r, s["owner"], _filters(q="needle"), "position", None, 51
    ),
    "rare label": lambda r, s: task_lists.page(
        r, s["owner"], _filters(label=["rare"]), "-created_at", None, 51
    ),
    "one column": lambda r, s: task_lists.page(
        r, s["owner"], _filters(column_id=str(s["column"])), "position", None, 51
    ),
    "status view": lambda r, s: task_lists.status_board(r, s["owner"], 50),
    "board view": lambda r, s: task_lists.board_cards(r, s["owner"], s["board"], 50),
    "column page": lambda r, s: task_lists.column_page(r, s["owner"], s["column"], None, 51),
    "column next page": lambda r, s: task_lists.column_page(
        r, s["owner"], s["column"], 700 * GAP, 51
    ),
    "create's column": lambda r, s: boards.default_column(r, s["owner"], TaskStatus.TODO),
    "end of a column": lambda r, s: tasks.last_position(r, s["column"], exclude=uuid.uuid4()),
    "next to an anchor": lambda r, s: tasks.neighbour_position(
        r, s["column"], 900 * GAP, below=True, exclude=uuid.uuid4()
    ),
    "board's task count": lambda r, s: boards.board_task_count(r, s["board"]),
}


@pytest.mark.parametrize("case", CASES)
async def test_no_query_scans_the_users_tasks(seeded: dict[str, Any], case: str) -> None:
    recorder = PlanRecorder(seeded["db"])
    await CASES[case](recorder, seeded)
    assert recorder.plans
    scans = [scan for plan in recorder.plans for scan in _scans(plan)]
    assert ("Seq Scan", "tasks") not in scans, scans
    read = sum(_rows_read(plan) for plan in recorder.plans)
    assert read <= MAX_ROWS_READ, (read, scans)
