"""Generate the Kubernetes form of the gateway from gateway/: one routing truth for every deploy.

    uv run python deploy/kubernetes/generate_traefik_crds.py          # write the files
    uv run python deploy/kubernetes/generate_traefik_crds.py --check  # exit 1 when stale

Writes, under deploy/kubernetes/base/gateway/generated/:

- routing.yaml: one traefik.io/v1alpha1 `Middleware` per middleware and one `IngressRoute` per
  router of gateway/dynamic/taskgate.yml (same names, rules, priorities, entry points and
  middleware chains). The file's Go templating is evaluated with the Kubernetes values below:
  the edge limits keep their defaults and count in the `redis` Service.
- traefik-static.patch.yaml: the Traefik container's arguments, gateway/traefik.yml flattened
  to `--key=value` flags with the file provider swapped for the Kubernetes CRD provider (flags,
  not a mounted file, so the provider can watch `$(POD_NAMESPACE)`, whatever the namespace is).
- plugin-configmap.yaml: the json-errors local plugin's source as a ConfigMap, mounted at
  /plugins-local/src/github.com/taskgate/jsonerrors (kustomize cannot read files outside
  deploy/kubernetes/, so the source is copied; a checksum on the pod template rolls Traefik
  when it changes, since plugins are loaded only at start).

Only the template constructs the gateway files use are understood; anything else, and any
router, service or middleware option without a Kubernetes equivalent here, stops the script
rather than being dropped silently.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DYNAMIC = ROOT / "gateway" / "dynamic" / "taskgate.yml"
STATIC = ROOT / "gateway" / "traefik.yml"
PLUGIN_DIR = ROOT / "gateway" / "plugins-local" / "src" / "github.com" / "taskgate" / "jsonerrors"
OUT = Path(__file__).resolve().parent / "base" / "gateway" / "generated"

# What the file provider reads from the environment, as it is in the cluster. The CORS origins
# are filled in by kustomize from the `taskgate-settings` ConfigMap (a replacement in each
# kustomization), so that one setting feeds the services and the gateway as in Compose.
TEMPLATE_ENV = {
    "TASKGATE_RATE_LIMIT_REDIS": "redis:6379",
    "TASKGATE_CORS_ORIGINS": "",
    # Not used (SERVICES below replaces the upstreams), only for the file to render.
    "TASKGATE_AUTH_URL": "http://auth:8000",
    "TASKGATE_TASKS_URL": "http://tasks:8000",
}
# File-provider service -> the Kubernetes Service and port the IngressRoutes send to. The
# file's active health check (`/health/ready`) becomes the pods' readiness probe: Traefik only
# sends to endpoints Kubernetes reports ready.
SERVICES = {"auth": ("auth", 8000), "tasks": ("tasks", 8000)}
ROUTER_KEYS = {"entryPoints", "rule", "priority", "service", "middlewares"}
LOAD_BALANCER_KEYS = {"servers", "healthCheck"}
# Middleware types whose file-provider options are the CRD's options, key for key.
MIDDLEWARE_TYPES = {
    "plugin",
    "headers",
    "rateLimit",
    "retry",
    "buffering",
    "compress",
    "replacePath",
    "inFlightReq",
}
# The CRD's Redis options reference Secrets instead of carrying credentials inline.
REDIS_KEYS = {"endpoints", "dialTimeout", "readTimeout", "writeTimeout", "db", "poolSize"}
# Static flags only Kubernetes needs; the test that compares the static configurations
# Traefik loads from both forms lists the same differences.
KUBERNETES_ARGS = [
    # Routing from IngressRoute/Middleware resources in the pod's own namespace only, so the
    # ServiceAccount needs a Role, not a ClusterRole.
    "--providers.kubernetesCRD.namespaces=$(POD_NAMESPACE)",
    "--providers.kubernetesCRD.allowCrossNamespace=false",
    "--providers.kubernetesCRD.disableClusterScopeResources=true",
    # With no ready pod, answer 503 (JSON, `service_unavailable`) as the file provider's
    # health check does, instead of dropping the router (a 404 from the not-found router).
    "--providers.kubernetesCRD.allowEmptyServices=true",
    # Graceful rollouts: on SIGTERM /ping answers 503 at once (Traefik's default), so the
    # pod leaves the Service's endpoints, while the entry point keeps accepting requests for
    # 5 s as that change propagates to the load balancer and kube-proxy.
    "--entryPoints.web.transport.lifeCycle.requestAcceptGraceTimeout=5s",
]

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
_WORD = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\$\w+|\w+|[()|])')
_RANGE = re.compile(r"^range\s+(\$\w+)\s*:=\s*(.+)$", re.DOTALL)

Value = str | list[str]


class GenerationError(Exception):
    """The gateway files use something this generator does not translate."""


@dataclass(frozen=True)
class _Function:
    name: str


def _words(expression: str) -> list[str]:
    words, position = [], 0
    while position < len(expression.rstrip()):
        match = _WORD.match(expression, position)
        if match is None:
            raise GenerationError(f"cannot read template expression {expression!r}")
        words.append(match.group(1))
        position = match.end()
    return words


def _pipeline(words: list[str], scope: dict[str, Value], env: dict[str, str]) -> Value:
    """`cmd args | cmd args …`: each command gets the previous result as its last argument."""
    commands: list[list[Value | _Function]] = [[]]
    position = 0
    while position < len(words):
        word = words[position]
        if word == "|":
            commands.append([])
        elif word == "(":
            depth, end = 1, position
            while depth:
                end += 1
                if end == len(words):
                    raise GenerationError("unbalanced ( in a template expression")
                depth += {"(": 1, ")": -1}.get(words[end], 0)
            commands[-1].append(_pipeline(words[position + 1 : end], scope, env))
            position = end
        elif word.startswith('"'):
            commands[-1].append(json.loads(word))
        elif word.startswith("$"):
            if word not in scope:
                raise GenerationError(f"undefined template variable {word}")
            commands[-1].append(scope[word])
        else:
            commands[-1].append(_Function(word))
        position += 1
    result: Value | None = None
    for command in commands:
        if not command:
            raise GenerationError("empty command in a template expression")
        head, arguments = command[0], command[1:] + ([result] if result is not None else [])
        if not isinstance(head, _Function):
            if arguments:  # a value takes no arguments
                raise GenerationError(f"cannot call {head!r}")
            result = head
            continue
        values = [a for a in arguments if not isinstance(a, _Function)]
        if len(values) != len(arguments):
            raise GenerationError(f"{head.name}: a function as an argument")
        result = _call(head.name, values, env)
    assert result is not None
    return result


def _call(name: str, arguments: list[Value], env: dict[str, str]) -> Value:
    """The few functions the gateway files use (sprig's meaning), each with its arity."""
    text = [a for a in arguments if isinstance(a, str)]
    if name == "default" and len(arguments) == 2:
        return arguments[1] or arguments[0]
    if len(text) != len(arguments):
        raise GenerationError(f"{name}: a list where text is expected")
    if name == "env" and len(text) == 1:
        return env.get(text[0], "")
    if name == "splitList" and len(text) == 2:
        return text[1].split(text[0])
    if name == "trim" and len(text) == 1:
        return text[0].strip()
    raise GenerationError(f"unsupported template call {name} with {len(arguments)} argument(s)")


def _tokens(text: str) -> list[tuple[str, str]]:
    """Text and actions in order, with `{{-` / `-}}` whitespace trimming applied."""
    tokens: list[tuple[str, str]] = []
    position, trim_next = 0, False
    for match in _ACTION.finditer(text):
        chunk = text[position : match.start()]
        if trim_next:
            chunk = chunk.lstrip()
        if match.group(1):
            chunk = chunk.rstrip()
        tokens += [("text", chunk), ("action", match.group(2))]
        position, trim_next = match.end(), bool(match.group(3))
    tail = text[position:]
    tokens.append(("text", tail.lstrip() if trim_next else tail))
    return tokens


def _render(
    tokens: list[tuple[str, str]], start: int, scope: dict[str, Value], env: dict[str, str]
) -> tuple[str, int]:
    """Render from `start` up to its `{{ end }}` (or the end); also where that was."""
    out: list[str] = []
    position = start
    while position < len(tokens):
        kind, value = tokens[position]
        position += 1
        if kind == "text":
            out.append(value)
        elif value == "end":
            if start == 0:
                raise GenerationError("{{ end }} without {{ if }} or {{ range }}")
            return "".join(out), position
        elif value.startswith("if "):
            condition = _pipeline(_words(value[3:]), scope, env)
            body, position = _render(tokens, position, scope, env)
            out.append(body if condition else "")
        elif match := _RANGE.match(value):
            items = _pipeline(_words(match.group(2)), scope, env)
            if not isinstance(items, list):
                raise GenerationError(f"range over text: {value}")
            body_start = position
            position = _render(tokens, body_start, scope | {match.group(1): ""}, env)[1]
            for item in items:
                out.append(_render(tokens, body_start, scope | {match.group(1): item}, env)[0])
        else:
            result = _pipeline(_words(value), scope, env)
            if not isinstance(result, str):
                raise GenerationError(f"a list where text is expected: {value}")
            out.append(result)
    if start != 0:
        raise GenerationError("{{ if }} or {{ range }} without {{ end }}")
    return "".join(out), position


def render_template(text: str, env: dict[str, str]) -> str:
    """Evaluate the Go-template subset the gateway files use: `{{ env "X" }}`, pipelines with
    `default`, `splitList` and `trim`, `{{ if }}`, `{{ range $v := … }}`, `{{-`/`-}}`."""
    return _render(_tokens(text), 0, {}, env)[0]


def load_dynamic(env: dict[str, str] = TEMPLATE_ENV) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(render_template(DYNAMIC.read_text(), env))
    return data


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/part-of": "taskgate", "app.kubernetes.io/component": "gateway"}


def middleware_resources(middlewares: dict[str, Any]) -> list[dict[str, Any]]:
    resources = []
    for name, config in middlewares.items():
        if len(config) != 1 or next(iter(config)) not in MIDDLEWARE_TYPES:
            raise GenerationError(f"middleware {name}: no Kubernetes translation for {config}")
        redis = config.get("rateLimit", {}).get("redis")
        if redis is not None and set(redis) - REDIS_KEYS:
            raise GenerationError(f"middleware {name}: Redis options {set(redis) - REDIS_KEYS}")
        resources.append(
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "Middleware",
                "metadata": {
                    "name": name,
                    "labels": _labels(),
                    "annotations": {"taskgate/source": f"{_rel(DYNAMIC)} http.middlewares.{name}"},
                },
                "spec": config,
            }
        )
    return resources


