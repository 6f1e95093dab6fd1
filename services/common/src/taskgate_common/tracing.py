"""OpenTelemetry traces, off unless an OTLP endpoint is configured.

Switched on by the standard variables `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL,
`.../v1/traces`) or `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's base URL); off again with
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The exporter reads the rest of that
family itself (`OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `_COMPRESSION`, TLS files), so does the
batch processor (`OTEL_BSP_*`) and the resource (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`).

Off, nothing is imported or installed beyond the API the JSON logs ask for the current span:
the request path is exactly what it is without tracing. On, the FastAPI instrumentation opens
a server span per request, continuing the caller's W3C `traceparent` (Traefik's, behind the
gateway), and the asyncpg instrumentation a client span per statement inside it; spans leave
in batches over OTLP/HTTP (protobuf).

Sampling: a trace is recorded when its start says so: the gateway's `sampleRate` (or a
caller's `traceparent` flags) behind Traefik, `OTEL_TRACES_SAMPLER_ARG` (a ratio, default 1)
for a request that starts its trace here. Work outside any request (health probes, background
jobs) starts no trace, so readiness probes do not flood the collector with `SELECT 1`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import Span

logger = logging.getLogger("taskgate.tracing")

TRACES_PATH = "/v1/traces"

# Matched against `scheme://host/path` (no query): the root endpoints Prometheus and the
# orchestrators poll every few seconds are not traced.
UNTRACED_URLS = r"^[a-z]+://[^/]+/(metrics|health)(/|$)"

_provider: TracerProvider | None = None


def traces_endpoint(env: Mapping[str, str]) -> str | None:
    """Where spans go, by the OpenTelemetry rules, or None: tracing off.

    An empty value counts as unset (Compose passes `${VAR:-}` through as empty).
    """
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if endpoint:
        return endpoint
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:
        return base.rstrip("/") + TRACES_PATH
    return None


def sample_ratio(env: Mapping[str, str]) -> float:
    """`OTEL_TRACES_SAMPLER_ARG`: the share of traces started here that are recorded."""
    text = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if not text:
        return 1.0
    try:
        ratio = float(text)
    except ValueError:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG must be a number, got {text!r}") from None
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG must be between 0 and 1, got {ratio}")
    return ratio


def install_tracing(app: FastAPI, *, service: str, version: str) -> bool:
    """Trace the app's requests and every asyncpg statement, if an endpoint is configured.

    Returns whether tracing is on. One tracer provider per process (the first app's):
    asyncpg's instrumentation patches the driver for the whole process anyway. It is not made
    the global provider: FastAPI's own telemetry would then trace every app in the process
    (tests build many) a second way; both instrumentations are given it explicitly.
    """
    env = os.environ
    endpoint = traces_endpoint(env)
    if endpoint is None:
        return False
    provider = _process_provider(service, version, endpoint, sample_ratio(env))
    _instrument(app, provider)
    return True


def tracer_provider() -> TracerProvider | None:
    """The process's provider (to flush it, or for spans of one's own); None while off."""
    return _provider


def _process_provider(service: str, version: str, endpoint: str, ratio: float) -> TracerProvider:
    global _provider
    if _provider is not None:
        return _provider

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes: dict[str, str] = {"service.version": version}
    if not os.environ.get("OTEL_SERVICE_NAME", "").strip():
        attributes["service.name"] = f"taskgate-{service}"
    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES and the SDK's own attributes.
    provider = TracerProvider(resource=Resource.create(attributes), sampler=_sampler(ratio))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    _provider = provider
    where = urlsplit(endpoint)
    shown = where._replace(netloc=where.netloc.rpartition("@")[2]).geturl()  # no credentials
    logger.info("tracing on: spans go to %s", shown, extra={"sample_ratio": ratio})
    return provider


def _sampler(ratio: float) -> Sampler:
    """Parent-based; a root span is recorded (at `ratio`) only if it is a request's."""
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )
    from opentelemetry.trace import Link, SpanKind, TraceState
    from opentelemetry.util.types import Attributes

    class RequestsStartTraces(Sampler):
        def __init__(self, ratio: float) -> None:
            self._ratio = TraceIdRatioBased(ratio)

        def should_sample(
            self,
            parent_context: Context | None,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Attributes = None,
            links: Sequence[Link] | None = None,
            trace_state: TraceState | None = None,
        ) -> SamplingResult:
            if kind is not SpanKind.SERVER:
                return SamplingResult(Decision.DROP)
            return self._ratio.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"RequestsStartTraces{{{self._ratio.get_description()}}}"

    return ParentBased(root=RequestsStartTraces(ratio))


def _instrument(app: FastAPI, provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        # Prometheus has the request metrics already (metrics.py).
        meter_provider=NoOpMeterProvider(),
        excluded_urls=UNTRACED_URLS,
        # One span per request, not one more per ASGI message.
        exclude_spans=["receive", "send"],
        server_request_hook=_without_query,
    )
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        # Statements only, never their parameters (capture_parameters stays off).
        instrumentor.instrument(tracer_provider=provider)


_QUERY_ATTRIBUTES = ("http.target", "http.url", "url.query")


def _without_query(span: Span, scope: dict[str, Any]) -> None:
    """Query values (search words, cursors) stay out of the span, as Traefik redacts them."""
    if not scope.get("query_string") or not span.is_recording():
        return
    recorded: Mapping[str, object] = getattr(span, "attributes", None) or {}
    for key in _QUERY_ATTRIBUTES:
        value = recorded.get(key)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(key, value.split("?", 1)[0])
        elif key == "url.query" and value is not None:
            span.set_attribute(key, "REDACTED")
