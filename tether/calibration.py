"""Calibrated routing (``tether calibrate``): per intent, the confidence and grounding
thresholds at which automatic decisions would have stood, fitted from recorded outcomes and
what people did about them. A pure function of the data: no clock but ``now``, no randomness.

Labels (an outcome without one is not used):
- bad: a person rejected or edited the proposal, its effects were undone (the saga
  compensated, or later feedback says reversed or clawed back), or later feedback says it was
  wrong (a complaint, a correction);
- good: none of that, and a person approved it as proposed, or later feedback confirmed it,
  or it acted automatically at least ``settle`` ago (time for bad news to arrive).
The verdicts, edits and feedback are read as ``tether candidate status`` reads them
(``candidates.judgement``), the undone effects as the reversals dataset does.

An outcome counts for the intent its proposal named, unless the verifier read the request as
another, or could not read it (``Verification.intent``): such an outcome was decided by
neither intent's thresholds (tether.policy.decide) and is fitted under none
(``Calibration.disputed``). One verified before the verifier read intents counts as named.

The thresholds decide an outcome that had a proposal and was automatic, or went to a person
for low confidence or weak grounding and for nothing else. One that a rule sent to a person
(or refused) would be sent (or refused) at any thresholds: it counts in the traffic, never
as automatic.

The fit, per intent of the pack: on a grid of hundredths, the pair (confidence, grounding)
that automates the most of the intent's traffic, while the labelled outcomes at or over both
number at least ``min_labelled`` and the lower end of the Wilson interval on their precision
(the good share) reaches the target, and, for a pair looser than today's, the outcomes it
would newly automate reach it on their own (good outcomes above today's thresholds are easily
had, and must not carry a worse band below them into automation); among equals, the higher
pair. An intent with fewer
labelled outcomes than the target could ever show (every one good) is ``too_few``; one no
pair gets there is ``unreachable``: both keep their current thresholds. The automation rate
(the share of the intent's traffic automatic at the thresholds) and the escalations (requests
a day that would go to a person, at the window's traffic) are counts of the recorded history,
with Wilson intervals on the shares. Picking the best of many pairs makes the chosen pair's
interval a little optimistic: run the proposal beside live traffic (``tether candidate``)
before activating it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tether.candidates import judgement
from tether.config import PolicyConfig
from tether.contracts import DecisionAction, Outcome
from tether.datasets import RULES
from tether.policy import THRESHOLD_CODES

Label = Literal["good", "bad"]
# proposed: new thresholds; unchanged: the fit is the current pair; unreachable: no pair
# reaches the target; too_few: too few labels to show it; unknown: not one of the pack's.
Status = Literal["proposed", "unchanged", "unreachable", "too_few", "unknown"]
GRID = 100  # thresholds in hundredths, as the gate prints them
DAY = timedelta(days=1)


class TooFewLabels(Exception):
    """No intent has the labelled outcomes the target needs: nothing can be fitted."""


class Interval(BaseModel):
    model_config = ConfigDict(frozen=True)

    estimate: float
    low: float
    high: float

    def times(self, factor: float) -> Interval:
        return Interval(
            estimate=self.estimate * factor, low=self.low * factor, high=self.high * factor
        )


class Thresholds(BaseModel):
    model_config = ConfigDict(frozen=True)

    confidence: float
    grounding: float


class IntentFit(BaseModel):
    """One intent: its thresholds (proposed, or kept) and what they would have done."""

    model_config = ConfigDict(frozen=True)

    intent: str
    status: Status
    current: Thresholds
    thresholds: Thresholds  # the proposal's; the current pair when kept
    traffic: int  # the intent's outcomes in the window
    decided_by_thresholds: int  # of those, automatic or held for the thresholds alone
    labelled: int  # of those, labelled
    above: int  # of those, at or over ``thresholds``
    precision: Interval | None  # the good share of ``above``; None when there are none
    precision_now: Interval | None  # ... of those at or over the current thresholds
    automation: Interval  # the share of ``traffic`` automatic at ``thresholds``
    automation_now: float  # ... at the current thresholds
    escalations: Interval  # requests a day to a person at ``thresholds``
    escalations_now: float
    note: str


class Calibration(BaseModel):
    model_config = ConfigDict(frozen=True)

    domain: str
    policy_version: str  # what the current thresholds are read from
    target: float
    level: float
    since: datetime | None  # the window's first outcome
    until: datetime
    days: float  # from ``since`` to ``until``, at least one
    outcomes: int
    labelled: int
    needed: int  # labelled outcomes of one intent the target needs at the least
    intents: list[IntentFit]
    # Outcomes whose request the verifier read as another intent than the proposal named, or
    # could not read: no intent's thresholds decided them, so they are fitted under none.
    disputed: int = 0


def _disputed(outcome: Outcome) -> bool:
    """Whether the verifier read the request as another intent than the proposal named, or
    could not read it (an outcome verified before it read intents was decided by the one
    the proposal named)."""
    read = outcome.verification
    return read is not None and read.intent_read and read.intent != outcome.intent


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def _wilson(successes: int, n: int, z: float) -> Interval:
    if n == 0:
        return Interval(estimate=0.0, low=0.0, high=1.0)
    p = successes / n
    spread = z * z / n
    centre = (p + spread / 2) / (1 + spread)
    half = z * math.sqrt(p * (1 - p) / n + spread / (4 * n)) / (1 + spread)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(estimate=p, low=low, high=high)


def wilson(successes: int, n: int, level: float = 0.95) -> Interval:
    """The Wilson score interval of ``successes`` in ``n`` at confidence ``level``."""
    return _wilson(successes, n, _z(level))


def needed(target: float, level: float = 0.95) -> int:
    """The fewest outcomes, all good, whose precision interval clears ``target``."""
    z = _z(level)
    # All good, the interval's lower end is n / (n + z^2): solved for n, then checked as
    # computed (the float arithmetic may want one more).
    n = max(1, math.ceil(z * z * target / (1 - target)) - 1)
    while _wilson(n, n, z).low < target:
        n += 1
    return n


def label(
    outcome: Outcome, later: Sequence[Mapping[str, Any]], *, now: datetime, settle: timedelta
) -> Label | None:
    """Good, bad, or None (not yet known) by what people did (see the module docstring)."""
    if RULES["reversals"](outcome, [dict(f) for f in later], 0.0):
        return "bad"
    said = judgement(outcome, later)
    if said is not None:
        return "good" if said == "act" else "bad"
    if outcome.decision.action is DecisionAction.AUTO and now - outcome.finished_at >= settle:
        return "good"
    return None


@dataclass(frozen=True)
class _Point:
    """An outcome the thresholds decide: the model's confidence, the grounding, the label."""

    confidence: float
    grounding: float
    label: Label | None


