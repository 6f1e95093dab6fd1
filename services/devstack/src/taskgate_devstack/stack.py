"""The whole taskgate stack without Docker: PostgreSQL per service, an SMTP sink, the services,
(the gateway).

Used by `make dev` (data kept under `.data/`) and by the end-to-end tests (temporary data
directory, free ports): one launcher, so the tests run the stack exactly as developers do.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from taskgate_devstack.databases import ensure_database
from taskgate_devstack.gateway import render_static_config, start_traefik, write_static_config
from taskgate_devstack.mail_sink import MailSink
from taskgate_devstack.postgres import EmbeddedPostgres, port_is_free
from taskgate_devstack.processes import spawn, terminate

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_CONFIG = REPO_ROOT / "deploy" / "devstack.toml"


class StackError(RuntimeError):
    """The stack could not start; the message says which part and why."""


@dataclass
class ServiceSpec:
    name: str
    database: str
    port: str
    app: str
    migrate: list[str]
    prepare: list[list[str]]
    env: dict[str, str]


@dataclass
class GatewaySpec:
    static: Path
    dynamic: Path
    env: dict[str, str]


@dataclass
class SmtpSpec:
    port: str
    directory: str  # under the data directory


@dataclass
class StackConfig:
    ports: dict[str, int]
    databases: dict[str, dict[str, str]]
    services: list[ServiceSpec]
    gateway: GatewaySpec | None = None
    smtp: SmtpSpec | None = None

    @classmethod
    def load(cls, path: Path = DEFAULT_CONFIG) -> StackConfig:
        raw: dict[str, Any] = tomllib.loads(path.read_text())
        services = [
            ServiceSpec(
                name=name,
                database=spec["database"],
                port=spec["port"],
                app=spec["app"],
                migrate=list(spec.get("migrate", [])),
                prepare=[list(step) for step in spec.get("prepare", [])],
                env=dict(spec.get("env", {})),
            )
            for name, spec in raw["services"].items()
        ]
        gateway = None
        if "gateway" in raw:
            gateway = GatewaySpec(
                static=REPO_ROOT / raw["gateway"]["static"],
                dynamic=REPO_ROOT / raw["gateway"]["dynamic"],
                env=dict(raw["gateway"].get("env", {})),
            )
        smtp = None
        if "smtp" in raw:
            smtp = SmtpSpec(port=raw["smtp"]["port"], directory=raw["smtp"]["directory"])
        return cls(
            ports=dict(raw["ports"]),
            databases=raw["databases"],
            services=services,
            gateway=gateway,
            smtp=smtp,
        )


@dataclass
class DevStack:
    config: StackConfig
    data_dir: Path
    logs_to_files: bool = False
    fast_unsafe_postgres: bool = False
    postgres: dict[str, EmbeddedPostgres] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    mail_sink: MailSink | None = None
    _service_envs: dict[str, dict[str, str]] = field(default_factory=dict)

    def url(self, port_name: str) -> str:
        return f"http://127.0.0.1:{self.config.ports[port_name]}"

    def _expand(self, template: str, db_url: str = "") -> str:
        def port(match: re.Match[str]) -> str:
            return str(self.config.ports[match.group(1)])

        text = re.sub(r"\{port:([a-z_]+)\}", port, template)
        return (
            text.replace("{data_dir}", str(self.data_dir))
            .replace("{db_url}", db_url)
            .replace("{python}", sys.executable)
        )

    def check_ports(self) -> None:
        taken = [
            f"{name} ({port})"
            for name, port in self.config.ports.items()
            if (name in self._used_ports()) and not port_is_free(port)
        ]
        if taken:
            raise StackError(
                f"port already in use: {', '.join(taken)}. Stop whatever holds it, or change "
                f"the port in deploy/devstack.toml (or the matching TASKGATE_PORT_* variable)."
            )

    def _used_ports(self) -> set[str]:
        used = {spec["port"] for spec in self.config.databases.values()}
        used |= {service.port for service in self.config.services}
        if self.config.gateway is not None:
            used |= {"gateway", "gateway_ping", "gateway_metrics"}
        if self.config.smtp is not None:
            used.add(self.config.smtp.port)
        return used

    @property
    def mail_dir(self) -> Path | None:
        """Where the SMTP sink stores each mail (None when the stack has no sink)."""
        if self.config.smtp is None:
            return None
        return self.data_dir / self.config.smtp.directory

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.check_ports()
        try:
            self._start_mail_sink()
            self._start_databases()
            for service in self.config.services:
                self._start_service(service)
            for service in self.config.services:
                self._wait_ready(service)
            if self.config.gateway is not None:
                self._start_gateway(self.config.gateway)
        except BaseException:
            self.stop()
            raise

    def _log_file(self, name: str) -> Path | None:
        if not self.logs_to_files:
            return None
        (self.data_dir / "logs").mkdir(exist_ok=True)
        return self.data_dir / "logs" / f"{name}.log"

    def _start_mail_sink(self) -> None:
        if self.config.smtp is None or self.mail_dir is None:
            return
        sink = MailSink(self.mail_dir, self.config.ports[self.config.smtp.port])
        sink.start()
        self.mail_sink = sink

    def _start_databases(self) -> None:
        for name, spec in self.config.databases.items():
            server = EmbeddedPostgres(
                self.data_dir / "postgres" / name,
                self.config.ports[spec["port"]],
                fast_unsafe=self.fast_unsafe_postgres,
            )
            server.start()
            self.postgres[name] = server

    def _service_env(self, service: ServiceSpec) -> dict[str, str]:
        database = self.config.databases[service.database]
        db_url = ensure_database(self.postgres[service.database].admin_url, database["name"])
        env = dict(os.environ)
        env.update({key: self._expand(value, db_url) for key, value in service.env.items()})
        # An operator's own variable wins over the stack's default.
        env.update({key: os.environ[key] for key in service.env if key in os.environ})
        return env

    def _run_step(self, service: ServiceSpec, step: list[str], env: dict[str, str]) -> None:
        args = [self._expand(part) for part in step]
        result = subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(
                f"{service.name}: `{' '.join(step[1:])}` failed:\n{result.stderr.strip()}"
            )
        if result.stdout.strip():
            print(f"[{service.name}] {result.stdout.strip()}", flush=True)

    def _start_service(self, service: ServiceSpec) -> None:
        env = self._service_envs.get(service.name)
        if env is None:
            env = self._service_envs[service.name] = self._service_env(service)
            for step in service.prepare:
                self._run_step(service, step, env)
            if service.migrate:
                self._run_step(service, service.migrate, env)
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            service.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.config.ports[service.port]),
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "10",
        ]
        self.processes[service.name] = spawn(args, env, self._log_file(service.name), REPO_ROOT)

    def _wait_ready(self, service: ServiceSpec) -> None:
        self._wait_http(service.name, f"{self.url(service.port)}/health/ready")

    def _start_gateway(self, gateway: GatewaySpec) -> None:
        access_log = self._log_file("gateway-access")
        ports = self.config.ports
        config = render_static_config(gateway.static, gateway.dynamic, ports, access_log)
        static_file = write_static_config(config, self.data_dir / "gateway" / "traefik.yml")
        env = dict(os.environ)
        env.update({key: self._expand(value) for key, value in gateway.env.items()})
        # The gateway's own errors carry CORS headers for the origins the services allow.
        env.setdefault("TASKGATE_CORS_ORIGINS", self._cors_origins())
        self.processes["gateway"] = start_traefik(
            gateway.static, static_file, env, self._log_file("gateway")
        )
        # Ready when it answers ping and routes to the auth service (routers are loaded).
        self._wait_http("gateway", f"{self.url('gateway_ping')}/ping")
        self._wait_http("gateway", f"{self.url('gateway')}/auth/.well-known/openid-configuration")

    def _cors_origins(self) -> str:
        origins = {
            origin.strip()
            for env in self._service_envs.values()
            for key, value in env.items()
            if key.endswith("_CORS_ORIGINS")
            for origin in value.split(",")
            if origin.strip()
        }
        return ",".join(sorted(origins))

    def _wait_http(self, name: str, url: str, timeout: float = 60.0) -> None:
        process = self.processes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(f"{name} exited with code {process.returncode}")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise StackError(f"{name} not ready at {url} after {timeout:.0f}s")

    def service(self, name: str) -> ServiceSpec:
        return next(spec for spec in self.config.services if spec.name == name)

    def stop_service(self, name: str) -> None:
        """Stop one service (fault tests); `start_service` brings it back."""
        process = self.processes.pop(name, None)
        if process is not None:
            terminate(process)

    def start_service(self, name: str) -> None:
        spec = self.service(name)
        self._start_service(spec)
        self._wait_ready(spec)

    def failed_process(self) -> str | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name
        return None

    def destroy(self) -> None:
        """Stop, then delete the databases' files (temporary stacks: tests, bench)."""
        servers = list(self.postgres.values())
        self.stop()
        for server in servers:
            server.destroy()

    def stop(self) -> None:
        """Services first (they drain requests and send pending mail), then the databases and
        the SMTP sink."""
        for process in reversed(list(self.processes.values())):
            terminate(process)
        self.processes.clear()
        for server in self.postgres.values():
            server.stop()
        self.postgres.clear()
        if self.mail_sink is not None:
            self.mail_sink.stop()
            self.mail_sink = None
