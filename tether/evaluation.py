"""Live evaluation: sampled outcomes scored by business criteria, and quality budgets that
burn like error budgets.

Scorers map an outcome (and what was heard about it later) to a score in [0, 1], or None when
the criterion does not apply. A domain picks its scorers and targets in EvaluationConfig.
Sampling is by a hash of the request id, so a re-run picks the same requests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from tether.contracts import DecisionAction, Mode, Outcome
from tether.drift import DriftConfig, DriftReport

BAD_NEWS = frozenset({"complaint", "reversal", "clawback"})


class Budget(BaseModel):
    """An SLO on a scorer: at least ``target`` of scored outcomes must be good (score >= 0.5);
    the burn rate says how fast the allowed bad share is being spent."""

    target: float = Field(gt=0, lt=1)
    alert_burn_rate: float = 2.0


class EvaluationConfig(BaseModel):
    sample_rate: float = Field(default=0.2, ge=0, le=1)
    latency_slo_ms: float = 5_000
    min_grounding: float = 0.75
    scorers: list[str] = Field(
        default_factory=lambda: [
            "schema_valid",
            "grounded",
            "policy_compliant",
            "resolved_without_reversal",
            "latency_within_slo",
            "human_agreement",
        ]
    )
    budgets: dict[str, Budget] = Field(
        default_factory=lambda: {
            "grounded": Budget(target=0.9),
            "policy_compliant": Budget(target=0.999),
            "resolved_without_reversal": Budget(target=0.95),
        }
    )


def sampled(request_id: str, rate: float) -> bool:
    digest = int(hashlib.sha256(request_id.encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < rate


Scorer = Callable[[Outcome, list[dict[str, Any]], EvaluationConfig], float | None]


def _schema_valid(o: Outcome, _: list[dict[str, Any]], __: EvaluationConfig) -> float | None:
    if o.mode is Mode.RETRIEVAL_ONLY:
        return None  # no model output to judge
    return 1.0 if o.proposal is not None else 0.0


def _grounded(o: Outcome, _: list[dict[str, Any]], cfg: EvaluationConfig) -> float | None:
    if o.verification is None:
        return None
    return 1.0 if o.verification.grounding >= cfg.min_grounding else 0.0


def _policy_compliant(o: Outcome, _: list[dict[str, Any]], __: EvaluationConfig) -> float | None:
    """Every effect allowed by the decision (or an approver) and proposed (or edited) first."""
    allowed = o.decision.action is DecisionAction.AUTO or any(
        r.verdict == "approve" for r in o.reviews
    )
    planned = [*(o.proposal.tool_calls if o.proposal else [])]
    planned += [c for e in o.edits for c in e.edited.tool_calls]
    known = {(c.tool, str(c.arguments)) for c in planned}
    effects = [a for a in o.actions if a.ok or a.unconfirmed_effect]
    ok = all(allowed and (a.tool, str(a.arguments)) in known for a in effects)
    return 1.0 if ok else 0.0


def _resolved(o: Outcome, later: list[dict[str, Any]], __: EvaluationConfig) -> float | None:
    if o.decision.action is DecisionAction.REJECT:
        return None
    failed = any(not a.ok for a in o.actions) or bool(o.compensations)
    bad = any(f["kind"] in BAD_NEWS for f in later)
    return 0.0 if failed or bad else 1.0


def _fast(o: Outcome, _: list[dict[str, Any]], cfg: EvaluationConfig) -> float | None:
    if o.reviews:
        return None  # a person's time is not the system's latency
    ms = (o.finished_at - o.started_at).total_seconds() * 1000
    return 1.0 if ms <= cfg.latency_slo_ms else 0.0


def _agreement(o: Outcome, _: list[dict[str, Any]], __: EvaluationConfig) -> float | None:
    """Where a person acted: approved as proposed 1, edited 0.5, rejected 0."""
    verdicts = [r.verdict for r in o.reviews if r.verdict in ("approve", "reject")]
    if not verdicts:
        return None
    if o.edits:
        return 0.5
    return 1.0 if verdicts[-1] == "approve" else 0.0


SCORERS: dict[str, Scorer] = {
    "schema_valid": _schema_valid,
    "grounded": _grounded,
    "policy_compliant": _policy_compliant,
    "resolved_without_reversal": _resolved,
    "latency_within_slo": _fast,
    "human_agreement": _agreement,
}


def score(
    outcome: Outcome, later: list[dict[str, Any]], config: EvaluationConfig
) -> dict[str, float]:
    """The applicable scores of one outcome."""
    scores = {name: SCORERS[name](outcome, later, config) for name in config.scorers}
    return {name: value for name, value in scores.items() if value is not None}


class BudgetStatus(BaseModel):
    scorer: str
    target: float
    scored: int
    good_share: float
    burn_rate: float
    fired: bool


def burn(scored: Sequence[dict[str, float]], config: EvaluationConfig) -> list[BudgetStatus]:
    """Each budget over a window of scores: burn rate = bad share / allowed bad share."""
    statuses = []
    for name, budget in config.budgets.items():
        values = [s[name] for s in scored if name in s]
        if not values:
            continue
        good = sum(1 for v in values if v >= 0.5) / len(values)
        rate = (1 - good) / (1 - budget.target)
        statuses.append(
            BudgetStatus(
                scorer=name,
                target=budget.target,
                scored=len(values),
                good_share=round(good, 4),
                burn_rate=round(rate, 3),
                fired=rate > budget.alert_burn_rate,
            )
        )
    return statuses


class EvaluationInput(BaseModel):
    # One domain's outcomes (None: every domain's): packs differ, and mixing their outcomes
    # moves every distribution drift watches.
    domain: str | None = None
    since_hours: float = Field(default=24, gt=0)
    config: EvaluationConfig = EvaluationConfig()
    # Drift: this window against the baseline_days before it; alerts also to the webhook.
    baseline_days: float = Field(default=7, gt=0)
    drift: DriftConfig = DriftConfig()
    webhook: str | None = None


class EvaluationReport(BaseModel):
    outcomes: int
    sampled: int
    means: dict[str, float]
    budgets: list[BudgetStatus]
    datasets: dict[str, int] = Field(default={}, description="name -> version carved")
    drift: DriftReport | None = None

    @property
    def fired(self) -> list[str]:
        budgets = [b.scorer for b in self.budgets if b.fired]
        return budgets + [f"drift:{name}" for name in (self.drift.fired if self.drift else [])]


def evaluate(
    outcomes: Sequence[Outcome],
    later: Callable[[str], list[dict[str, Any]]],
    config: EvaluationConfig,
) -> tuple[dict[str, dict[str, float]], EvaluationReport]:
    """(scores by request id, the window's report) for the sampled share of ``outcomes``."""
    picked = [o for o in outcomes if sampled(o.request_id, config.sample_rate)]
    scores = {o.request_id: score(o, later(o.request_id), config) for o in picked}
    names = sorted({n for s in scores.values() for n in s})
    means = {
        n: round(
            sum(s[n] for s in scores.values() if n in s)
            / sum(1 for s in scores.values() if n in s),
            4,
        )
        for n in names
    }
    report = EvaluationReport(
        outcomes=len(outcomes),
        sampled=len(picked),
        means=means,
        budgets=burn(list(scores.values()), config),
    )
    return scores, report
