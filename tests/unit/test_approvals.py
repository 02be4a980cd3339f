"""Who may approve what, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tether.approvals import ReviewRefused, authorise_review
from tether.contracts import PendingApproval, Proposal, Request, Review
from tether.domains.support import POLICY

CONFIG = POLICY
REQUEST = Request(
    request_id="r-1", subject="C-1", requester="lead@northwind.example", text="refund please"
)


def pending(tier: int) -> PendingApproval:
    spec = CONFIG.tiers[tier]
    return PendingApproval(
        tier=tier,
        tier_name=spec.name,
        role=spec.role,
        deadline=datetime(2026, 1, 1, tzinfo=UTC),
        proposal_version=1,
        proposal=Proposal(intent="refund_request", answer="a", citations=[], confidence=0.9),
        findings=[],
        reasons=[],
        citations=[],
    )


@pytest.mark.parametrize(
    ("approver", "verdict", "reason", "tier", "version", "expected"),
    [
        ("manager@northwind.example", "approve", "", 0, None, "support_lead"),
        ("manager@northwind.example", "approve", "", 1, None, "support_manager"),
        ("manager@northwind.example", "approve", "", 0, 1, "support_lead"),
        ("manager@northwind.example", "reject", "not eligible", 1, None, "support_manager"),
        ("stranger@example.com", "approve", "", 0, None, "unknown_approver"),
        ("lead@northwind.example", "approve", "", 0, None, "self_approval"),
        ("agent@northwind.example", "approve", "", 0, None, "insufficient_role"),
        ("manager@northwind.example", "approve", "", 0, 7, "stale_proposal"),
        ("manager@northwind.example", "reject", "", 0, None, "reason_required"),
    ],
)
def test_authorise_review(
    approver: str, verdict: str, reason: str, tier: int, version: int | None, expected: str
) -> None:
    review = Review(approver=approver, verdict=verdict, reason=reason, proposal_version=version)  # type: ignore[arg-type]
    try:
        outcome = authorise_review(review, pending(tier), REQUEST, CONFIG)
    except ReviewRefused as refused:
        outcome = refused.code
    assert outcome == expected


def test_lead_cannot_decide_a_manager_tier() -> None:
    other = REQUEST.model_copy(update={"requester": "C-1"})
    with pytest.raises(ReviewRefused) as refused:
        authorise_review(
            Review(approver="lead@northwind.example", verdict="approve"), pending(1), other, CONFIG
        )
    assert refused.value.code == "insufficient_role"


def test_the_customer_cannot_approve_their_own_request() -> None:
    config = CONFIG.model_copy(
        update={"approvers": {**CONFIG.approvers, "C-1": ["support_manager"]}}
    )
    with pytest.raises(ReviewRefused) as refused:
        authorise_review(Review(approver="C-1", verdict="approve"), pending(0), REQUEST, config)
    assert refused.value.code == "self_approval"


def test_nothing_pending() -> None:
    with pytest.raises(ReviewRefused) as refused:
        authorise_review(
            Review(approver="manager@northwind.example", verdict="approve"), None, REQUEST, CONFIG
        )
    assert refused.value.code == "nothing_pending"


@pytest.mark.parametrize(
    ("approver", "reach"),
    [
        ("lead@northwind.example", 0),
        ("manager@northwind.example", 1),
        ("agent@northwind.example", None),
        ("stranger@example.com", None),
    ],
)
def test_an_approvers_reach_is_their_highest_tier(approver: str, reach: int | None) -> None:
    assert CONFIG.reach(approver) == reach
