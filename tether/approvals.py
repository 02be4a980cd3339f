"""Who may approve what: a pure check shared by the Update validator and the signal path."""

from __future__ import annotations

from tether.config import PolicyConfig
from tether.contracts import PendingApproval, Request, Review


class ReviewRefused(Exception):
    """A review that must not count. ``code`` is stable for tests and operator tools."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def authorise_review(
    review: Review, pending: PendingApproval | None, request: Request, config: PolicyConfig
) -> str:
    """Return the role under which ``review`` counts, or raise ReviewRefused."""
    if pending is None:
        raise ReviewRefused("nothing_pending", "no approval is pending for this request")
    roles = config.approvers.get(review.approver)
    if roles is None:
        raise ReviewRefused("unknown_approver", f"{review.approver} is not a configured approver")
    if review.approver in (request.requester, request.subject):
        raise ReviewRefused("self_approval", f"{review.approver} submitted this request")
    # A tier may be decided by its own role or by any higher tier's role.
    acceptable = [t.role for t in config.tiers[pending.tier :]]
    role = next((r for r in acceptable if r in roles), None)
    if role is None:
        raise ReviewRefused(
            "insufficient_role",
            f"tier {pending.tier_name!r} needs one of {acceptable}; {review.approver} has {roles}",
        )
    if review.proposal_version is not None and review.proposal_version != pending.proposal_version:
        raise ReviewRefused(
            "stale_proposal",
            f"review is for version {review.proposal_version}, pending is {pending.proposal_version}",
        )
    if review.verdict == "reject" and not review.reason:
        raise ReviewRefused("reason_required", "a rejection must say why")
    return role
