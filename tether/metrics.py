"""Tether's own metrics, next to the Temporal runtime's on the same Prometheus endpoint
(``TETHER_METRICS_ADDRESS``): decisions by type and mode, escalations, tool calls and their
failures, follow-ups, quality scores and request latency, recorded once per outcome."""

from __future__ import annotations

from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from tether.contracts import Outcome

_runtimes: dict[str, Runtime] = {}


def runtime_for(address: str | None) -> Runtime | None:
    """One Temporal runtime per process that serves /metrics on ``address`` (host:port)."""
    if address is None:
        return None
    if address not in _runtimes:
        _runtimes[address] = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address))
        )
    return _runtimes[address]


def record(outcome: Outcome, meter: MetricMeter) -> None:
    decision = outcome.decision
    labels = {
        "domain": outcome.domain,
        "action": decision.action.value,
        "mode": outcome.mode.value,
        "intent": outcome.intent or "none",
    }
    meter.create_counter("tether_decisions", "Outcomes by decision, mode and intent").add(1, labels)
    if outcome.followup_required:
        meter.create_counter("tether_followups", "Outcomes a person must follow up").add(1, labels)
    tools = meter.create_counter("tether_tool_calls", "Tool calls by tool and result")
    for action in [*outcome.actions, *outcome.compensations]:
        tools.add(1, {"domain": outcome.domain, "tool": action.tool, "ok": str(action.ok).lower()})
    meter.create_histogram_timedelta(
        "tether_request_latency", "From request to recorded outcome", "ms"
    ).record(outcome.finished_at - outcome.started_at, labels)
    if outcome.verification is not None:
        meter.create_histogram_float(
            "tether_grounding", "Share of answer sentences grounded in cited evidence"
        ).record(outcome.verification.grounding, labels)
    if outcome.proposal is not None:
        meter.create_histogram_float("tether_confidence", "The model's stated confidence").record(
            outcome.proposal.confidence, labels
        )
