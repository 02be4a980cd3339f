"""The incident timeline (`tether incident`, and the events table of `tether report`): what
happened, sorted by time, one event per line. Pure assembly: sources in, sorted events out.

The sources:
- outcomes, each an event, and what a domain's consecutive outcomes show changed: its
  operating mode, its model's fingerprint (derived here, never recorded twice);
- policy activations (tether/policystore.py);
- the conservative overlay's switches, on and off, by an evaluation run or a person
  (tether/overlay.py, kept in the store's overlays table);
- what nothing else keeps (``RECORDED``, in the outcome store's events table): a worker's
  model circuit moving (tether/eventlog.py), and each evaluation run's quality budgets burning
  past their alert rate and its drift alarms (activities/records.py).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from tether.audit import settled_by
from tether.contracts import Outcome
from tether.evaluation import EvaluationInput, EvaluationReport
from tether.text import clean

if TYPE_CHECKING:
    from tether.breaker import State
    from tether.overlay import Overlay
    from tether.policystore import Activation

# At one instant, a cause before what it caused: an activation or a circuit move, then the
# switch it brought, then the outcome that shows it, then what an evaluation made of them,
# then the overlay that evaluation switched.
Kind = Literal[
    "policy_activation",
    "circuit",
    "mode_switch",
    "model_fingerprint",
    "outcome",
    "budget_burn",
    "drift",
    "overlay",
]
KINDS: tuple[Kind, ...] = get_args(Kind)
RECORDED: frozenset[Kind] = frozenset({"circuit", "budget_burn", "drift"})
EVERY_DOMAIN = "-"  # how a line shows an event of no one domain (a worker's model circuit)


class Event(BaseModel):
    """One thing that happened; what the store's events table keeps of the ``RECORDED``."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    kind: Kind
    domain: str | None = Field(default=None, description="None: every domain's")
    summary: str
    detail: dict[str, JsonValue] = {}
    source: str = Field(default="", description="who recorded it, or what it is derived from")


# -- derived from outcomes and activations ----------------------------------------------------


def outcome_event(o: Outcome) -> Event:
    codes = o.decision.codes()
    why = f": {', '.join(codes)}" if codes else ""
    settled = settled_by(o)
    then = f"; {settled}" if settled else ""
    return Event(
        at=o.finished_at,
        kind="outcome",
        domain=o.domain,
        summary=f"{o.request_id} {o.decision.action.value} ({o.mode.value}){why}{then}, "
        f"{o.latency_ms:.0f} ms",
        detail={
            "request_id": o.request_id,
            "workflow_id": o.workflow_id,
            "action": o.decision.action.value,
            "mode": o.mode.value,
            "intent": o.intent,
            "codes": list(codes),
            "policy_version": o.decision.policy_version,
            "fingerprint": o.model.fingerprint if o.model else None,
            "latency_ms": round(o.latency_ms, 1),
        },
        source="outcomes",
    )


def changes(outcomes: Iterable[Outcome]) -> list[Event]:
    """Per domain, over its outcomes by finish time: each change of operating mode, and each
    change of the model's fingerprint (outcomes with no model answer have none, and change
    nothing). Give the outcome before a window with it, so its first outcome is compared too."""
    found: list[Event] = []
    by_domain: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_domain.setdefault(o.domain, []).append(o)
    for domain, mine in by_domain.items():
        mine.sort(key=lambda o: (o.finished_at, o.request_id))
        for previous, o in pairwise(mine):
            if o.mode is not previous.mode:
                found.append(
                    Event(
                        at=o.finished_at,
                        kind="mode_switch",
                        domain=domain,
                        summary=f"mode {previous.mode.value} -> {o.mode.value} "
                        f"(from {o.request_id})",
                        detail={
                            "from": previous.mode.value,
                            "to": o.mode.value,
                            "request_id": o.request_id,
                            "previous_request_id": previous.request_id,
                        },
                        source="outcomes",
                    )
                )
        answered = [o for o in mine if o.model and o.model.fingerprint]
        for previous, o in pairwise(answered):
            assert previous.model and o.model
            if o.model.fingerprint != previous.model.fingerprint:
                found.append(
                    Event(
                        at=o.finished_at,
                        kind="model_fingerprint",
                        domain=domain,
                        summary=f"model fingerprint {previous.model.fingerprint} -> "
                        f"{o.model.fingerprint} ({o.model.model} at {o.model.provider}; "
                        f"from {o.request_id})",
                        detail={
                            "from": previous.model.fingerprint,
                            "to": o.model.fingerprint,
                            "model": o.model.model,
                            "provider": o.model.provider,
                            "previous_model": previous.model.model,
                            "request_id": o.request_id,
                        },
                        source="outcomes",
                    )
                )
    return found


def activation_event(a: Activation) -> Event:
    return Event(
        at=a.at,
        kind="policy_activation",
        domain=a.domain,
        summary=f"policy {a.version} activated by {a.by}, replacing {a.previous or 'none'}: "
        f"{a.reason}",
        detail={
            "version": a.version,
            "previous": a.previous,
            "by": a.by,
            "reason": a.reason,
            "sha256": a.sha256,
        },
        source="policy",
    )


def overlay_events(o: Overlay) -> list[Event]:
    """An overlay's switch on and, once cleared, off: who, why, and the burn behind it."""
    detail: dict[str, JsonValue] = {"id": o.id, "scope": o.scope, "intent": o.intent}
    evidence = o.evidence.model_dump(mode="json") if o.evidence else None
    found = [
        Event(
            at=o.set_at,
            kind="overlay",
            domain=o.domain,
            summary=f"conservative overlay on for {o.scope} (by {o.set_by}): {o.reason}",
            detail={**detail, "to": "on", "by": o.set_by, "reason": o.reason, "evidence": evidence},
            source="overlays",
        )
    ]
    if o.cleared_at is not None:
        found.append(
            Event(
                at=o.cleared_at,
                kind="overlay",
                domain=o.domain,
                summary=f"conservative overlay off for {o.scope} (by {o.cleared_by}): "
                f"{o.clear_reason}",
                detail={**detail, "to": "off", "by": o.cleared_by, "reason": o.clear_reason},
                source="overlays",
            )
        )
    return found


