"""A log line written inside a traced request names the request's trace and span.

The app is built as the service builds it, with `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` pointing
at a collector stand-in in this test (OTLP/HTTP, protobuf), so the IDs are compared with what
the exporter really sent; the caller's `traceparent` says which trace the request belongs to.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

import httpx
import pytest
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from tasks_factories import User

from taskgate_common.json_logs import JsonFormatter
from taskgate_common.tracing import tracer_provider
from tasks_service.core.config import Settings
from tasks_service.main import create_app

SERVER = Span.SpanKind.SPAN_KIND_SERVER
CLIENT = Span.SpanKind.SPAN_KIND_CLIENT


class Exported(NamedTuple):
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int


class Collector:
    """Keeps every span POSTed to its `/v1/traces`."""

    def __init__(self) -> None:
        self.spans: list[Exported] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(
                            Exported(
                                s.trace_id.hex(),
                                s.span_id.hex(),
                                s.parent_span_id.hex(),
                                s.name,
                                s.kind,
                            )
                            for s in scope.spans
                        )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        host, port = self.server.server_address[:2]
        self.url = f"http://{host!s}:{port}/v1/traces"


@pytest.fixture
def collector() -> Iterator[Collector]:
    started = Collector()
    thread = threading.Thread(target=started.server.serve_forever, daemon=True)
    thread.start()
    yield started
    started.server.shutdown()
    started.server.server_close()


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, as it was again afterwards (`create_app` replaces its handlers)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_log_lines_carry_the_trace_and_span_the_exporter_sent(
    settings: Settings,
    alice: User,
    collector: Collector,
    root_logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url)
    app = create_app(settings.model_copy(update={"log_level": "INFO"}))
    log_lines = io.StringIO()
    handler = logging.StreamHandler(log_lines)
    handler.setFormatter(JsonFormatter("tasks"))
    root_logger.addHandler(handler)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    request_id = f"traced-{secrets.token_hex(6)}"
    try:
        async with app.router.lifespan_context(app):
            assert await app.state.ctx.jwks.refresh()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                response = await c.get(
                    "/api/tasks",
                    headers={
                        **alice.headers,
                        "traceparent": f"00-{trace_id}-{caller_span}-01",
                        "X-Request-ID": request_id,
                    },
                )
            assert response.status_code == 200, response.text
            logging.getLogger("taskgate.test").warning("between requests")
        provider = tracer_provider()
        assert provider is not None
        assert provider.force_flush()
    finally:
        # The driver is patched process-wide: the rest of the suite runs it unpatched.
        AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]

    server = [s for s in collector.spans if s.trace_id == trace_id and s.kind == SERVER]
    assert len(server) == 1, collector.spans
    assert (server[0].parent_id, server[0].name) == (caller_span, "GET /api/tasks")
    statements = [s for s in collector.spans if s.parent_id == server[0].span_id]
    assert statements, collector.spans
    assert {s.kind for s in statements} == {CLIENT}

    entries = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    access = [e for e in entries if e.get("request_id") == request_id and e["msg"] == "request"]
    assert len(access) == 1, entries
    assert (access[0]["trace_id"], access[0]["span_id"]) == (trace_id, server[0].span_id)
    outside = next(e for e in entries if e["msg"] == "between requests")
    assert "trace_id" not in outside
    assert "span_id" not in outside
