"""OpenTelemetry tracing across client, workflows and activities
(``temporalio.contrib.opentelemetry``): one trace from `submit` through every activity."""

from __future__ import annotations

import os

from opentelemetry import trace
from temporalio.client import Interceptor

_configured = False


def interceptors(enabled: bool) -> list[Interceptor]:
    """The client's interceptors; workers built on that client trace too."""
    if not enabled:
        return []
    _configure_exporter()
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def _configure_exporter() -> None:
    """OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, when set and no provider is installed yet."""
    global _configured
    if _configured or not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "tether"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
