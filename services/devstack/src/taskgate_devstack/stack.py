"""The whole taskgate stack without Docker: PostgreSQL per service, an SMTP sink, the services,
(the gateway).

Used by `make dev` (data kept under `.data/`) and by the end-to-end tests (temporary data
directory, free ports): one launcher, so the tests run the stack exactly as developers do.

With several replicas (`TASKGATE_REPLICAS=2 make dev`, `StackConfig.set_replicas`), each service
runs that many uvicorn processes on ports of their own, the gateway lists them all as servers
of the service, and a Redis holds the rate limits and the lockout they must share.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
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
from taskgate_devstack.processes import spawn, terminate, terminate_all
from taskgate_devstack.redis import RedisServer, redis_binary
from taskgate_devstack.web_server import WebServer

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_CONFIG = REPO_ROOT / "deploy" / "devstack.toml"
# How long a service keeps an idle connection: longer than the gateway does (its
# serversTransport idleConnTimeout), so that the gateway never sends on a closing connection.
KEEP_ALIVE_SECONDS = 75
# What a service gets to finish in-flight requests after its drain (uvicorn's
# --timeout-graceful-shutdown), and the launcher's margin on top before it sends SIGKILL.
GRACEFUL_SHUTDOWN_SECONDS = 10
STOP_MARGIN_SECONDS = 5


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
    # Only with several replicas, under `env` (which wins).
    replicated_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Replica:
    """One process of a service: `name` names its process and log file, `port` its entry in
    `StackConfig.ports`; replica 1 keeps the service's own names (`auth`), others `auth_2`."""

    service: str
    index: int
    name: str
    port: str


@dataclass
class GatewaySpec:
    static: Path
    dynamic: Path
    env: dict[str, str]
    replicated_env: dict[str, str] = field(default_factory=dict)


@dataclass
class ReplicasSpec:
    port_step: int  # replica k listens on the service's port + (k - 1) * port_step
    redis_port: str  # the port entry of the Redis that replicas share


@dataclass
class SmtpSpec:
    port: str
    directory: str  # under the data directory


@dataclass
class WebSpec:
    root: Path  # the static files of the reference web app (web/)
    port: str


@dataclass
class StackConfig:
    ports: dict[str, int]
    databases: dict[str, dict[str, str]]
    services: list[ServiceSpec]
    gateway: GatewaySpec | None = None
    smtp: SmtpSpec | None = None
    web: WebSpec | None = None
    replicas_spec: ReplicasSpec | None = None
    replicas: int = 1

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
                replicated_env=dict(spec.get("replicated_env", {})),
            )
            for name, spec in raw["services"].items()
        ]
        gateway = None
        if "gateway" in raw:
            gateway = GatewaySpec(
                static=REPO_ROOT / raw["gateway"]["static"],
                dynamic=REPO_ROOT / raw["gateway"]["dynamic"],
                env=dict(raw["gateway"].get("env", {})),
                replicated_env=dict(raw["gateway"].get("replicated_env", {})),
            )
        smtp = None
        if "smtp" in raw:
            smtp = SmtpSpec(port=raw["smtp"]["port"], directory=raw["smtp"]["directory"])
        web = None
        if "web" in raw:
            web = WebSpec(root=REPO_ROOT / raw["web"]["root"], port=raw["web"]["port"])
        replicas_spec = None
        if "replicas" in raw:
            replicas_spec = ReplicasSpec(
                port_step=int(raw["replicas"]["port_step"]), redis_port=raw["replicas"]["redis"]
            )
        return cls(
            ports=dict(raw["ports"]),
            databases=raw["databases"],
            services=services,
            gateway=gateway,
            smtp=smtp,
            web=web,
            replicas_spec=replicas_spec,
        )

    def set_replicas(self, count: int) -> None:
        """Run `count` processes per service: adds the ports of replicas 2..count (the
        service's port + (k - 1) * port_step) to `ports`, so that they can be moved like any
        other before the stack starts."""
        if count < 1:
            raise StackError(f"replicas must be at least 1, not {count}")
        if count > 1 and self.replicas_spec is None:
            raise StackError("several replicas need a [replicas] table in the stack config")
        self.replicas = count
        for service in self.services:
            for replica in self.replicas_of(service)[1:]:
                step = self.replicas_spec.port_step if self.replicas_spec else 0
                self.ports.setdefault(
                    replica.port, self.ports[service.port] + (replica.index - 1) * step
                )

    def replicas_of(self, service: ServiceSpec) -> list[Replica]:
        return [
            Replica(service.name, 1, service.name, service.port),
            *(
                Replica(service.name, k, f"{service.name}_{k}", f"{service.port}_{k}")
                for k in range(2, self.replicas + 1)
            ),
        ]


