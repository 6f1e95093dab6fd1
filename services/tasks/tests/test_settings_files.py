"""Secrets read from mounted files (Compose, Kubernetes): the database password replaces the
URL's, so no environment variable carries it; an unreadable file stops the start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from tasks_service.core.config import Settings

URL = "postgresql+asyncpg://taskgate@tasks-db:5432/taskgate_tasks"


def test_the_password_file_fills_in_the_urls_password(tmp_path: Path) -> None:
    secret = tmp_path / "tasks-db-password"
    secret.write_text("p@ss:w/rd%42\n")
    settings = Settings(database_url=URL, database_password_file=secret)
    url = make_url(settings.database_url)
    assert url.password == "p@ss:w/rd%42"  # the newline dropped, the characters intact
    assert (url.username, url.host, url.database) == ("taskgate", "tasks-db", "taskgate_tasks")


def test_without_the_file_the_url_is_used_as_given() -> None:
    assert Settings(database_url=URL).database_url == URL


def test_a_missing_password_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="DATABASE_PASSWORD_FILE"):
        Settings(database_url=URL, database_password_file=tmp_path / "absent")
