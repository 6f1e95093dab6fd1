"""Task bodies serialised straight to JSON bytes.

The hot paths (lists, the board, single tasks) skip building Pydantic models and having
FastAPI validate them again: the schemas in `schemas.py` stay the documented contract (every
route keeps its `response_model`), and a test checks these bytes against them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from fastapi import Response
from sqlalchemy import Row

from tasks_service.core.etags import etag
from tasks_service.models import Task, TaskStatus

# Same text as Pydantic's JSON mode: UTC as `Z`, microseconds when present.
_OPTIONS = orjson.OPT_UTC_Z

TaskLike = Task | Row[Any]


def _default(value: object) -> str:
    """asyncpg hands back its own UUID subclass, which orjson does not take as a UUID."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def task_document(task: TaskLike) -> dict[str, Any]:
    return {
        "id": task.id,
        "owner_id": task.owner_id,
        "title": task.title,
        "description": task.description,
        "status": task.status,
        "priority": task.priority,
        "due_at": task.due_at,
        "labels": task.labels,
        "completed_at": task.completed_at,
        "version": task.version,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "completed": task.status is TaskStatus.DONE,
    }


_ROW_KEYS = tuple(column.name for column in Task.__table__.columns)
_DONE = TaskStatus.DONE


def _row_document(row: Row[Any]) -> dict[str, Any]:
    """A row of every `tasks` column, as the API shows it (no `position`, plus `completed`)."""
    document = dict(zip(_ROW_KEYS, row, strict=True))
    del document["position"]
    document["completed"] = document["status"] is _DONE
    return document


def task_documents(tasks: Iterable[TaskLike]) -> list[dict[str, Any]]:
    """Lists and the board: plain rows (fast path) or ORM objects."""
    return [_row_document(task) if isinstance(task, Row) else task_document(task) for task in tasks]


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content, default=_default, option=_OPTIONS),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def task_response(
    task: TaskLike, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """One task, with its version as the ETag."""
    return json_response(
        task_document(task), status_code, {**(headers or {}), "ETag": etag(task.version)}
    )
