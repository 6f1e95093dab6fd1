"""Response helpers shared by the route modules."""

from __future__ import annotations

from fastapi import Response

from tasks_service.core.etags import etag
from tasks_service.models import Task
from tasks_service.schemas import TaskOut


def with_etag(response: Response, task: Task) -> TaskOut:
    """The task's body, with its ETag (its version) on the response."""
    response.headers["ETag"] = etag(task.version)
    return TaskOut.model_validate(task)
