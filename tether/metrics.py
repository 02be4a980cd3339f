"""Tether's own metrics, next to the Temporal runtime's on the same Prometheus endpoint
(``TETHER_METRICS_ADDRESS``): decisions by type and mode, escalations, tool calls and their
failures, follow-ups, quality scores and request latency, recorded once per outcome. Beside
them, from where each is known: latency by stage (tether/stages.py, and the approval gate's
wait), approval SLA breaches (the gate), the approval queue's depth (tether/queuedepth.py),
the model circuit's state (``watch_breaker``), the evaluation job's burn rates and drift
(activities/records.py), and the console's sign-ins, the verdicts it sends and the feedback
its operators report (``ConsoleCounters``).

The exporter adds no ``_total`` to counters and no unit to names (PrometheusConfig's
defaults, which the Temporal SDK's own metrics are named by too): a name says its unit where
the value is not the SDK's milliseconds."""

from __future__ import annotations

from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from tether.breaker import CircuitBreaker, State
from tether.contracts import Outcome
from tether.overlay import Overlay

STAGE_LATENCY = "tether_stage_latency_seconds"  # histogram: domain, stage
SLA_BREACHES = "tether_approval_sla_breaches"  # counter: domain, tier
QUEUE_DEPTH = "tether_approval_queue_depth"  # gauge: domain, tier
CIRCUIT_STATE = "tether_circuit_state"  # gauge: breaker (CIRCUIT_CODES)
CIRCUIT_OPENINGS = "tether_circuit_openings"  # counter: breaker
PROPOSAL_REUSE = "tether_proposal_reuse"  # counter: domain, result (hit, miss, stale)
OVERLAY_ACTIVE = "tether_overlay_active"  # gauge: domain, intent ("*": the whole domain)
OVERLAY_SWITCHES = "tether_overlay_switches"  # counter: domain, intent, to (on, off)
CONSOLE_SIGN_INS = "tether_console_sign_ins"  # counter: result (ok, refused)
# counter: verdict, result (sent, refused, unavailable, error)
CONSOLE_VERDICTS = "tether_console_verdicts"
# counter: result (sent, refused, unavailable, error): what operators reported later
CONSOLE_REPORTS = "tether_console_reports"
CIRCUIT_CODES: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}

_SHARES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
_HOUR = 3600.0
_SECONDS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, _HOUR]
# The SDK's default buckets (50 ms to 10 s) fit neither a share in [0, 1] nor a wait for a
# person: an approval waits for hours (tiers' SLAs), a retrieval takes tens of milliseconds.
BUCKETS: dict[str, list[float]] = {
    STAGE_LATENCY: [*_SECONDS, 4 * _HOUR, 8 * _HOUR, 24 * _HOUR, 72 * _HOUR],
    "tether_request_latency": [s * 1000 for s in [*_SECONDS[1:], 4 * _HOUR, 24 * _HOUR]],
    "tether_grounding": _SHARES,
    "tether_confidence": _SHARES,
}

_runtimes: dict[str, Runtime] = {}


def runtime_for(address: str | None) -> Runtime | None:
    """One Temporal runtime per process that serves /metrics on ``address`` (host:port)."""
    if address is None:
        return None
    if address not in _runtimes:
        prometheus = PrometheusConfig(bind_address=address, histogram_bucket_overrides=BUCKETS)
        _runtimes[address] = Runtime(telemetry=TelemetryConfig(metrics=prometheus))
    return _runtimes[address]


def watch_breaker(breaker: CircuitBreaker, meter: MetricMeter, name: str) -> None:
    """``breaker``'s state as a gauge and its openings as a counter, both present from now
    on (zero openings is an answer). The state moves only on a call: an open circuit whose
    ``reset_after`` has passed reads open until the next call tries it."""
    labels = {"breaker": name}
    state = meter.create_gauge(CIRCUIT_STATE, "Circuit state: 0 closed, 1 half-open, 2 open")
    openings = meter.create_counter(CIRCUIT_OPENINGS, "Times the circuit opened")

    def moved(_: State, to: State) -> None:
        state.set(CIRCUIT_CODES[to], labels)
        if to == "open":
            openings.add(1, labels)

    state.set(CIRCUIT_CODES[breaker.state], labels)
    openings.add(0, labels)
    breaker.listen(moved)


def overlay_labels(overlay: Overlay) -> dict[str, str]:
    return {"domain": overlay.domain, "intent": overlay.intent or "*"}


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


class ConsoleCounters:
    """The console's sign-ins, verdicts and reports, on its own endpoint
    (``TETHER_METRICS_ADDRESS``) beside its Temporal client's. A refused sign-in is an
    unknown token or another site's form (many: someone guessing tokens); a refused verdict
    one the workflow would not take (a role, a version, a signature) or the console would not
    send (another's form, no key for its operator, unreadable arguments); unavailable:
    Temporal did not answer; error: anything else. Every series is present from the start
    (zero is an answer)."""

    VERDICTS = ("approve", "reject", "edit")
    RESULTS = ("sent", "refused", "unavailable", "error")

    def __init__(self, meter: MetricMeter | None) -> None:
        self._sign_ins = (
            meter.create_counter(CONSOLE_SIGN_INS, "Console sign-ins") if meter else None
        )
        self._verdicts = (
            meter.create_counter(CONSOLE_VERDICTS, "Verdicts posted to the console")
            if meter
            else None
        )
        self._reports = (
            meter.create_counter(CONSOLE_REPORTS, "Feedback reported at the console")
            if meter
            else None
        )
        for result in ("ok", "refused"):
            self.sign_in(result, 0)
        for done in self.RESULTS:
            self.report(done, 0)
            for verdict in self.VERDICTS:
                self.verdict(verdict, done, 0)

    def sign_in(self, result: str, count: int = 1) -> None:
        if self._sign_ins is not None:
            self._sign_ins.add(count, {"result": result})

    def report(self, result: str, count: int = 1) -> None:
        if self._reports is not None:
            self._reports.add(count, {"result": result})

    def verdict(self, verdict: str, result: str, count: int = 1) -> None:
        if self._verdicts is not None and verdict in self.VERDICTS:
            self._verdicts.add(count, {"verdict": verdict, "result": result})
