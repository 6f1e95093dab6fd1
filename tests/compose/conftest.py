"""One Compose deploy for the whole tests/compose session: up once, `down -v` at the end."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from compose_stack import PHASES, ComposeStack, DockerUnavailable, ensure_engine, find_compose
from compose_stack import standin_images as build_standin_images


@pytest.fixture(scope="session")
def stack() -> Iterator[ComposeStack]:
    try:
        ensure_engine()
        compose = find_compose()
        images = build_standin_images()
    except DockerUnavailable as reason:
        pytest.skip(f"the Compose deploy cannot run here: {reason}")
    with tempfile.TemporaryDirectory(prefix="taskgate-compose-") as workdir:
        deploy = ComposeStack(compose=compose, workdir=Path(workdir), images=images)
        deploy.write_env_file()
        # A run that was killed leaves its project behind: start from nothing.
        deploy.compose_run("down", "--volumes", "--remove-orphans", check=False)
        try:
            with PHASES.timed("build"):
                deploy.compose_run("build", timeout=1800)
            with PHASES.timed("make up to healthy"):
                deploy.make("up")
            deploy.wait_for_gateway()
            yield deploy
        finally:
            deploy.compose_run("down", "--volumes", "--remove-orphans", check=False)


@pytest.fixture(autouse=True)
def _timed_test() -> Iterator[None]:
    with PHASES.timed("tests (after up, down -v included)"):
        yield


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The phase times, so a CI log shows where the minutes went."""
    if PHASES.seconds:
        terminalreporter.section("Compose deploy phases")
        for name, seconds in PHASES.seconds.items():
            terminalreporter.write_line(f"{name:>36}: {seconds:7.1f} s")