def _point(
    outcome: Outcome, later: Sequence[Mapping[str, Any]], *, now: datetime, settle: timedelta
) -> _Point | None:
    proposal = outcome.edits[0].original if outcome.edits else outcome.proposal
    action, codes = outcome.decision.action, set(outcome.decision.codes())
    alone = action is DecisionAction.AUTO or (
        action is DecisionAction.APPROVAL and bool(codes) and codes <= THRESHOLD_CODES
    )
    if proposal is None or outcome.verification is None or not alone:
        return None
    grounding = outcome.verification.grounding
    return _Point(proposal.confidence, grounding, label(outcome, later, now=now, settle=settle))


def _step(value: float) -> int:
    """The highest grid threshold ``value`` is at or over (the gate's own comparison)."""
    k = min(GRID, max(0, math.floor(value * GRID)))
    while k < GRID and (k + 1) / GRID <= value:
        k += 1
    while k > 0 and k / GRID > value:
        k -= 1
    return k


def _search(
    points: Sequence[_Point],
    target: float,
    z: float,
    floor: int,
    current: Thresholds | None = None,
) -> Thresholds | None:
    """The grid pair automating the most points whose labelled ones clear ``target``; and,
    looser than ``current``, whose newly automated band clears it on its own: else many good
    outcomes above today's thresholds (easily had: automatic ones settle as good) would carry
    a band of bad ones below them into automation."""
    size = GRID + 2  # one more row and column of zeros to sum from
    counts = [[[0, 0, 0] for _ in range(size)] for _ in range(size)]  # all, labelled, good
    for p in points:
        cell = counts[_step(p.confidence)][_step(p.grounding)]
        cell[0] += 1
        cell[1] += p.label is not None
        cell[2] += p.label == "good"
    for k in range(GRID, -1, -1):  # each cell: the points at or over (k, j)
        for j in range(GRID, -1, -1):
            for i in range(3):
                counts[k][j][i] += (
                    counts[k + 1][j][i] + counts[k][j + 1][i] - counts[k + 1][j + 1][i]
                )
    now_k, now_j = (_step(current.confidence), _step(current.grounding)) if current else (0, 0)
    best: tuple[int, int, int] | None = None
    for k in range(GRID + 1):
        for j in range(GRID + 1):
            every, labelled, good = counts[k][j]
            if labelled < floor or _wilson(good, labelled, z).low < target:
                continue
            kept = counts[max(k, now_k)][max(j, now_j)]  # automatic today as well
            band_every, band_labelled, band_good = (
                a - b for a, b in zip(counts[k][j], kept, strict=True)
            )
            if current and band_every and _wilson(band_good, band_labelled, z).low < target:
                continue
            if best is None or (every, k, j) > best:
                best = (every, k, j)
    return None if best is None else Thresholds(confidence=best[1] / GRID, grounding=best[2] / GRID)


