"""Who may approve what: a pure check shared by the Update validator and the signal path."""

from __future__ import annotations

from datetime import datetime

from tether.config import PolicyConfig
from tether.contracts import Edit, PendingApproval, Request, Review
from tether.signing import SignatureRefused, proposal_digest, verify


class ReviewRefused(Exception):
    """A review that must not count. ``code`` is stable for tests and operator tools."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def authorise_review(
    review: Review | Edit,
    pending: PendingApproval | None,
    request: Request,
    config: PolicyConfig,
    *,
    workflow_id: str,
    now: datetime,
    require_digest: bool = False,
) -> str:
    """Return the role under which ``review`` (or an edit, an approval) counts, or raise
    ReviewRefused. The approver is who the signature proves, checked against the pinned
    directory; the name in the message alone proves nothing. What they signed must be the
    proposal pending: its version, and its hash (``require_digest``: a run started since
    2026-12-07 takes no signature without one)."""
    if pending is None:
        raise ReviewRefused("nothing_pending", "no approval is pending for this request")
    entry = config.approvers.get(review.approver)
    if entry is None:
        raise ReviewRefused("unknown_approver", f"{review.approver} is not a configured approver")
    try:
        verify(review, config, workflow_id, now)
    except SignatureRefused as refused:
        raise ReviewRefused(refused.code, refused.detail) from None
    roles = entry.roles
    if {request.requester, request.subject} & {review.approver, *entry.subjects}:
        raise ReviewRefused("self_approval", f"{review.approver} submitted this request")
    # A tier may be decided by its own role or by any higher tier's role.
    acceptable = [t.role for t in config.tiers[pending.tier :]]
    role = next((r for r in acceptable if r in roles), None)
    if role is None:
        raise ReviewRefused(
            "insufficient_role",
            f"tier {pending.tier_name!r} needs one of {acceptable}; {review.approver} has {roles}",
        )
    if review.proposal_version != pending.proposal_version:  # what was signed is what was seen
        raise ReviewRefused(
            "stale_proposal",
            f"review is for version {review.proposal_version}, pending is {pending.proposal_version}",
        )
    if review.proposal_sha256 is None:
        if require_digest:
            raise ReviewRefused(
                "unsigned_proposal",
                "the signature names no proposal: sign the one you were shown "
                "(tether approvals and the console do)",
            )
    elif review.proposal_sha256 != proposal_digest(pending.proposal):
        raise ReviewRefused(
            "stale_proposal",
            "signed for another proposal than the one pending (it changed since it was shown)",
        )
    if isinstance(review, Review) and review.verdict == "reject" and not review.reason:
        raise ReviewRefused("reason_required", "a rejection must say why")
    return role
