"""A generated TypeScript client against the running stack, as a frontend developer builds one.

Types come from the OpenAPI documents the gateway serves (`openapi-typescript`, default options);
`typescript/client_check.ts` (register, login, a title-only create, list, move with `If-Match`,
a stale `If-Match` → 412) must compile under `tsc --strict` and then run against the gateway
with `openapi-fetch`. Both documents must also pass `redocly lint` (recommended rules, every
warning a failure, three rules off with their reasons in `typescript/redocly.yaml`).

Node and npm come from the machine (`.ci/run` installs Debian's); the npm packages are pinned
by `typescript/package-lock.json` and installed here with `npm ci` when the lockfile changes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from node_packages import installed

NODE_DIR = Path(__file__).parent / "typescript"
GENERATED = NODE_DIR / "generated"
DOCUMENTS = {"auth": "/auth/openapi.json", "tasks": "/api/openapi.json"}


def _run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{output}"
    return result.stdout


@pytest.fixture(scope="module")
def node_bin() -> Path:
    """`node_modules/.bin`, installed from the lockfile."""
    return installed(NODE_DIR) / ".bin"


@pytest.fixture(scope="module")
def documents(gateway_url: str) -> dict[str, Path]:
    """Both OpenAPI documents, as the gateway serves them."""
    GENERATED.mkdir(exist_ok=True)
    paths = {}
    for name, url in DOCUMENTS.items():
        response = httpx.get(gateway_url + url, timeout=10)
        assert response.status_code == 200, response.text
        paths[name] = GENERATED / f"{name}.json"
        paths[name].write_text(response.text)
    return paths


def test_generated_types_compile_strict_and_the_client_runs(
    node_bin: Path, documents: dict[str, Path], gateway_url: str
) -> None:
    for name, document in documents.items():
        _run(node_bin / "openapi-typescript", document, "-o", GENERATED / f"{name}.ts")
    _run(node_bin / "tsc", "-p", ".")

    output = _run("node", "dist/client_check.js", env={"GATEWAY_URL": gateway_url})

    assert json.loads(output.strip().splitlines()[-1])["ok"] is True


def test_title_only_create_is_optional_in_the_generated_type(
    node_bin: Path, documents: dict[str, Path]
) -> None:
    """The fields with server defaults are optional members, so `{title}` is a whole body."""
    _run(node_bin / "openapi-typescript", documents["tasks"], "-o", GENERATED / "tasks.ts")
    generated = (GENERATED / "tasks.ts").read_text()
    task_create = generated[generated.index("TaskCreate: {") :]
    task_create = task_create[: task_create.index("\n        };")]

    assert "title: string;" in task_create
    for optional in ("description?:", "status?:", "priority?:", "due_at?:", "labels?:"):
        assert optional in task_create


def test_both_documents_pass_redocly_lint(node_bin: Path, documents: dict[str, Path]) -> None:
    problems = {}
    for name, document in documents.items():
        report = json.loads(
            _run(
                node_bin / "redocly",
                "lint",
                "--config",
                "redocly.yaml",
                "--format",
                "json",
                document,
            )
        )
        problems[name] = [
            f"{problem['severity']} {problem['ruleId']}: {problem['message']}"
            for problem in report["problems"]
        ]

    assert problems == {"auth": [], "tasks": []}