def calibrate(
    outcomes: Sequence[Outcome],
    later: Callable[[str], Sequence[Mapping[str, Any]]],
    policy: PolicyConfig,
    *,
    domain: str,
    intents: Collection[str],
    target: float,
    now: datetime,
    level: float = 0.95,
    min_labelled: int = 30,
    settle: timedelta = timedelta(hours=72),
) -> Calibration:
    """Each intent's thresholds for ``target`` precision, fitted on ``outcomes`` (one
    domain's window, up to ``now``) and the feedback ``later`` returns for a request id.
    TooFewLabels when no intent of the pack's ``intents`` has enough labelled outcomes."""
    if not 0 < target < 1:
        raise ValueError(f"target precision {target}: a share between 0 and 1, both excluded")
    if not 0 < level < 1:
        raise ValueError(f"confidence level {level}: a share between 0 and 1, both excluded")
    z, least = _z(level), max(min_labelled, needed(target, level))
    since = min((o.finished_at for o in outcomes), default=None)
    days = max((now - since) / DAY if since else 0.0, 1.0)
    by_intent: dict[str, list[Outcome]] = {}
    disputed = 0
    for o in sorted(outcomes, key=lambda o: o.request_id):
        if o.intent is not None and _disputed(o):
            disputed += 1
        elif o.intent is not None:
            by_intent.setdefault(o.intent, []).append(o)
    fitting = _Fitting(later, policy, target, z, least, min_labelled, days, now, settle)
    fits = [
        fitting.fit(intent, mine, known=intent in intents) for intent, mine in by_intent.items()
    ]
    fits.sort(key=lambda f: (-f.traffic, f.intent))
    labelled = sum(f.labelled for f in fits)
    fittable = [f for f in fits if f.status not in ("too_few", "unknown")]
    if not fittable:
        most = max(
            (f for f in fits if f.status != "unknown"), key=lambda f: f.labelled, default=None
        )
        of = f", the most of one intent {most.labelled} ({most.intent})" if most else ""
        raise TooFewLabels(
            f"too few labelled outcomes to calibrate {domain}: {labelled} labelled of "
            f"{len(outcomes)} in {days:.1f} days{of}; precision {target} at {level:.0%} needs "
            f"at least {least} labelled outcomes of one intent"
        )
    return Calibration(
        domain=domain,
        policy_version=policy.version,
        target=target,
        level=level,
        since=since,
        until=now,
        days=days,
        outcomes=len(outcomes),
        labelled=labelled,
        needed=least,
        intents=fits,
        disputed=disputed,
    )


