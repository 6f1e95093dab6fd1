"""Traces: one request through the gateway is one connected trace.

A stack of its own with tracing on sends every span to an OTLP/HTTP receiver in this test
(what a collector's `/v1/traces` does: protobuf bodies, decoded with `opentelemetry-proto`).
Traefik's span must be the parent of the service's server span, and the service's database
statement a child of that; the service's access-log line names the same trace and span.
Off by default: the checked-in static file has no tracing, and nothing is installed without
an endpoint.
"""

from __future__ import annotations

import gzip
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e_support import new_account, temporary_stack
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from taskgate_common.tracing import install_tracing, traces_endpoint
from taskgate_devstack.gateway import add_tracing, render_static_config, tracing_section
from taskgate_devstack.stack import REPO_ROOT, DevStack

SERVER = Span.SpanKind.SPAN_KIND_SERVER
CLIENT = Span.SpanKind.SPAN_KIND_CLIENT


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a trace's root
    name: str
    kind: int
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    if field == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, field) if field else None


class OtlpReceiver:
    """A collector's OTLP/HTTP trace endpoint on loopback, keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self._body()
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.add(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def _body(self) -> bytes:
                """Traefik's exporter (Go) sends its gzip bodies chunked."""
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline().strip():  # trailers, up to the blank line
                    pass
                return b"".join(parts)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name", "")),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self._lock:
            self.spans.extend(received)

    def wait_for(
        self, found: Callable[[list[ReceivedSpan]], bool], timeout: float = 30.0
    ) -> list[ReceivedSpan]:
        """Every span received, once `found` holds of them (exports come in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if found(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.1)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as started:
        yield started


@pytest.fixture(scope="module")
def traced_stack(receiver: OtlpReceiver) -> Iterator[DevStack]:
    """The dev stack with the services' and the gateway's tracing on, as an operator turns it
    on: the collector's base URL in the standard variable (batches sent every 100 ms)."""
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with temporary_stack(
        {"auth": dict(otel), "tasks": dict(otel)},
        prefix="taskgate-e2e-tracing-",
        gateway_env=dict(otel),
    ) as stack:
        yield stack


@pytest.fixture
async def traced_gateway(traced_stack: DevStack) -> AsyncIterator[httpx.AsyncClient]:
    url = f"http://localhost:{traced_stack.config.ports['gateway']}"
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        yield client


def _trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.trace_id == trace_id]


