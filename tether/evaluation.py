"""Live evaluation: sampled outcomes scored by business criteria, and quality budgets that
burn like error budgets.

Scorers map an outcome (and what was heard about it later) to a score in [0, 1], or None when
the criterion does not apply. A domain picks its scorers and targets in EvaluationConfig.
Sampling is by a hash of the request id, so a re-run picks the same requests.

Each budget burns over two windows: the run's own (``since_hours``, the long one) against its
slow rate, and the last ``fast_window`` of it against its fast rate. A fast burn is what
switches a domain (or an intent) to the conservative overlay (tether/protection.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from tether.config import Duration
from tether.contracts import UNRESOLVED_FEEDBACK, DecisionAction, Mode, Outcome
from tether.drift import DriftConfig, DriftReport
from tether.overlay import OverlaySwitch

# The fast rate when a budget names none: 14.4 (a month's budget in two days), or, for a target
# too loose to ever burn that fast (a 90% target burns at most 10x), the rate at which half the
# short window is bad.
FAST_BURN = 14.4


class Budget(BaseModel):
    """An SLO on a scorer: at least ``target`` of scored outcomes must be good (score >= 0.5);
    the burn rate says how fast the allowed bad share is being spent.

    ``slow_burn_rate`` is judged over the run's window, ``fast_burn_rate`` over the last
    ``EvaluationConfig.fast_window`` of it. A config from before the two rates says
    ``alert_burn_rate``: that is the slow rate (it was judged over the run's window), and
    the fast rate takes its default."""

    target: float = Field(gt=0, lt=1)
    slow_burn_rate: float = Field(default=2.0, gt=0)
    fast_burn_rate: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _alert_rate_is_the_slow_rate(cls, value: Any) -> Any:
        if isinstance(value, dict) and "alert_burn_rate" in value:
            value = dict(value)
            old = value.pop("alert_burn_rate")
            value.setdefault("slow_burn_rate", old)
        return value

    @property
    def fast_threshold(self) -> float:
        if self.fast_burn_rate is not None:
            return self.fast_burn_rate
        return round(min(FAST_BURN, 0.5 / (1 - self.target)), 3)


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
    # The short window, ending at the run, that fast burns are judged over (clipped to the
    # run's own window); fewer scored outcomes in it than fast_min_scored fire nothing: one
    # bad answer is not a trend.
    fast_window: Duration = timedelta(hours=1)
    fast_min_scored: int = Field(default=5, ge=1)
    # A fast burn switches its domain (or intent) to the conservative overlay: no automatic
    # write until the burn has stayed below the fast rate this long, or a person clears it.
    self_protection: bool = True
    overlay_recovery: Duration = timedelta(hours=1)


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
    bad = any(f["kind"] in UNRESOLVED_FEEDBACK for f in later)
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
    """A budget over one run: the long window (the run's) and the short one (its end).
    ``fired``: either alert, as before there were two; ``slow_fired`` and ``fast_fired`` say
    which."""

    scorer: str
    target: float
    scored: int
    good_share: float
    burn_rate: float
    fired: bool
    slow_threshold: float | None = None
    slow_fired: bool = False
    fast_scored: int = 0
    fast_good_share: float | None = None
    fast_burn_rate: float | None = None
    fast_threshold: float | None = None
    fast_fired: bool = False


def _rate(values: Sequence[float], target: float) -> tuple[float, float]:
    """(good share, burn rate = bad share / allowed bad share), as reported (and compared):
    rounded, so that half of a 90% target's window bad is 5x, not 5.000000000000001x."""
    good = sum(1 for v in values if v >= 0.5) / len(values)
    return round(good, 4), round((1 - good) / (1 - target), 3)


def burn(
    scored: Sequence[dict[str, float]],
    config: EvaluationConfig,
    recent: Sequence[dict[str, float]] | None = None,
) -> list[BudgetStatus]:
    """Each budget over a window of scores (slow) and over ``recent``, its last part (fast;
    None: the whole window). A fast burn needs ``fast_min_scored`` scores in ``recent``."""
    statuses = []
    recent = scored if recent is None else recent
    for name, budget in config.budgets.items():
        values = [s[name] for s in scored if name in s]
        if not values:
            continue
        good, rate = _rate(values, budget.target)
        latest = [s[name] for s in recent if name in s]
        fast_good, fast_rate = _rate(latest, budget.target) if latest else (None, None)
        fast = budget.fast_threshold
        fast_fired = (
            fast_rate is not None and len(latest) >= config.fast_min_scored and fast_rate > fast
        )
        slow_fired = rate > budget.slow_burn_rate
        statuses.append(
            BudgetStatus(
                scorer=name,
                target=budget.target,
                scored=len(values),
                good_share=good,
                burn_rate=rate,
                fired=slow_fired or fast_fired,
                slow_threshold=budget.slow_burn_rate,
                slow_fired=slow_fired,
                fast_scored=len(latest),
                fast_good_share=fast_good,
                fast_burn_rate=fast_rate,
                fast_threshold=fast,
                fast_fired=fast_fired,
            )
        )
    return statuses


class EvaluationInput(BaseModel):
    # One domain's outcomes (None: every domain's): packs differ, and mixing their outcomes
    # moves every distribution drift watches.
    domain: str | None = None
    since_hours: float = Field(default=24, gt=0)
    # The window's start as a moment (an incident's start, a drill's first request), when a
    # length measured from whenever the activity runs would be too late: wins over since_hours.
    since: AwareDatetime | None = None
    config: EvaluationConfig = EvaluationConfig()
    # Drift: this window against the baseline_days before it; alerts also to the webhook.
    baseline_days: float = Field(default=7, gt=0)
    drift: DriftConfig = DriftConfig()
    webhook: str | None = None

    def start(self, now: datetime) -> datetime:
        """Where the window that ends at ``now`` begins."""
        return self.since if self.since is not None else now - timedelta(hours=self.since_hours)


class EvaluationReport(BaseModel):
    outcomes: int
    sampled: int
    means: dict[str, float]
    budgets: list[BudgetStatus]
    datasets: dict[str, int] = Field(default={}, description="name -> version carved")
    drift: DriftReport | None = None
    # The fast window's bounds, and the overlays this run switched on or off.
    fast_since: datetime | None = None
    until: datetime | None = None
    overlays: list[OverlaySwitch] = []

    @property
    def fired(self) -> list[str]:
        budgets = [b.scorer for b in self.budgets if b.fired]
        return budgets + [f"drift:{name}" for name in (self.drift.fired if self.drift else [])]


def fast_start(outcomes: Sequence[Outcome], config: EvaluationConfig, now: datetime) -> datetime:
    """Where the short window begins: ``fast_window`` before ``now``, never before the run's
    first outcome (then both windows are the same)."""
    start = now - config.fast_window
    first = min((o.finished_at for o in outcomes), default=start)
    return max(start, first)


def evaluate(
    outcomes: Sequence[Outcome],
    later: Callable[[str], list[dict[str, Any]]],
    config: EvaluationConfig,
    *,
    now: datetime | None = None,
) -> tuple[dict[str, dict[str, float]], EvaluationReport]:
    """(scores by request id, the window's report) for the sampled share of ``outcomes``;
    the short window ends at ``now`` (default: the newest outcome)."""
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
    end = now or max((o.finished_at for o in outcomes), default=None)
    since = fast_start(outcomes, config, end) if end is not None else None
    recent = [scores[o.request_id] for o in picked if since is None or o.finished_at >= since]
    report = EvaluationReport(
        outcomes=len(outcomes),
        sampled=len(picked),
        means=means,
        budgets=burn(list(scores.values()), config, recent),
        fast_since=since,
        until=end,
    )
    return scores, report
