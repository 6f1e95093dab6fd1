"""Change entries as JSON (schemas in change_schemas.py), and as Server-Sent Events frames.

An entry's `data` is rendered by the same functions as a read of the object, so a client
applies what it would have fetched.
"""

from __future__ import annotations

from typing import Any

import orjson

from tasks_service.api.board_json import board_document, column_document
from tasks_service.api.task_json import json_default, task_document
from tasks_service.repositories.boards import BoardRecord, ColumnRecord
from tasks_service.repositories.changes import ChangeEntry, Record
from tasks_service.repositories.tasks import TaskRecord
from tasks_service.services.event_streams import End, Heartbeat, Ready, StreamItem


def _data(record: Record) -> dict[str, Any]:
    if isinstance(record, TaskRecord):
        return task_document(record)
    if isinstance(record, BoardRecord):
        return board_document(record)
    assert isinstance(record, ColumnRecord)
    return column_document(record)


def change_document(entry: ChangeEntry) -> dict[str, Any]:
    record = entry.record
    return {
        "cursor": str(entry.seq),
        "type": entry.entity,
        "op": "delete" if record is None else "upsert",
        "id": entry.entity_id,
        "version": entry.version,
        "position": None if record is None else record.position,
        "changed_at": entry.changed_at,
        "data": None if record is None else _data(record),
    }


def _json(document: Any) -> bytes:
    return orjson.dumps(document, default=json_default, option=orjson.OPT_UTC_Z)


# How long EventSource waits before reconnecting after the stream ends or breaks.
RETRY_MILLISECONDS = 2000


def sse_frame(item: StreamItem) -> bytes:
    """One item as the bytes of an event (`id` = cursor, so `Last-Event-ID` resumes there)."""
    if isinstance(item, ChangeEntry):
        return b"id: %d\nevent: change\ndata: %s\n\n" % (item.seq, _json(change_document(item)))
    if isinstance(item, Heartbeat):
        return b": keep-alive\n\n"
    if isinstance(item, Ready):
        cursor = str(item.cursor)
        return b"retry: %d\nid: %s\nevent: ready\ndata: %s\n\n" % (
            RETRY_MILLISECONDS,
            cursor.encode(),
            _json({"cursor": cursor}),
        )
    assert isinstance(item, End)
    return b"event: end\ndata: %s\n\n" % _json({"code": item.code, "detail": item.detail})
