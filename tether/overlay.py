"""The conservative overlay: how a domain (or one intent of it) runs while its quality budget
burns fast. Writes wait for a person; nothing else changes.

It is not a policy version and never replaces the one a workflow pinned: ``apply`` only ever
makes a decision stricter. An automatic decision whose plan writes becomes an approval at the
lowest tier (or a reject, when nobody could approve it); approvals, rejects and degraded
decisions pass unchanged, and so does an automatic answer that writes nothing (it changes no
record, and the budgets keep scoring it). A workflow reads the overlay at its decision point
through a local activity, so the read is in its history and replays as it was.

The evaluation run switches it on and off (tether/protection.py decides, the store keeps every
switch with its evidence); a person can set or clear it (`tether overlay`).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from tether.contracts import DOMAIN, Decision, DecisionAction, Frozen, Mode, Reason

TETHER = "tether"  # who set an overlay the evaluation run switched on
CODE = "overlay_conservative"


def scope(domain: str, intent: str | None) -> str:
    """``domain`` for the whole domain, ``domain/intent`` for one intent of it."""
    return domain if intent is None else f"{domain}/{intent}"


class Burn(Frozen):
    """One budget's fast burn, as the switch saw it."""

    scorer: str
    target: float
    scored: int
    good_share: float
    burn_rate: float
    threshold: float


class BurnEvidence(Frozen):
    """Why the runtime switched: the short window and the budgets burning in it."""

    since: datetime
    until: datetime
    budgets: list[Burn]


class Overlay(Frozen):
    """One switch to the conservative overlay, as the store keeps it (active while
    ``cleared_at`` is None)."""

    id: int
    domain: str = Field(pattern=DOMAIN)
    intent: str | None = Field(default=None, description="None: the whole domain")
    set_at: datetime
    set_by: str
    reason: str
    evidence: BurnEvidence | None = Field(default=None, description="None: set by a person")
    # The last evaluation run that found its scope still burning (hysteresis counts from it).
    last_burning_at: datetime | None = None
    cleared_at: datetime | None = None
    cleared_by: str | None = None
    clear_reason: str | None = None

    @property
    def scope(self) -> str:
        return scope(self.domain, self.intent)

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    def covers(self, domain: str, intent: str | None) -> bool:
        return self.domain == domain and self.intent in (None, intent)


class OverlayQuery(Frozen):
    """Which overlay governs a decision in ``domain`` on a proposal of ``intent``?"""

    domain: str
    intent: str | None = None


class OverlaySwitch(Frozen):
    """An overlay an evaluation run switched on, or off."""

    on: bool
    overlay: Overlay


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
