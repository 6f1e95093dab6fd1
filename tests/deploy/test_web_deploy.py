"""The reference web app in Compose: the launcher's stdlib server in the auth image, wired
to the gateway's `web` router (gateway/dynamic/web.yml) as `make dev` wires it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "services" / "devstack" / "src" / "taskgate_devstack" / "web_server.py"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_serves_web_from_the_auth_image_with_read_only_mounts(
    compose: dict[str, Any],
) -> None:
    web = compose["services"]["web"]
    assert web["image"] == "taskgate-auth:local"
    assert "./web:/srv/web:ro" in web["volumes"]
    mount = "./services/devstack/src/taskgate_devstack/web_server.py:/opt/taskgate/web_server.py:ro"
    assert mount in web["volumes"]
    assert web["command"][:2] == ["python", "/opt/taskgate/web_server.py"]
    assert "ports" not in web  # reached through the gateway only
    traefik = compose["services"]["traefik"]
    port = web["command"][web["command"].index("--port") + 1]
    assert traefik["environment"]["TASKGATE_WEB_URL"] == f"http://web:{port}"
    assert traefik["depends_on"]["web"] == {"condition": "service_healthy"}
    assert set(web["networks"]) <= set(traefik["networks"])


def test_the_server_runs_alone_on_the_standard_library() -> None:
    """Mounted as a lone file into an image that has no taskgate_devstack."""
    tree = ast.parse(SERVER.read_text())
    imported = {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    } | {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported
    assert 'if __name__ == "__main__":' in SERVER.read_text()


def test_the_web_routes_render_only_with_a_web_url() -> None:
    text = (ROOT / "gateway" / "dynamic" / "web.yml").read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    first_action = next(i for i, line in enumerate(lines) if "{{" in line)
    assert lines[first_action] == '# {{- if env "TASKGATE_WEB_URL" }}'
    assert lines[-1] == "# {{- end }}"
    parsed = yaml.safe_load(text)
    assert set(parsed["http"]["routers"]) == {"web"}
    assert parsed["http"]["routers"]["web"]["middlewares"][0] == "json-errors"
