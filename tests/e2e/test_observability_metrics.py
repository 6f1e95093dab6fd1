"""Every metric the alert rules and the dashboards read (deploy/prometheus, deploy/grafana) is
one the running stack exposes: the services on their own ports, Traefik on its metrics entry
point. A rule or panel naming a series nobody exports would show nothing, or never fire.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import httpx
from e2e_support import new_account
from reliability_support import wait_until

from taskgate_devstack.stack import DevStack

DEPLOY_TESTS = Path(__file__).resolve().parents[1] / "deploy"
# Series Prometheus makes itself: `up` per target, `ALERTS` per pending or firing alert.
PROMETHEUS_OWN = frozenset({"up", "ALERTS"})

_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]", re.MULTILINE)
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def _deploy_checks() -> ModuleType:
    """tests/deploy/test_dashboards.py: what the rules and dashboards read (test modules are
    not importable by name with pytest's `--import-mode=importlib`)."""
    path = DEPLOY_TESTS / "test_dashboards.py"
    spec = importlib.util.spec_from_file_location("taskgate_deploy_test_dashboards", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exposed_names(text: str) -> set[str]:
    """The series names a scrape offers: every sample's, and every declared family's with its
    histogram or summary suffixes (prometheus_client declares a labelled family before its
    first sample; Traefik only once it has one)."""
    names = set(_SAMPLE.findall(text))
    for family, kind in _TYPE.findall(text):
        names.add(family)
        names.update(family + suffix for suffix in _SUFFIXES.get(kind, ()))
    return names


def test_exposed_names_cover_declared_families() -> None:
    text = '# TYPE a_seconds histogram\n# TYPE b_total counter\nb_total{x="y"} 1\n# TYPE c gauge\n'
    assert exposed_names(text) == {
        "a_seconds",
        "a_seconds_bucket",
        "a_seconds_sum",
        "a_seconds_count",
        "b_total",
        "c",
    }


async def _traffic(gateway: httpx.AsyncClient) -> None:
    """Requests through every kind of router, so that Traefik has a series for each (it
    declares none before its first sample)."""
    account = await new_account(gateway)  # auth-credentials: register, login
    created = await gateway.post("/api/tasks", json={"title": "observed"}, headers=account.headers)
    assert created.status_code == 201, created.text
    assert (await gateway.get("/api/tasks", headers=account.headers)).status_code == 200
    assert (await gateway.get("/api/tasks")).status_code == 401
    assert (await gateway.get("/auth/.well-known/jwks.json")).status_code == 200
    assert (await gateway.get("/no-such-path")).status_code == 404


async def test_rules_and_dashboards_read_only_exposed_metrics(
    stack: DevStack, gateway: httpx.AsyncClient
) -> None:
    await _traffic(gateway)
    ports = stack.config.ports
    targets = {
        "auth": f"http://127.0.0.1:{ports['auth']}/metrics",
        "tasks": f"http://127.0.0.1:{ports['tasks']}/metrics",
        "traefik": f"http://127.0.0.1:{ports['gateway_metrics']}/metrics",
    }
    scraped: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10.0) as client:

        async def scrape() -> bool:
            for job, url in targets.items():
                response = await client.get(url)
                assert response.status_code == 200, f"{job}: {response.status_code}"
                scraped[job] = response.text
            # Traefik's health checks (every 5 s) make the upstream gauge once they have run.
            return "traefik_service_server_up{" in scraped["traefik"]

        await wait_until(scrape, timeout=30)

    exposed = set().union(*(exposed_names(text) for text in scraped.values()))
    read: Callable[[], set[str]] = _deploy_checks().raw_metric_names
    needed = read() - PROMETHEUS_OWN
    assert needed, "no metric name found in the rules and dashboards"
    missing = sorted(needed - exposed)
    assert not missing, f"read by rules or dashboards, exposed by nobody: {missing}"
    # The comparison is by exact name: a misspelt one is not "close enough".
    assert "auth_logins_totl" not in exposed