def ingress_route_resources(http: dict[str, Any]) -> list[dict[str, Any]]:
    for name, service in http["services"].items():
        if name not in SERVICES:
            raise GenerationError(f"service {name}: no Kubernetes Service mapped")
        if set(service) != {"loadBalancer"} or set(service["loadBalancer"]) - LOAD_BALANCER_KEYS:
            raise GenerationError(f"service {name}: options without a translation: {service}")
    resources = []
    for name, router in http["routers"].items():
        if set(router) - ROUTER_KEYS:
            raise GenerationError(f"router {name}: options {set(router) - ROUTER_KEYS}")
        service_name, port = SERVICES[router["service"]]
        route: dict[str, Any] = {"kind": "Rule", "match": router["rule"]}
        if "priority" in router:
            route["priority"] = router["priority"]
        route["middlewares"] = [{"name": m} for m in router.get("middlewares", [])]
        route["services"] = [{"name": service_name, "port": port}]
        resources.append(
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "IngressRoute",
                "metadata": {
                    "name": name,
                    "labels": _labels(),
                    "annotations": {"taskgate/source": f"{_rel(DYNAMIC)} http.routers.{name}"},
                },
                "spec": {"entryPoints": router["entryPoints"], "routes": [route]},
            }
        )
    return resources


def _flatten(prefix: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        if not value:
            return [f"--{prefix}=true"]
        return [arg for key, item in value.items() for arg in _flatten(f"{prefix}.{key}", item)]
    if isinstance(value, list):
        if not all(isinstance(item, str | int) for item in value):
            raise GenerationError(f"{prefix}: only lists of scalars become flags")
        # An empty list is Traefik's default (nil); a flag cannot say "empty" anyway.
        return [f"--{prefix}={','.join(str(item) for item in value)}"] if value else []
    if isinstance(value, bool):
        return [f"--{prefix}={'true' if value else 'false'}"]
    text = str(value)
    if "$" in text:
        raise GenerationError(f"{prefix}: '$' would be expanded by Kubernetes in args")
    return [f"--{prefix}={text}"]


def static_args() -> list[str]:
    static: dict[str, Any] = yaml.safe_load(STATIC.read_text())
    providers = static.pop("providers", {})
    if set(providers) != {"file"}:
        raise GenerationError(f"providers other than file in {_rel(STATIC)}: {set(providers)}")
    args = [arg for key, value in static.items() for arg in _flatten(key, value)]
    return args + KUBERNETES_ARGS


def plugin_files() -> dict[str, str]:
    files = sorted(p for p in PLUGIN_DIR.iterdir() if p.is_file())
    return {p.name: p.read_text() for p in files}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _dump(header: str, documents: list[dict[str, Any]]) -> str:
    body = yaml.safe_dump_all(documents, sort_keys=False, width=100, allow_unicode=True)
    return header + body


def _literal(key: str, text: str) -> str:
    """`key: |` and the text as a YAML literal block, tabs kept (PyYAML would quote it)."""
    chomp = "+" if text.endswith("\n\n") else ("" if text.endswith("\n") else "-")
    indent = "2" if text[:1] == " " else ""
    lines = "".join(
        f"    {line}" if line != "\n" else line for line in text.splitlines(keepends=True)
    )
    return f"  {key}: |{indent}{chomp}\n{lines}" + ("" if text.endswith("\n") else "\n")


def _configmap(header: str, metadata: dict[str, Any], files: dict[str, str]) -> str:
    head = _dump(header, [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}])
    text = head + "data:\n" + "".join(_literal(k, v) for k, v in files.items())
    if yaml.safe_load(text)["data"] != files:  # a file YAML cannot hold as written
        raise GenerationError("the plugin source does not survive the YAML round trip")
    return text


