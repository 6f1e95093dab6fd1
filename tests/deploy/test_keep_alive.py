"""The gateway drops an idle upstream connection before the service does, everywhere a service
is started (make dev, the images, Kubernetes).

Why: uvicorn closes an idle keep-alive connection after `--timeout-keep-alive` (5 s by
default) and Traefik kept them 90 s. A request Traefik sent on a connection the service was
closing at that moment failed, and a POST, which Traefik never retries, came back 502 (seen in
the soak and in a browser test's registration). With the service keeping them longer than the
gateway, only the gateway closes idle connections, and never while sending on one.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from taskgate_devstack.stack import KEEP_ALIVE_SECONDS

ROOT = Path(__file__).resolve().parents[2]


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    value, unit = int(match.group(1)), match.group(2)
    return value / 1000 if unit == "ms" else value * (60 if unit == "m" else 1)


def gateway_idle_seconds() -> float:
    static = yaml.safe_load((ROOT / "gateway" / "traefik.yml").read_text())
    return _seconds(static["serversTransport"]["forwardingTimeouts"]["idleConnTimeout"])


def _keep_alive(arguments: list[str]) -> float:
    assert "--timeout-keep-alive" in arguments, arguments
    return float(arguments[arguments.index("--timeout-keep-alive") + 1])


def test_make_dev_services_outlast_the_gateways_idle_connections() -> None:
    assert gateway_idle_seconds() < KEEP_ALIVE_SECONDS


def test_the_images_services_outlast_the_gateways_idle_connections() -> None:
    for service in ("auth", "tasks"):
        dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
        command = next(line for line in dockerfile.splitlines() if line.startswith("CMD"))
        assert _keep_alive(command.replace('"]', "").split()) > gateway_idle_seconds(), service


def test_the_kubernetes_services_outlast_the_gateways_idle_connections() -> None:
    for service in ("auth", "tasks"):
        path = ROOT / "deploy" / "kubernetes" / "base" / service / "deployment.yaml"
        deployment = yaml.safe_load(path.read_text())
        containers = deployment["spec"]["template"]["spec"]["containers"]
        server = next(c for c in containers if "uvicorn" in c.get("command", []))
        assert _keep_alive([str(part) for part in server["command"]]) > gateway_idle_seconds()
