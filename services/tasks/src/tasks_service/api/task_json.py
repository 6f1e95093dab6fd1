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

from tasks_service.core.etags import etag
from tasks_service.repositories.tasks import API_COLUMNS, TaskRecord, TaskRow

# Same text as Pydantic's JSON mode: UTC as `Z`, microseconds when present.
_OPTIONS = orjson.OPT_UTC_Z


def json_default(value: object) -> str:
    """asyncpg hands back its own UUID subclass, which orjson does not take as a UUID."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def task_document(task: TaskRecord) -> dict[str, Any]:
    document = {name: getattr(task, name) for name in API_COLUMNS}
    document["checklist"] = orjson.Fragment(task.checklist)
    return document


def _row_document(row: TaskRow) -> dict[str, Any]:
    """A list or board row as the API shows it: the API columns, in their order (not the
    position or any extra column the query added). The checklist is the database's JSON text,
    embedded as it is."""
    document = dict(zip(API_COLUMNS, row.values(), strict=False))
    document["checklist"] = orjson.Fragment(document["checklist"])
    return document


def task_documents(rows: Iterable[TaskRow]) -> list[dict[str, Any]]:
    return [_row_document(row) for row in rows]


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content, default=json_default, option=_OPTIONS),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def task_response(
    task: TaskRecord, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """One task, with its version as the ETag."""
    return json_response(
        task_document(task), status_code, {**(headers or {}), "ETag": etag(task.version)}
    )