def render() -> dict[Path, str]:
    """Every generated file and its content."""
    http = load_dynamic()["http"]
    header = (
        "# GENERATED by deploy/kubernetes/generate_traefik_crds.py from {source}: do not edit.\n"
        "# Change the source and run the script; tests/deploy/test_kubernetes.py fails when\n"
        "# this file is stale.\n"
    )
    routing = middleware_resources(http["middlewares"]) + ingress_route_resources(http)
    files = plugin_files()
    args = static_args()
    digest = hashlib.sha256()
    for name, content in files.items():
        digest.update(name.encode() + b"\0" + content.encode() + b"\0")
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "traefik"},
        "spec": {
            "template": {
                "metadata": {"annotations": {"taskgate/plugin-sha256": digest.hexdigest()}},
                "spec": {"containers": [{"name": "traefik", "args": args}]},
            }
        },
    }
    plugin_source = _rel(PLUGIN_DIR)
    return {
        OUT / "routing.yaml": _dump(header.format(source=_rel(DYNAMIC)), routing),
        OUT / "traefik-static.patch.yaml": _dump(header.format(source=_rel(STATIC)), [patch]),
        OUT / "plugin-configmap.yaml": _configmap(
            header.format(source=plugin_source),
            {"name": "traefik-plugin-jsonerrors", "labels": _labels()},
            files,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    try:
        wanted = render()
    except GenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {_rel(path)} (run {_rel(Path(__file__))})", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {_rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