@dataclass(frozen=True)
class _Fitting:
    """One calibration's data and settings, fitting one intent at a time."""

    later: Callable[[str], Sequence[Mapping[str, Any]]]
    policy: PolicyConfig
    target: float
    z: float
    least: int  # labelled outcomes an intent needs
    floor: int  # labelled outcomes over a pair, at the least
    days: float
    now: datetime
    settle: timedelta

    def fit(self, intent: str, mine: Sequence[Outcome], *, known: bool) -> IntentFit:
        points: list[_Point] = []
        held = 0  # to a person at any thresholds
        for o in mine:
            point = _point(o, self.later(o.request_id), now=self.now, settle=self.settle)
            if point is not None:
                points.append(point)
            elif o.decision.action is DecisionAction.APPROVAL:
                held += 1
        labelled = sum(p.label is not None for p in points)
        current = Thresholds(
            confidence=self.policy.min_confidence_for(intent),
            grounding=self.policy.min_grounding_for(intent),
        )
        found: Thresholds | None = None
        if not known:
            status: Status = "unknown"
            note = "not one of the pack's intents: no thresholds proposed"
        elif labelled < self.least:
            status = "too_few"
            note = f"{labelled:,} labelled outcomes; {self.least:,} needed to show the target"
        else:
            found = _search(points, self.target, self.z, self.floor, current)
            if found is None:
                status = "unreachable"
                note = f"no thresholds reach precision {self.target} on {labelled:,} labelled"
            elif found == current:
                status, note = "unchanged", "the fit is the current pair"
            else:
                status, note = "proposed", "fitted"
        chosen = found or current

        def over(t: Thresholds) -> list[_Point]:
            return [
                p for p in points if p.confidence >= t.confidence and p.grounding >= t.grounding
            ]

        def precision(over_them: list[_Point]) -> Interval | None:
            judged = [p.label for p in over_them if p.label is not None]
            return _wilson(judged.count("good"), len(judged), self.z) if judged else None

        above, automatic_now = over(chosen), len(over(current))
        traffic = len(mine)
        return IntentFit(
            intent=intent,
            status=status,
            current=current,
            thresholds=chosen,
            traffic=traffic,
            decided_by_thresholds=len(points),
            labelled=labelled,
            above=sum(p.label is not None for p in above),
            precision=precision(above),
            precision_now=precision(over(current)),
            automation=_wilson(len(above), traffic, self.z),
            automation_now=automatic_now / traffic,
            escalations=_wilson(held + len(points) - len(above), traffic, self.z).times(
                traffic / self.days
            ),
            escalations_now=(held + len(points) - automatic_now) / self.days,
            note=note,
        )


def proposal(
    policy: PolicyConfig, calibration: Calibration, *, version: str | None = None
) -> PolicyConfig | None:
    """``policy`` with the proposed intents' thresholds, named after it and its content
    (the same data proposes the same version); None when it would change nothing."""
    own = {name: t.model_dump() for name, t in policy.intent_thresholds.items()}
    for fit in calibration.intents:
        if fit.status == "proposed":
            own[fit.intent] = {
                "min_auto_confidence": fit.thresholds.confidence,
                "min_grounding": fit.thresholds.grounding,
            }
    if own == {name: t.model_dump() for name, t in policy.intent_thresholds.items()}:
        return None
    changed = policy.merged({"intent_thresholds": own})
    body = json.dumps(changed.model_dump(mode="json", exclude={"version"}), sort_keys=True)
    digest = hashlib.sha256(body.encode()).hexdigest()
    return changed.merged({"version": version or f"{policy.version[:44]}+cal-{digest[:8]}"})


def summary(calibration: Calibration) -> str:
    """The proposal's note in the policy store: the target and each proposed intent's
    numbers."""
    c = calibration
    parts = [
        f"calibration proposal (tether calibrate): target precision {c.target} at "
        f"{c.level:.0%}, {c.outcomes} outcomes over {c.days:.1f} days to "
        f"{c.until:%Y-%m-%d %H:%M} UTC, {c.labelled} labelled"
    ]
    for f in c.intents:
        if f.status != "proposed" or f.precision is None:
            continue
        parts.append(
            f"{f.intent}: confidence {f.current.confidence:.2f} -> {f.thresholds.confidence:.2f},"
            f" grounding {f.current.grounding:.2f} -> {f.thresholds.grounding:.2f}, precision "
            f"{f.precision.estimate:.3f} [{f.precision.low:.3f}, {f.precision.high:.3f}] of "
            f"{f.above}, automatic {f.automation.estimate:.1%} [{f.automation.low:.1%}, "
            f"{f.automation.high:.1%}] (was {f.automation_now:.1%}), "
            f"{f.escalations.estimate:.1f} to a person a day (was {f.escalations_now:.1f})"
        )
    return "; ".join(parts)
