"""The Compose deploy and gateway files, checked without Docker (none on these machines).

Traefik itself loads the same gateway files in the end-to-end tests; here we check the
structure Compose needs and what the public schemas can tell.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT.parent / "shared" / "schemas"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def _default_services(compose: dict[str, Any]) -> set[str]:
    """What `docker compose up` starts: services outside every profile."""
    return {name for name, service in compose["services"].items() if not service.get("profiles")}


def _image(service: dict[str, Any]) -> str:
    """The default of the service's `${NAME_IMAGE:-reference}` (each image is a variable)."""
    match = re.fullmatch(r"\$\{[A-Z]+_IMAGE:-([^}]+)\}", service["image"])
    assert match, service["image"]
    return match.group(1)


# One-shot: copies the secrets into volumes with their consumers' owners, then exits.
ONE_SHOT = {"init"}


def test_compose_has_every_part(compose: dict[str, Any]) -> None:
    assert _default_services(compose) == {
        "init",
        "gateway-upstreams",
        "traefik",
        "auth",
        "auth-db",
        "tasks",
        "tasks-db",
        "redis",
        "prometheus",
        "grafana",
        "web",
    }
    assert set(compose["services"]) - _default_services(compose) == {"mailpit"}
    assert _image(compose["services"]["traefik"]).startswith("traefik:v3.")
    for db in ("auth-db", "tasks-db"):
        assert re.fullmatch(
            r"postgres:17\.\d+-bookworm@sha256:[0-9a-f]{64}", _image(compose["services"][db])
        )


def test_images_are_pinned_by_tag_and_digest(compose: dict[str, Any]) -> None:
    """Exact tags; a digest wherever one could be checked against two independent sources
    (docs/operations.md, "Images"). The services' base image likewise, in both places."""
    for name in ("redis", "auth-db", "tasks-db", "prometheus", "grafana"):
        assert re.search(
            r":[\w.-]*\d+\.\d+[\w.-]*@sha256:[0-9a-f]{64}$", _image(compose["services"][name])
        ), name
    assert re.fullmatch(r"traefik:v3\.\d+\.\d+", _image(compose["services"]["traefik"]))
    for service in ("auth", "tasks"):
        arg = compose["services"][service]["build"]["args"]["PYTHON_IMAGE"]
        dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
        assert (
            f"ARG PYTHON_IMAGE={arg.removeprefix('${PYTHON_IMAGE:-').removesuffix('}')}\n"
            in dockerfile
        )
        assert "@sha256:" in arg