# -- recorded: what nothing else keeps ------------------------------------------------------


def circuit_event(
    old: State,
    new: State,
    *,
    at: datetime,
    source: str,
    name: str = "model",
    endpoint: str = "",
    failures: int | None = None,
    reset_after: float | None = None,
) -> Event:
    """A circuit breaker's move (tether/breaker.py), as its worker saw it."""
    where = f" ({endpoint})" if endpoint else ""
    return Event(
        at=at,
        kind="circuit",
        summary=f"{name} circuit {old} -> {new}{where}",
        detail={
            "breaker": name,
            "from": old,
            "to": new,
            "endpoint": endpoint,
            "failures": failures,
            "reset_after_s": reset_after,
        },
        source=source,
    )


def evaluation_events(
    report: EvaluationReport, inp: EvaluationInput, *, at: datetime, source: str
) -> list[Event]:
    """An evaluation run's alarms: each quality budget burning past its alert rate, each
    drifted signal, and model fingerprints the baseline never saw."""
    window = f"last {inp.since_hours:g} h"
    found = [
        Event(
            at=at,
            kind="budget_burn",
            domain=inp.domain,
            summary=f"quality budget {b.scorer} burning at {b.burn_rate:.1f}x (good "
            f"{b.good_share:.1%}, target {b.target:.1%}, {b.scored} scored, {window})",
            detail={**b.model_dump(mode="json"), "since_hours": inp.since_hours},
            source=source,
        )
        for b in report.budgets
        if b.fired
    ]
    drift = report.drift
    if drift is None:
        return found
    sizes = f"{drift.current_outcomes} outcomes against {drift.baseline_outcomes}"
    for m in drift.metrics:
        if m.fired:
            found.append(
                Event(
                    at=at,
                    kind="drift",
                    domain=inp.domain,
                    summary=f"drift: {m.name} PSI {m.psi:.3f} over {inp.drift.psi_threshold:g} "
                    f"({window}: {sizes})",
                    detail={
                        "signal": m.name,
                        "psi": m.psi,
                        "threshold": inp.drift.psi_threshold,
                        "baseline": dict(m.baseline),
                        "current": dict(m.current),
                        "since_hours": inp.since_hours,
                        "baseline_days": inp.baseline_days,
                    },
                    source=source,
                )
            )
    if drift.fingerprints_new:
        found.append(
            Event(
                at=at,
                kind="drift",
                domain=inp.domain,
                summary=f"drift: model fingerprints the baseline never saw: "
                f"{', '.join(drift.fingerprints_new)} ({window})",
                detail={
                    "signal": "model_fingerprint",
                    "new": list(drift.fingerprints_new),
                    "since_hours": inp.since_hours,
                    "baseline_days": inp.baseline_days,
                },
                source=source,
            )
        )
    return found


# -- the timeline ---------------------------------------------------------------------------


def timeline(
    outcomes: Sequence[Outcome],
    *,
    since: datetime,
    until: datetime,
    before: Sequence[Outcome] = (),
    recorded: Sequence[Event] = (),
    activations: Sequence[Activation] = (),
    overlays: Sequence[Overlay] = (),
    kinds: Collection[Kind] | None = None,
    domain: str | None = None,
) -> list[Event]:
    """Every event in [since, until), of ``kinds`` (default all), of ``domain`` (default all;
    an event of every domain is kept either way), sorted by time. ``before``: each domain's
    last outcome before ``since``, which its first outcome in the window is compared with."""
    found = [
        *map(outcome_event, outcomes),
        *changes([*before, *outcomes]),
        *map(activation_event, activations),
        *(e for o in overlays for e in overlay_events(o)),
        *recorded,
    ]
    kept = [
        e
        for e in found
        if since <= e.at < until
        and (kinds is None or e.kind in kinds)
        and (domain is None or e.domain in (None, domain))
    ]
    return sorted(kept, key=lambda e: (e.at, KINDS.index(e.kind), e.domain or "", e.summary))


def stamp(at: datetime) -> str:
    """``at`` in UTC to the millisecond, ISO 8601: 2026-11-25T12:00:00.250Z."""
    utc = at.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def line(event: Event) -> str:
    """One event as one line of tab-separated fields (time, kind, domain, summary), whatever
    its text holds: tabs and line breaks become spaces, controls and escapes are dropped."""
    domain = EVERY_DOMAIN if event.domain is None else clean(event.domain, 64)
    return f"{stamp(event.at)}\t{event.kind}\t{domain}\t{clean(event.summary, 400)}"


_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def moment(text: str, now: datetime, *, option: str = "--since") -> datetime:
    """A time given as a duration ago (90s, 30m, 2h, 1.5d) or as an ISO 8601 time (UTC unless
    it says otherwise); ValueError with one line naming ``option`` for anything else."""
    given = text.strip()
    ago = _AGO.fullmatch(given)
    try:
        if ago:
            amount = float(ago[1])
            if amount > 0:
                return now - timedelta(**{_UNITS[ago[2]]: amount})
        else:
            at = datetime.fromisoformat(given)
            return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise ValueError(
        f"{option} {text!r}: expected a duration ago (90s, 30m, 2h, 1d) or an ISO 8601 time "
        "(2026-11-25T10:00Z)"
    )
