"""Self-protection: which scopes an evaluation run's fast burns switch to the conservative
overlay (tether/overlay.py), and which overlays the run may switch off. Pure: the evaluation
activity reads the store, asks ``plan``, and writes what it says.

Scope. A budget burning fast over an intent's own outcomes (at least ``fast_min_scored`` of
them) switches that intent. A budget burning fast over the whole domain switches the whole
domain, unless the burning intents explain it cleanly: the domain's other outcomes, enough of
them, are within the fast rate. Then only those intents are switched.

Hysteresis. An overlay stays on while its scope burns; each run that finds it burning moves
``last_burning_at``. The run switches it off once its scope has been measured below the fast
rate (enough scores in the short window, and no budget over the rate even on a few) and
``overlay_recovery`` has passed since it last burned. A scope without enough scores stays as
it is: no data is not an all-clear. Only the
runtime's own overlays end this way; a person's waits for a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tether.contracts import Frozen
from tether.evaluation import BudgetStatus, EvaluationConfig, burn
from tether.overlay import TETHER, Burn, BurnEvidence, Overlay

# One scored outcome of the short window: (domain, intent, its scores).
Scored = tuple[str, str | None, dict[str, float]]


class Target(Frozen):
    """A scope a run finds burning fast, and why."""

    domain: str
    intent: str | None
    reason: str
    evidence: BurnEvidence


class Clear(Frozen):
    id: int
    reason: str


class Plan(Frozen):
    switch_on: list[Target] = []
    burning: list[int] = []  # active overlays whose scope still burns
    switch_off: list[Clear] = []


def _fast(rows: Sequence[Scored], config: EvaluationConfig) -> dict[str, BudgetStatus]:
    return {b.scorer: b for b in burn([s for _, _, s in rows], config)}


def _within(status: BudgetStatus | None, config: EvaluationConfig) -> bool:
    """Measured (enough scores) and not burning fast."""
    return (
        status is not None
        and status.fast_scored >= config.fast_min_scored
        and status.fast_burn_rate is not None
        and status.fast_threshold is not None
        and status.fast_burn_rate <= status.fast_threshold
    )


def _evidence(
    statuses: Sequence[BudgetStatus], since: datetime, until: datetime
) -> tuple[str, BurnEvidence]:
    burns = [
        Burn(
            scorer=b.scorer,
            target=b.target,
            scored=b.fast_scored,
            good_share=b.fast_good_share or 0.0,
            burn_rate=b.fast_burn_rate or 0.0,
            threshold=b.fast_threshold or 0.0,
        )
        for b in statuses
    ]
    seconds = (until - since).total_seconds()
    span = f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
    reason = "; ".join(
        f"{b.scorer} burning at {b.burn_rate:g}x (fast rate {b.threshold:g}x, good "
        f"{b.good_share:.0%} of {b.scored}, target {b.target:.1%}) over the last {span}"
        for b in burns
    )
    return reason, BurnEvidence(since=since, until=until, budgets=burns)


def targets(
    recent: Sequence[Scored], config: EvaluationConfig, *, since: datetime, until: datetime
) -> list[Target]:
    """The scopes burning fast in the short window [since, until], narrowest clean scope."""
    found: list[Target] = []
    for domain in sorted({d for d, _, _ in recent}):
        mine = [r for r in recent if r[0] == domain]
        whole = _fast(mine, config)
        intents = sorted({i for _, i, _ in mine if i is not None})
        by_intent = {i: _fast([r for r in mine if r[1] == i], config) for i in intents}
        wide: list[BudgetStatus] = []
        narrow: dict[str, list[BudgetStatus]] = {}
        for name in config.budgets:
            hot = [i for i in intents if name in by_intent[i] and by_intent[i][name].fast_fired]
            rest = _fast([r for r in mine if r[1] not in hot], config).get(name)
            clean = bool(hot) and _within(rest, config)
            if name in whole and whole[name].fast_fired and not clean:
                wide.append(whole[name])
                continue
            for intent in hot:
                narrow.setdefault(intent, []).append(by_intent[intent][name])
        if wide:
            reason, evidence = _evidence(wide, since, until)
            found.append(Target(domain=domain, intent=None, reason=reason, evidence=evidence))
            continue
        for intent, statuses in sorted(narrow.items()):
            reason, evidence = _evidence(statuses, since, until)
            found.append(Target(domain=domain, intent=intent, reason=reason, evidence=evidence))
    return found


def plan(
    active: Sequence[Overlay],
    recent: Sequence[Scored],
    config: EvaluationConfig,
    *,
    since: datetime,
    until: datetime,
) -> Plan:
    """What this run switches, given the overlays on now and the short window's scores."""
    burning: list[int] = []
    off: list[Clear] = []
    for overlay in active:
        rows = [r for r in recent if overlay.covers(r[0], r[1])]
        statuses = _fast(rows, config)
        if any(b.fast_fired for b in statuses.values()):
            burning.append(overlay.id)
            continue
        if overlay.set_by != TETHER:
            continue  # a person's overlay: a person clears it
        last = overlay.last_burning_at or overlay.set_at
        calm = [b for b in statuses.values() if _within(b, config)]
        # Too few to fire, but over the rate: not yet a reason to let writes go.
        over = any(
            b.fast_burn_rate is not None
            and b.fast_threshold is not None
            and b.fast_burn_rate > b.fast_threshold
            for b in statuses.values()
        )
        if calm and not over and until - last >= config.overlay_recovery:
            rates = ", ".join(f"{b.scorer} {b.fast_burn_rate:g}x" for b in calm)
            off.append(
                Clear(
                    id=overlay.id,
                    reason=f"below the fast rate for {config.overlay_recovery} since it last "
                    f"burned at {last:%Y-%m-%d %H:%M:%S} UTC (now {rates})",
                )
            )
    ending = {c.id for c in off}
    staying = [o for o in active if o.id not in ending]
    new = [
        t
        for t in targets(recent, config, since=since, until=until)
        if not any(o.covers(t.domain, t.intent) for o in staying)
    ]
    return Plan(switch_on=new, burning=burning, switch_off=off)