@dataclass
class DevStack:
    config: StackConfig
    data_dir: Path
    logs_to_files: bool = False
    fast_unsafe_postgres: bool = False
    postgres: dict[str, EmbeddedPostgres] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    mail_sink: MailSink | None = None
    web_server: WebServer | None = None
    redis: RedisServer | None = None
    _service_envs: dict[str, dict[str, str]] = field(default_factory=dict)

    def url(self, port_name: str) -> str:
        return f"http://127.0.0.1:{self.config.ports[port_name]}"

    @property
    def replicated(self) -> bool:
        return self.config.replicas > 1

    def replica_names(self, service: str) -> list[str]:
        """The process names of `service`'s replicas (`["auth", "auth_2"]`); each is also its
        port's name, for `url`, `stop_service` and `start_service`."""
        return [replica.name for replica in self.config.replicas_of(self.service(service))]

    def _replica(self, name: str) -> tuple[ServiceSpec, Replica]:
        for service in self.config.services:
            for replica in self.config.replicas_of(service):
                if replica.name == name:
                    return service, replica
        raise KeyError(f"no service replica named {name!r}")

    def _expand(self, template: str, db_url: str = "") -> str:
        def port(match: re.Match[str]) -> str:
            return str(self.config.ports[match.group(1)])

        def urls(match: re.Match[str]) -> str:
            service = self.service(match.group(1))
            return ",".join(self.url(r.port) for r in self.config.replicas_of(service))

        def secret(match: re.Match[str]) -> str:
            return str(self._secret_file(match.group(1)))

        text = re.sub(r"\{port:([a-z0-9_]+)\}", port, template)
        text = re.sub(r"\{urls:([a-z0-9_]+)\}", urls, text)
        text = re.sub(r"\{secret:([a-z0-9_-]+)\}", secret, text)
        return (
            text.replace("{data_dir}", str(self.data_dir))
            .replace("{db_url}", db_url)
            .replace("{python}", sys.executable)
        )

    def _secret_file(self, name: str) -> Path:
        """{data_dir}/secrets/`name`: a random key, made on first use and kept (like the
        signing key), readable by its owner only."""
        path = self.data_dir / "secrets" / name
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path

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
        used |= {
            replica.port
            for service in self.config.services
            for replica in self.config.replicas_of(service)
        }
        if self.config.gateway is not None:
            used |= {"gateway", "gateway_ping", "gateway_metrics"}
        if self.config.smtp is not None:
            used.add(self.config.smtp.port)
        if self.config.web is not None:
            used.add(self.config.web.port)
        if self.replicated and self.config.replicas_spec is not None:
            used.add(self.config.replicas_spec.redis_port)
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
            self._start_redis()
            for service in self.config.services:
                for replica in self.config.replicas_of(service):
                    self._start_replica(service, replica)
            for service in self.config.services:
                for replica in self.config.replicas_of(service):
                    self._wait_ready(replica)
            self._start_web_server()
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

    def _start_web_server(self) -> None:
        """The reference web app's static files, which the gateway serves at `/`."""
        if self.config.web is None:
            return
        server = WebServer(self.config.web.root, self.config.ports[self.config.web.port])
        server.start()
        self.web_server = server

    def _start_databases(self) -> None:
        for name, spec in self.config.databases.items():
            server = EmbeddedPostgres(
                self.data_dir / "postgres" / name,
                self.config.ports[spec["port"]],
                fast_unsafe=self.fast_unsafe_postgres,
            )
            server.start()
            self.postgres[name] = server

    def _start_redis(self) -> None:
        """With several replicas: the Redis their rate limits and lockout are counted in."""
        spec = self.config.replicas_spec
        if not self.replicated or spec is None:
            return
        if redis_binary() is None:
            raise StackError(
                "several replicas share their rate limits in Redis, and redis-server is not "
                "installed (apt-get install redis-server)"
            )
        server = RedisServer(self.data_dir / "redis", self.config.ports[spec.redis_port])
        server.start()
        self.redis = server

    def _layered(self, base: dict[str, str], replicated: dict[str, str]) -> dict[str, str]:
        """`base` over `replicated` (the latter only with several replicas)."""
        return {**replicated, **base} if self.replicated else dict(base)

    def _service_env(self, service: ServiceSpec) -> dict[str, str]:
        database = self.config.databases[service.database]
        db_url = ensure_database(self.postgres[service.database].admin_url, database["name"])
        templates = self._layered(service.env, service.replicated_env)
        env = dict(os.environ)
        env.update({key: self._expand(value, db_url) for key, value in templates.items()})
        # An operator's own variable wins over the stack's default.
        env.update({key: os.environ[key] for key in templates if key in os.environ})
        return env

    def update_service_env(self, service: str, values: dict[str, str]) -> None:
        """Change `service`'s environment for the replicas started from now on (e.g. a key
        rotation restarts them one by one with new key settings)."""
        self._service_envs[service].update(values)

    def _run_step(self, service: ServiceSpec, step: list[str], env: dict[str, str]) -> None:
        args = [self._expand(part) for part in step]
        result = subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(
                f"{service.name}: `{' '.join(step[1:])}` failed:\n{result.stderr.strip()}"
            )
        if result.stdout.strip():
            print(f"[{service.name}] {result.stdout.strip()}", flush=True)

    def _start_replica(self, service: ServiceSpec, replica: Replica) -> None:
        """Start one process of `service`; its first start prepares and migrates, once for
        all replicas (migrations take an advisory lock besides: see taskgate_common.migrations)."""
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
            str(self.config.ports[replica.port]),
            "--no-access-log",
            # Longer than the gateway keeps an idle connection (gateway/traefik.yml).
            "--timeout-keep-alive",
            str(KEEP_ALIVE_SECONDS),
            "--timeout-graceful-shutdown",
            str(GRACEFUL_SHUTDOWN_SECONDS),
        ]
        self.processes[replica.name] = spawn(args, env, self._log_file(replica.name), REPO_ROOT)

    def _wait_ready(self, replica: Replica) -> None:
        self._wait_http(replica.name, f"{self.url(replica.port)}/health/ready")

    def _stop_timeout(self, name: str) -> float:
        """How long a process may take to stop after SIGTERM before it is killed: a service
        drains (`*_SHUTDOWN_DRAIN_SECONDS`), then finishes what it holds."""
        try:
            service, _ = self._replica(name)
        except KeyError:
            return GRACEFUL_SHUTDOWN_SECONDS  # the gateway
        drain = 0.0
        for key, value in self._service_envs.get(service.name, {}).items():
            if key.endswith("_SHUTDOWN_DRAIN_SECONDS"):
                with contextlib.suppress(ValueError):
                    drain = max(drain, float(value))
        return drain + GRACEFUL_SHUTDOWN_SECONDS + STOP_MARGIN_SECONDS

    def _start_gateway(self, gateway: GatewaySpec) -> None:
        access_log = self._log_file("gateway-access")
        ports = self.config.ports
        config = render_static_config(gateway.static, gateway.dynamic, ports, access_log)
        static_file = write_static_config(config, self.data_dir / "gateway" / "traefik.yml")
        templates = self._layered(gateway.env, gateway.replicated_env)
        env = dict(os.environ)
        env.update({key: self._expand(value) for key, value in templates.items()})
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
        """Stop one service replica (`auth`, `auth_2`) as an orchestrator would: SIGTERM, then
        wait while it drains and finishes its requests; `start_service` brings it back."""
        process = self.processes.pop(name, None)
        if process is not None:
            terminate(process, self._stop_timeout(name))

    def kill_service(self, name: str) -> None:
        """SIGKILL one service replica: no drain, no goodbye (the crash tests)."""
        process = self.processes.pop(name, None)
        if process is not None:
            process.kill()
            process.wait()

    def start_service(self, name: str) -> None:
        """Start a stopped replica and wait until it is ready."""
        service, replica = self._replica(name)
        self._start_replica(service, replica)
        self._wait_ready(replica)

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
        """The gateway first, then every service replica at once (each drains if configured,
        finishes its requests and sends pending mail), then Redis, the databases, the SMTP
        sink and the web app's static server."""
        gateway = self.processes.pop("gateway", None)
        if gateway is not None:
            terminate(gateway)
        terminate_all(
            [(process, self._stop_timeout(name)) for name, process in self.processes.items()]
        )
        self.processes.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        for server in self.postgres.values():
            server.stop()
        self.postgres.clear()
        if self.mail_sink is not None:
            self.mail_sink.stop()
            self.mail_sink = None
        if self.web_server is not None:
            self.web_server.stop()
            self.web_server = None
