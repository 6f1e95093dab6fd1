"""Boards and columns as the API shows them (schemas.BoardOut, ColumnOut, Board)."""

from __future__ import annotations

from typing import Any

from tasks_service.api.task_json import task_documents
from tasks_service.repositories.boards import BoardRecord, ColumnRecord
from tasks_service.services.listing import BoardView


def board_document(board: BoardRecord) -> dict[str, Any]:
    return {
        "id": board.id,
        "name": board.name,
        "is_default": board.is_default,
        "archived": board.archived_at is not None,
        "archived_at": board.archived_at,
        "version": board.version,
        "created_at": board.created_at,
        "updated_at": board.updated_at,
    }


def column_document(column: ColumnRecord) -> dict[str, Any]:
    return {
        "id": column.id,
        "board_id": column.board_id,
        "name": column.name,
        "category": column.category,
        "wip_limit": column.wip_limit,
        "total": column.task_count,
        "version": column.version,
    }


def board_view_document(view: BoardView) -> dict[str, Any]:
    return {
        **board_document(view.board),
        "columns": [
            {
                **column_document(column.column),
                "items": task_documents(column.items),
                "next_cursor": column.next_cursor,
            }
            for column in view.columns
        ],
    }