def test_every_long_running_service_is_hardened(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            assert service["cap_drop"] == ["ALL"]
            assert set(service["cap_add"]) == {"CHOWN", "DAC_OVERRIDE", "FOWNER"}
            assert service["network_mode"] == "none"
            continue
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "cap_add" not in service, name
        assert "no-new-privileges:true" in service["security_opt"], name
        for limit in ("mem_limit", "cpus", "pids_limit"):
            assert service[limit], (name, limit)
        assert service["logging"]["options"]["max-size"], name
        assert service.get("user", "") not in ("0", "root", "0:0"), name


def test_no_subnet_is_pinned(compose: dict[str, Any]) -> None:
    """Pinned subnets collided with Docker's address pools (issue 21)."""
    for name, network in compose["networks"].items():
        assert not (network or {}).get("ipam"), name


def test_every_service_has_a_healthcheck_and_restart_policy(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name
    assert compose["services"]["traefik"]["healthcheck"]["test"][:3] == [
        "CMD",
        "traefik",
        "healthcheck",
    ]
    assert "--ping" in compose["services"]["traefik"]["healthcheck"]["test"]
    for db in ("auth-db", "tasks-db"):
        assert "pg_isready -h 127.0.0.1" in compose["services"][db]["healthcheck"]["test"][1]


def test_only_the_gateway_is_published(compose: dict[str, Any]) -> None:
    published = {name: s.get("ports", []) for name, s in compose["services"].items()}
    assert published["traefik"]
    for local_only in ("prometheus", "mailpit"):
        assert all(str(p).startswith("127.0.0.1:") for p in published[local_only]), local_only
    for name in ("auth", "auth-db", "tasks", "tasks-db", "redis"):
        assert not published[name], f"{name} must not be published"
    assert compose["networks"]["auth-internal"]["internal"] is True
    assert compose["networks"]["tasks-internal"]["internal"] is True
    assert compose["networks"]["ratelimit-internal"]["internal"] is True


def test_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["auth"]["depends_on"]["auth-db"]["condition"] == "service_healthy"
    assert services["tasks"]["depends_on"]["tasks-db"]["condition"] == "service_healthy"
    for upstream in ("auth", "tasks"):
        assert services["traefik"]["depends_on"][upstream]["condition"] == "service_healthy"


def test_the_key_and_the_passwords_are_secret_files(compose: dict[str, Any]) -> None:
    """Files copied by `init` into each consumer's volume, owned by its user; no password in
    any environment variable (`docker inspect` shows those)."""
    services = compose["services"]
    assert set(services["init"]["secrets"]) == {
        "auth_signing_key",
        "auth_db_password",
        "tasks_db_password",
    }
    for name in ("auth_signing_key", "auth_db_password", "tasks_db_password"):
        assert compose["secrets"][name]["file"].startswith("${")  # a path the operator chooses
    for name, volume in (
        ("auth", "auth-secrets"),
        ("tasks", "tasks-secrets"),
        ("auth-db", "auth-db-secrets"),
        ("tasks-db", "tasks-db-secrets"),
    ):
        assert f"{volume}:/run/secrets:ro" in services[name]["volumes"], name
        assert "secrets" not in services[name], name  # a bind mount keeps the host's owner
    auth, tasks = services["auth"]["environment"], services["tasks"]["environment"]
    assert auth["AUTH_SIGNING_KEY_FILE"] == "/run/secrets/auth_signing_key"
    assert auth["AUTH_DATABASE_PASSWORD_FILE"] == "/run/secrets/auth_db_password"
    assert tasks["TASKS_DATABASE_PASSWORD_FILE"] == "/run/secrets/tasks_db_password"
    for url in (auth["AUTH_DATABASE_URL"], tasks["TASKS_DATABASE_URL"]):
        assert re.fullmatch(r"postgresql\+asyncpg://taskgate_\w+@[\w-]+:5432/\w+", url), url
    for db in ("auth-db", "tasks-db"):
        env = services[db]["environment"]
        assert "POSTGRES_PASSWORD" not in env
        assert env["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    text = (ROOT / "compose.yaml").read_text()
    assert "BEGIN" not in text  # no key material inline
    assert "DB_PASSWORD}" not in text
    assert "DB_PASSWORD:" not in text


def test_the_gateway_mounts_the_same_files_make_dev_uses(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["traefik"]["volumes"]
    assert "./gateway/traefik.yml:/etc/traefik/traefik.yml:ro" in volumes
    # gateway/dynamic, with every replica's address written in by gateway-upstreams.
    assert "gateway-dynamic:/etc/traefik/dynamic:ro" in volumes
    upstreams = compose["services"]["gateway-upstreams"]
    assert "./gateway/dynamic:/etc/taskgate/gateway-dynamic:ro" in upstreams["volumes"]
    assert "gateway-dynamic:/var/lib/gateway-dynamic" in upstreams["volumes"]
    assert compose["services"]["traefik"]["depends_on"]["gateway-upstreams"] == {
        "condition": "service_healthy"
    }
    # The upstream lists it rewrites are the ones taskgate.yml reads.
    dynamic = (ROOT / "gateway" / "dynamic" / "taskgate.yml").read_text()
    for variable in ("TASKGATE_AUTH_URL", "TASKGATE_TASKS_URL"):
        assert f'splitList "," (env "{variable}")' in dynamic
    devstack = (ROOT / "deploy" / "devstack.toml").read_text()
    assert 'static = "gateway/traefik.yml"' in devstack
    assert 'dynamic = "gateway/dynamic"' in devstack
    env = compose["services"]["traefik"]["environment"]
    assert env == {
        "TASKGATE_AUTH_URL": "http://auth:8000",
        "TASKGATE_TASKS_URL": "http://tasks:8000",
        "TASKGATE_CORS_ORIGINS": "${CORS_ORIGINS:-}",  # the services' origins (AUTH_/TASKS_)
        "TASKGATE_RATE_LIMIT_REDIS": "redis:6379",
        "TASKGATE_WEB_URL": "http://web:8080",  # the web app's static server (web.yml)
        # Traces, off while unset; the entrypoint writes Traefik's `tracing` section from them.
        "OTEL_EXPORTER_OTLP_ENDPOINT": "${OTEL_EXPORTER_OTLP_ENDPOINT:-}",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "${OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:-}",
        "OTEL_TRACES_SAMPLER_ARG": "${OTEL_TRACES_SAMPLER_ARG:-}",
    }
    for service in ("auth", "tasks"):
        cors = compose["services"][service]["environment"][f"{service.upper()}_CORS_ORIGINS"]
        assert cors == env["TASKGATE_CORS_ORIGINS"]


def test_database_volumes_are_named(compose: dict[str, Any]) -> None:
    for db, volume in (("auth-db", "auth-db-data"), ("tasks-db", "tasks-db-data")):
        assert f"{volume}:/var/lib/postgresql/data" in compose["services"][db]["volumes"]
        assert volume in compose["volumes"]


@pytest.mark.parametrize("service", ["auth", "tasks"])
def test_dockerfiles_are_multistage_non_root_with_healthcheck(service: str) -> None:
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2  # build stage + runtime stage
    assert re.search(r"^USER (?!root)\S+", text, re.MULTILINE)
    assert "HEALTHCHECK" in text
    assert "uv sync --frozen" in text
    assert "--forwarded-allow-ips" in text


_IF_ENV = re.compile(r'\{\{-?\s*if env "([A-Z_]+)"\s*-?\}\}(.*?)\{\{-?\s*end\s*-?\}\}', re.DOTALL)
_ENV_DEFAULT = re.compile(r'\{\{\s*env "([A-Z_]+)"\s*\|\s*default "([^"]*)"\s*\}\}')
_ENV = re.compile(r'\{\{\s*env "([A-Z_]+)"\s*\}\}')


def render_env_defaults(text: str, env: dict[str, str] | None = None) -> str:
    """What Traefik's Go templating makes of the constructs our files use, given `env`:
    `{{ env "X" | default "Y" }}`, `{{ env "X" }}` (only inside an `if`, else left as written)
    and `{{- if env "X" }} … {{- end }}` (kept only when X is set)."""
    env = env or {}

    def block(match: re.Match[str]) -> str:
        if not env.get(match.group(1)):
            return ""
        return _ENV.sub(lambda m: env.get(m.group(1), ""), match.group(2))

    text = _IF_ENV.sub(block, text)
    return _ENV_DEFAULT.sub(lambda m: env.get(m.group(1)) or m.group(2), text)


def _validate(document: Path, schema_name: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema_file = SCHEMAS / schema_name
    if not schema_file.exists():
        pytest.skip(f"{schema_file} is not beside this checkout")
    text = render_env_defaults(document.read_text())
    jsonschema.validate(yaml.safe_load(text), json.loads(schema_file.read_text()))


def test_compose_matches_the_compose_specification() -> None:
    _validate(ROOT / "compose.yaml", "compose-spec.json")


def test_traefik_static_config_matches_its_schema() -> None:
    _validate(ROOT / "gateway" / "traefik.yml", "traefik-v3.json")


def test_traefik_dynamic_config_matches_its_schema() -> None:
    _validate(ROOT / "gateway" / "dynamic" / "taskgate.yml", "traefik-v3-file-provider.json")


def test_prometheus_scrapes_the_gateway_and_both_services() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["traefik"]["static_configs"][0]["targets"] == ["traefik:8082"]
    # Every replica of a service: its name resolves to each container's address.
    for service in ("auth", "tasks"):
        (discovery,) = jobs[service]["dns_sd_configs"]
        assert discovery == {
            "names": [service],
            "type": "A",
            "port": 8000,
            "refresh_interval": "5s",
        }
    assert set(jobs) == {"traefik", "auth", "tasks"}
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    result = subprocess.run(
        [promtool, "check", "config", str(ROOT / "deploy" / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_mailpit_is_only_in_the_dev_profile(compose: dict[str, Any]) -> None:
    mailpit = compose["services"]["mailpit"]
    assert mailpit["profiles"] == ["dev"]
    assert _image(mailpit).startswith("axllent/mailpit:v1")
    assert mailpit["ports"] == ["127.0.0.1:${MAILPIT_UI_PORT:-8025}:8025"]  # the UI only
    # Reachable from auth (SMTP_HOST=mailpit) on a network they share.
    assert set(mailpit["networks"]) & set(compose["services"]["auth"]["networks"])
    # Nothing in the default set depends on it: a plain `up` never needs it.
    for name in _default_services(compose):
        assert "mailpit" not in compose["services"][name].get("depends_on", {}), name


def test_auth_smtp_settings_come_from_env(compose: dict[str, Any]) -> None:
    env = compose["services"]["auth"]["environment"]
    expected = {
        "AUTH_SMTP_HOST": "SMTP_HOST",
        "AUTH_SMTP_PORT": "SMTP_PORT",
        "AUTH_SMTP_SECURITY": "SMTP_SECURITY",
        "AUTH_SMTP_USERNAME": "SMTP_USERNAME",
        "AUTH_SMTP_PASSWORD": "SMTP_PASSWORD",
        "AUTH_SMTP_FROM": "SMTP_FROM",
        "AUTH_FRONTEND_URL": "FRONTEND_URL",
    }
    example = (ROOT / ".env.example").read_text()
    for setting, variable in expected.items():
        assert str(env[setting]).startswith(f"${{{variable}:-"), setting
        assert re.search(rf"^#? ?{variable}=", example, re.MULTILINE), f"{variable} not in example"
    # The dev profile's settings are spelled out for copying.
    assert "# SMTP_HOST=mailpit" in example
    assert "# SMTP_PORT=1025" in example


def test_the_dev_launcher_starts_an_smtp_sink_for_auth() -> None:
    devstack = tomllib.loads((ROOT / "deploy" / "devstack.toml").read_text())
    assert devstack["smtp"] == {"port": "smtp", "directory": "mail"}
    assert "smtp" in devstack["ports"]
    env = devstack["services"]["auth"]["env"]
    assert env["AUTH_SMTP_HOST"] == "127.0.0.1"
    assert env["AUTH_SMTP_PORT"] == "{port:smtp}"
    assert env["AUTH_SMTP_SECURITY"] == "none"


def test_compose_shares_one_redis_for_every_rate_limit(compose: dict[str, Any]) -> None:
    services = compose["services"]
    redis = services["redis"]
    assert _image(redis).startswith("redis:")
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "volumes" not in redis  # counters only: nothing to keep
    assert redis["networks"] == ["ratelimit-internal"]
    for name, prefix in (("auth", "AUTH"), ("tasks", "TASKS")):
        env = services[name]["environment"]
        assert env[f"{prefix}_RATE_LIMIT_STORAGE_URL"] == "redis://redis:6379/0"
        assert "ratelimit-internal" in services[name]["networks"]
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    # X-Forwarded-For is believed from the gateway's network only, by auth, the one service
    # that counts per client address (tasks counts per user and has no such setting).
    assert (
        services["auth"]["environment"]["AUTH_TRUSTED_PROXIES"]
        == "${TRUSTED_PROXY_NETWORKS:-10.0.0.0/8,172.16.0.0/12,192.168.0.0/16}"
    )
    assert "TASKS_TRUSTED_PROXIES" not in services["tasks"]["environment"]
    assert "ratelimit-internal" in services["traefik"]["networks"]
    assert services["traefik"]["depends_on"]["redis"]["condition"] == "service_healthy"


def _edge_limits(env: dict[str, str]) -> dict[str, Any]:
    text = (ROOT / "gateway" / "dynamic" / "taskgate.yml").read_text()
    middlewares: dict[str, Any] = yaml.safe_load(render_env_defaults(text, env))["http"][
        "middlewares"
    ]
    return {name: middlewares[name]["rateLimit"] for name in middlewares if "rate-limit" in name}


def test_edge_limits_count_in_memory_without_redis() -> None:
    limits = _edge_limits({})
    assert set(limits) == {"credential-rate-limit", "general-rate-limit", "preflight-rate-limit"}
    for limit in limits.values():
        assert "redis" not in limit


def test_edge_limits_count_in_redis_when_it_is_deployed() -> None:
    for limit in _edge_limits({"TASKGATE_RATE_LIMIT_REDIS": "redis:6379"}).values():
        assert limit["redis"]["endpoints"] == ["redis:6379"]
        assert limit["average"]
        assert limit["burst"]


def test_the_dev_stack_trusts_the_gateway_on_loopback() -> None:
    devstack = tomllib.loads((ROOT / "deploy" / "devstack.toml").read_text())
    assert devstack["services"]["auth"]["env"]["AUTH_TRUSTED_PROXIES"] == "127.0.0.1"
    assert "TASKS_TRUSTED_PROXIES" not in devstack["services"]["tasks"]["env"]  # never read


def test_every_router_renders_gateway_errors_as_json(compose: dict[str, Any]) -> None:
    """The json-errors local plugin is declared, present where Traefik looks for it (Compose:
    `/plugins-local` in the working directory `/`), and first on every router."""
    static = yaml.safe_load((ROOT / "gateway" / "traefik.yml").read_text())
    module = static["experimental"]["localPlugins"]["jsonerrors"]["moduleName"]
    source = ROOT / "gateway" / "plugins-local" / "src" / module
    manifest = yaml.safe_load((source / ".traefik.yml").read_text())
    assert manifest["type"] == "middleware"
    assert manifest["import"] == module
    assert (source / "go.mod").read_text().startswith(f"module {module}\n")
    package = module.rsplit("/", 1)[-1]
    assert f"package {package}\n" in (source / f"{package}.go").read_text()
    traefik = compose["services"]["traefik"]
    assert traefik["working_dir"] == "/"
    assert "./gateway/plugins-local:/plugins-local:ro" in traefik["volumes"]
    text = (ROOT / "gateway" / "dynamic" / "taskgate.yml").read_text()
    http = yaml.safe_load(render_env_defaults(text))["http"]
    assert http["middlewares"]["json-errors"] == {
        "plugin": {
            "jsonerrors": {
                "bodyLimit": "1 MiB",
                "allowedOrigins": '{{ env "TASKGATE_CORS_ORIGINS" }}',
            }
        }
    }
    assert http["middlewares"]["body-limit"]["buffering"]["maxRequestBodyBytes"] == 1024 * 1024
    for name, router in http["routers"].items():
        assert router["middlewares"][0] == "json-errors", name


def test_cors_preflights_have_routers_of_their_own_without_the_request_limits() -> None:
    """A preflight (OPTIONS with Access-Control-Request-Method) under /auth or /api is matched
    before every other router of its prefix, and its chain spends neither the credential nor
    the general bucket, only a flood guard of its own (tests/e2e/test_gateway_cors.py)."""
    text = (ROOT / "gateway" / "dynamic" / "taskgate.yml").read_text()
    routers: dict[str, Any] = yaml.safe_load(render_env_defaults(text))["http"]["routers"]
    preflight = "Method(`OPTIONS`) && HeaderRegexp(`Access-Control-Request-Method`, `.+`)"
    for name, prefix, service in (
        ("auth-preflight", "auth", "auth"),
        ("tasks-preflight", "api", "tasks"),
    ):
        router = routers[name]
        assert router["rule"] == f"(Path(`/{prefix}`) || PathPrefix(`/{prefix}/`)) && {preflight}"
        assert router["service"] == service
        assert router["middlewares"][:3] == [
            "json-errors",
            "security-headers",
            "preflight-rate-limit",
        ]
        others = [r for n, r in routers.items() if n != name and r["service"] == service]
        assert all(router["priority"] > other["priority"] for other in others), name
    for name, router in routers.items():
        if name.endswith("-preflight"):
            assert not {"credential-rate-limit", "general-rate-limit"} & set(router["middlewares"])
        else:
            assert "preflight-rate-limit" not in router["middlewares"], name