def _server_span(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan | None:
    return next(
        (s for s in spans if s.service == service and s.kind == SERVER and s.name == name), None
    )


def _db_children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [
        s
        for s in spans
        if s.parent_span_id == parent.span_id
        and s.kind == CLIENT
        and s.attributes.get("db.system") == "postgresql"
    ]


def _access_log_line(stack: DevStack, service: str, request_id: str) -> dict[str, Any]:
    path = stack.data_dir / "logs" / f"{service}.log"
    for line in path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        entry: dict[str, Any] = json.loads(line)
        if entry.get("logger") == "taskgate.access" and entry.get("request_id") == request_id:
            return entry
    raise AssertionError(f"no access-log line for {request_id} in {path}")


def _complete(spans: list[ReceivedSpan], service: str, route: str) -> bool:
    """The service's span, its parent and its statements have all arrived."""
    server = _server_span(spans, service, route)
    return (
        server is not None
        and any(span.span_id == server.parent_span_id for span in spans)
        and bool(_db_children(spans, server))
    )


def _assert_connected(
    spans: list[ReceivedSpan], service: str, route: str
) -> tuple[ReceivedSpan, ReceivedSpan]:
    """Gateway span → the service's server span → its database statements, one trace id."""
    server = _server_span(spans, service, route)
    assert server is not None, f"no {route} server span from {service}: {spans}"
    in_trace = _trace(spans, server.trace_id)
    by_id = {span.span_id: span for span in in_trace}
    parent = by_id.get(server.parent_span_id)
    assert parent is not None, f"the {route} span's parent was not exported: {in_trace}"
    assert parent.service == "taskgate-gateway", parent
    # Traefik's own spans lead up to its entry point: the trace is whole.
    root = parent
    while root.parent_span_id in by_id:
        root = by_id[root.parent_span_id]
    assert root.service == "taskgate-gateway"
    db = _db_children(in_trace, server)
    assert db, f"no database span under {route}: {in_trace}"
    assert all(span.service == server.service for span in db)
    return server, parent


async def test_a_request_through_the_gateway_is_one_connected_trace(
    traced_gateway: httpx.AsyncClient, traced_stack: DevStack, receiver: OtlpReceiver
) -> None:
    account = await new_account(traced_gateway)
    request_id = f"trace-{secrets.token_hex(8)}"
    response = await traced_gateway.get(
        "/api/tasks?limit=7", headers={**account.headers, "X-Request-ID": request_id}
    )
    assert response.status_code == 200, response.text

    spans = receiver.wait_for(lambda spans: _complete(spans, "taskgate-tasks", "GET /api/tasks"))
    server, gateway_span = _assert_connected(spans, "taskgate-tasks", "GET /api/tasks")
    # Traefik recorded the request ID too: the trace and the logs name each other.
    gateway_headers = [
        span.attributes.get("http.request.header.x-request-id")
        for span in _trace(spans, server.trace_id)
        if span.service == "taskgate-gateway"
    ]
    assert [request_id] in gateway_headers, gateway_headers

    # Query values stay out of the service's span (Traefik redacts its own).
    assert server.attributes["http.target"] == "/api/tasks", server.attributes
    assert not [value for value in server.attributes.values() if "limit=" in str(value)]

    line = _access_log_line(traced_stack, "tasks", request_id)
    assert (line["trace_id"], line["span_id"]) == (server.trace_id, server.span_id)
    assert gateway_span.trace_id == server.trace_id


async def test_the_gateway_continues_a_callers_traceparent(
    traced_gateway: httpx.AsyncClient, receiver: OtlpReceiver
) -> None:
    """A caller's W3C context runs through Traefik and auth (its ORM statements included)."""
    account = await new_account(traced_gateway)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    response = await traced_gateway.post(
        "/auth/login",
        json={"username": account.username, "password": account.password},
        headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
    )
    assert response.status_code == 200, response.text

    spans = _trace(
        receiver.wait_for(
            lambda spans: _complete(_trace(spans, trace_id), "taskgate-auth", "POST /auth/login")
        ),
        trace_id,
    )
    _assert_connected(spans, "taskgate-auth", "POST /auth/login")
    gateway_roots = [s for s in spans if s.service == "taskgate-gateway"]
    assert any(s.parent_span_id == caller_span for s in gateway_roots), gateway_roots


# Off by default, and the gateway follows the services' rules.

ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": ""},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
    {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/custom/path"},
    {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/v1/traces",
    },
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"},
]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_gateway_and_services_read_the_same_endpoint(env: dict[str, str]) -> None:
    section = tracing_section(env)
    gateway = section["otlp"]["http"]["endpoint"] if section else None
    assert gateway == traces_endpoint(env)


def test_endpoint_rules() -> None:
    assert traces_endpoint({}) is None
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "http://c:4318/v1/traces"
    )
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/x"}) == "http://c/x"


def test_the_rendered_tracing_section_matches_traefiks_schema() -> None:
    """The e2e stack proves Traefik loads it; this pins every key to Traefik v3's schema."""
    jsonschema = pytest.importorskip("jsonschema")
    schema_file = REPO_ROOT.parent / "shared" / "schemas" / "traefik-v3.json"
    if not schema_file.exists():
        pytest.skip(f"{schema_file} is not beside this checkout")
    ports = {"gateway": 8080, "gateway_ping": 8081, "gateway_metrics": 8082}
    gateway = REPO_ROOT / "gateway"
    config = render_static_config(gateway / "traefik.yml", gateway / "dynamic", ports, None)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_SAMPLER_ARG": "0.2"}
    assert add_tracing(config, env)
    assert config["tracing"]["sampleRate"] == 0.2
    jsonschema.validate(config, json.loads(schema_file.read_text()))


def test_tracing_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    static: dict[str, Any] = yaml.safe_load(Path(REPO_ROOT / "gateway" / "traefik.yml").read_text())
    assert "tracing" not in static
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    app = FastAPI()
    assert install_tracing(app, service="test", version="0") is False
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
