"""The Grafana dashboards in deploy/grafana: every panel's query parses (promtool), names only
recording rules that exist, and reads the provisioned Prometheus; the provisioning matches
compose.yaml. Whether the raw metric names are ones the services and Traefik really expose is
checked against a running stack in tests/e2e/test_observability_metrics.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
PROVISIONING = GRAFANA / "provisioning"

# Grafana's built-in interval variables, as a query sees them (the value only has to parse).
_GRAFANA_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def _load(name: str) -> ModuleType:
    """A sibling test module (test modules are not importable by name with pytest's
    `--import-mode=importlib`); tests/e2e/test_observability_metrics.py loads these too."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"taskgate_deploy_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_rules = _load("test_prometheus_rules")
metric_names: Callable[[str], set[str]] = _rules.metric_names


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) of every query."""
    return [
        (name, panel["title"], target["expr"])
        for name, dashboard in dashboards().items()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def as_promql(query: str) -> str:
    """The query with Grafana's variables replaced by values of their kind."""

    def value(match: re.Match[str]) -> str:
        assert match.group(1) in _GRAFANA_VARIABLES, f"unknown variable ${match.group(1)}"
        return _GRAFANA_VARIABLES[match.group(1)]

    return _VARIABLE.sub(value, query)


def recorded_names() -> set[str]:
    return {rule["record"] for rule in _rules.all_rules() if "record" in rule}


def raw_metric_names() -> set[str]:
    """Every metric name the rules and dashboards read, recording rules resolved to what they
    read: each must be exposed by a service or Traefik (or be Prometheus' own `up`/`ALERTS`)."""
    recorded = recorded_names()
    expressions = [rule["expr"] for rule in _rules.all_rules()]
    expressions += [as_promql(query) for _, _, query in queries()]
    return {name for expr in expressions for name in metric_names(expr)} - recorded


def datasource_uid() -> str:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = config["datasources"]
    uid: str = source["uid"]
    return uid


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def test_the_four_dashboards_exist_with_unique_uids() -> None:
    boards = dashboards()
    assert set(boards) == {"overview.json", "auth.json", "tasks.json", "gateway.json"}
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        assert board["title"], name
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), f"{name}: panel ids repeat"


def test_every_panel_queries_the_provisioned_prometheus() -> None:
    uid = datasource_uid()
    for name, board in dashboards().items():
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid, panel["title"]
                assert target["expr"].strip(), panel["title"]


def test_every_query_parses() -> None:
    """promtool has no "parse this expression" command: each query becomes a recording rule
    of a throwaway rules file (rule N of group "queries"), which `promtool check rules` parses."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
    found = queries()
    assert found
    rules = [{"record": "dashboard_query", "expr": as_promql(query)} for _, _, query in found]
    result = subprocess.run(
        [promtool, "check", "rules", "/dev/stdin"],
        input=yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}),
        capture_output=True,
        text=True,
        check=False,
    )
    numbered = "\n".join(
        f"rule {n}: {name} ({title})" for n, (name, title, _) in enumerate(found, 1)
    )
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{numbered}"


def test_a_broken_query_is_refused() -> None:
    """The check above would notice: promtool refuses an expression that does not parse."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
    rules = {"groups": [{"name": "q", "rules": [{"record": "q", "expr": "sum(rate(x[5m])"}]}]}
    result = subprocess.run(
        [promtool, "check", "rules", "/dev/stdin"],
        input=yaml.safe_dump(rules),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0


def test_recorded_series_the_dashboards_read_are_recorded() -> None:
    """A name with a colon is a recording rule by convention: it must be one of ours."""
    recorded = recorded_names()
    for name, title, query in queries():
        for metric in metric_names(as_promql(query)):
            if ":" in metric:
                assert metric in recorded, f"{name} ({title}) reads {metric}, recorded nowhere"


def test_the_dashboards_read_the_series_the_issue_asks_for() -> None:
    read: dict[str, set[str]] = {file: set() for file in dashboards()}
    for name, _, query in queries():
        read[name] |= metric_names(as_promql(query))
    assert {"job:http_requests:rate5m", "job:http_request_errors:ratio_rate5m"} <= read[
        "overview.json"
    ]
    assert "job_handler:http_request_duration_seconds:quantile_rate5m" in read["overview.json"]
    assert {
        "auth_logins_total",
        "auth_login_lockouts_total",
        "auth_refreshes_total",
        "auth_signing_key_timestamp_seconds",
    } <= read["auth.json"]
    assert {"tasks_tasks_created_total", "tasks_tasks_updated_total"} <= read["tasks.json"]
    assert "traefik_router_requests_total" in read["gateway.json"]


def test_grafana_is_provisioned_in_compose(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    # A variable whose default pins a version and a digest (docs/operations.md, "Images").
    pinned = r"\$\{GRAFANA_IMAGE:-grafana/grafana:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}\}"
    assert re.fullmatch(pinned, grafana["image"]), "pin a version and its digest"
    assert grafana["ports"]
    assert all(str(p).startswith("127.0.0.1:") for p in grafana["ports"])
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert set(grafana["networks"]) & set(compose["services"]["prometheus"]["networks"])
    # The data source is the Compose Prometheus, by service name and port.
    source = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    # Provisioning and dashboards are mounted where the provider looks.
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in grafana["volumes"] if ":ro" in volume)
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "taskgate.yml").read_text())
    assert mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]


def test_the_grafana_admin_password_is_a_secret(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    env = grafana["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env  # never a value in the repository
    secret = env["GF_SECURITY_ADMIN_PASSWORD__FILE"].removeprefix("/run/secrets/")
    assert secret in grafana["secrets"]
    assert compose["secrets"][secret]["file"].startswith("${")  # a path the operator chooses
