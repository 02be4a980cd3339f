"""The conservative overlay: how a domain (or one intent of it) runs while its quality budget
burns fast. Writes wait for a person; nothing else changes.

It is not a policy version and never replaces the one a workflow pinned: ``apply`` only ever
makes a decision stricter. An automatic decision whose plan writes becomes an approval at the
lowest tier (or a reject, when nobody could approve it); approvals, rejects and degraded
decisions pass unchanged, and so does an automatic answer that writes nothing (it changes no
record, and the budgets keep scoring it). A workflow has the domain's overlays as they were
when it pinned its policy (the pin is in its history); a decision later than the policy's
``overlay_pinned_for`` (30 s) after the pin reads them again through a local activity (a
marker in its history). Either way a replay sees what the run saw. The evaluation run that
switches an overlay runs every few minutes; a request decides within a second of its pin
unless its model call waited in line.

The evaluation run switches it on and off (tether/protection.py decides, the store keeps every
switch with its evidence); a person can set or clear it (`tether overlay`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tether.contracts import (  # the records themselves are contracts: a pin carries them
    Burn,
    BurnEvidence,
    Decision,
    DecisionAction,
    Frozen,
    Mode,
    Overlay,
    Reason,
    scope,
)

__all__ = [
    "CODE",
    "TETHER",
    "Burn",
    "BurnEvidence",
    "Overlay",
    "OverlayQuery",
    "OverlaySwitch",
    "apply",
    "governing",
    "scope",
    "unreadable",
]

TETHER = "tether"  # who set an overlay the evaluation run switched on
CODE = "overlay_conservative"


class OverlayQuery(Frozen):
    """Which overlay governs a decision in ``domain`` on a proposal of ``intent``?"""

    domain: str
    intent: str | None = None


class OverlaySwitch(Frozen):
    """An overlay an evaluation run switched on, or off."""

    on: bool
    overlay: Overlay


def governing(overlays: Sequence[Overlay], domain: str, intent: str | None) -> Overlay | None:
    """Of the overlays on, the one that governs ``intent`` in ``domain``: the whole domain's,
    else the intent's own."""
    covering = [o for o in overlays if o.active and o.covers(domain, intent)]
    return min(covering, key=lambda o: o.intent is not None, default=None)


def unreadable(domain: str, intent: str | None, at: datetime, why: str) -> Overlay:
    """What a decision assumes when the overlay cannot be read: that one is on."""
    return Overlay(
        id=0,
        domain=domain,
        intent=intent,
        set_at=at,
        set_by=TETHER,
        reason=f"the overlay could not be read ({why})"[:500],
    )


def apply(
    decision: Decision, overlay: Overlay | None, *, writes: bool, approvable: bool = True
) -> Decision:
    """``decision`` under ``overlay``: never looser. Only an automatic decision whose plan
    writes changes: to an approval at the lowest tier, or, when nobody could approve one
    (``approvable`` False, as policy refuses such approvals), to a reject."""
    if overlay is None or not writes or decision.action is not DecisionAction.AUTO:
        return decision
    detail = (
        f"{overlay.scope} runs under the conservative overlay since "
        f"{overlay.set_at:%Y-%m-%d %H:%M:%S} UTC (set by {overlay.set_by}: {overlay.reason}); "
        "writes wait for a person"
    )
    why = Reason(code=CODE, detail=detail[:1000])
    if not approvable:
        nobody = Reason(code="no_approver", detail="nobody with a live key decides the first tier")
        return decision.model_copy(
            update={
                "action": DecisionAction.REJECT,
                "tier": None,
                "mode": Mode.READ_ONLY,
                "reasons": [why, nobody],
            }
        )
    return decision.model_copy(
        update={
            "action": DecisionAction.APPROVAL,
            "tier": 0,
            "mode": Mode.READ_ONLY,
            "reasons": [why, *decision.reasons],
        }
    )
