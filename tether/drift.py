"""Drift: this window of outcomes against a baseline window, the way latency or error rate
is watched. Distributions are compared with the population stability index (PSI); a change of
model fingerprint is an event of its own. Pure functions over recorded outcomes.

PSI = sum over bins of (cur - base) * ln(cur / base), with shares floored at EPSILON so an
empty bin counts without dividing by zero. Rule of thumb: < 0.1 stable, 0.1-0.25 moving,
> 0.25 shifted (the default threshold).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise

import httpx
from pydantic import BaseModel, Field

from tether.contracts import DecisionAction, Outcome

EPSILON = 1e-4
SCORE_BINS = (0.0, 0.2, 0.4, 0.55, 0.7, 0.85, 1.0001)


class DriftConfig(BaseModel):
    psi_threshold: float = 0.25
    # Below this many outcomes in either window a distribution says nothing.
    min_outcomes: int = 30


class Metric(BaseModel):
    name: str
    psi: float
    baseline: dict[str, float]
    current: dict[str, float]
    fired: bool


class DriftReport(BaseModel):
    baseline_outcomes: int
    current_outcomes: int
    metrics: list[Metric] = []
    fingerprints_new: list[str] = Field(
        default=[], description="model fingerprints in this window never seen in the baseline"
    )
    insufficient: bool = False

    @property
    def fired(self) -> list[str]:
        shifted = [m.name for m in self.metrics if m.fired]
        return shifted + (["model_fingerprint"] if self.fingerprints_new else [])


def shares(values: Iterable[str]) -> dict[str, float]:
    counts = Counter(values)
    total = sum(counts.values())
    return {k: n / total for k, n in sorted(counts.items())} if total else {}


def psi(baseline: dict[str, float], current: dict[str, float]) -> float:
    total = 0.0
    for key in baseline.keys() | current.keys():
        base = max(baseline.get(key, 0.0), EPSILON)
        cur = max(current.get(key, 0.0), EPSILON)
        total += (cur - base) * math.log(cur / base)
    return total


def binned(value: float | None) -> str:
    if value is None:
        return "none"
    for low, high in pairwise(SCORE_BINS):
        if low <= value < high:
            return f"{low:.2f}-{min(high, 1.0):.2f}"
    return "out_of_range"


# What is watched: each outcome becomes one label per metric.
SIGNALS: dict[str, Callable[[Outcome], str]] = {
    "intent": lambda o: o.intent or "none",
    "mode": lambda o: o.mode.value,
    "decision": lambda o: o.decision.action.value,
    "escalated": lambda o: str(o.decision.action is DecisionAction.APPROVAL),
    "confidence": lambda o: binned(o.proposal.confidence if o.proposal else None),
    "grounding": lambda o: binned(o.verification.grounding if o.verification else None),
    "retrieval_top_score": lambda o: binned(o.top_score),
}


def detect(
    baseline: Sequence[Outcome], current: Sequence[Outcome], config: DriftConfig
) -> DriftReport:
    report = DriftReport(baseline_outcomes=len(baseline), current_outcomes=len(current))
    seen = {o.model.fingerprint for o in baseline if o.model}
    if seen:  # with nothing to compare against, nothing is new
        report.fingerprints_new = sorted(
            {o.model.fingerprint for o in current if o.model and o.model.fingerprint not in seen}
        )
    if min(len(baseline), len(current)) < config.min_outcomes:
        report.insufficient = True
        return report
    for name, label in SIGNALS.items():
        base = shares(label(o) for o in baseline)
        cur = shares(label(o) for o in current)
        value = psi(base, cur)
        report.metrics.append(
            Metric(
                name=name,
                psi=round(value, 4),
                baseline=base,
                current=cur,
                fired=value > config.psi_threshold,
            )
        )
    return report


log = logging.getLogger(__name__)


def alert(report: DriftReport, webhook: str | None = None) -> None:
    """Each fired signal to the log; the whole report to the webhook, when one is set."""
    for name in report.fired:
        log.warning("drift: %s shifted against the baseline", name)
    if report.fired and webhook:
        post(webhook, report.model_dump(mode="json"), what="drift")


def post(webhook: str, body: dict[str, object], *, what: str) -> None:
    """An alert's JSON to the webhook; a failure is logged, never raised."""
    try:
        httpx.post(webhook, json=body, timeout=10.0).raise_for_status()
    except httpx.HTTPError as err:  # an unreachable hook must not hide the alert
        log.error("%s webhook %s failed: %r", what, webhook, err)
