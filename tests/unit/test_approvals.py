"""Who may approve what, table-driven; and what a signature proves (tether/signing.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.builders import KEYS, staffed
from tether.approvals import ReviewRefused, authorise_review
from tether.config import PolicyConfig
from tether.contracts import Edit, PendingApproval, Proposal, Request, Review, ToolCall
from tether.domains.support import PACK
from tether.signing import SigningKey

CONFIG = staffed(PACK.policy, {**PACK.demo_approvers, "C-1": ["support_manager"]})
REQUEST = Request(
    request_id="r-1", subject="C-1", requester="lead@northwind.example", text="refund please"
)
WORKFLOW = "resolution-r-1"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
MANAGER = "manager@northwind.example"


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


def signed(
    message: Review | Edit,
    key: SigningKey | None = None,
    *,
    workflow: str = WORKFLOW,
    at: datetime = NOW,
) -> Review | Edit:
    key = key or KEYS[message.approver]
    return message.model_copy(update={"signature": key.sign(message, workflow, at)})


def authorise(
    message: Review | Edit,
    tier: int = 0,
    *,
    request: Request = REQUEST,
    config: PolicyConfig = CONFIG,
    now: datetime = NOW,
) -> str:
    try:
        return authorise_review(
            message, pending(tier), request, config, workflow_id=WORKFLOW, now=now
        )
    except ReviewRefused as refused:
        return refused.code


@pytest.mark.parametrize(
    ("approver", "verdict", "reason", "tier", "version", "expected"),
    [
        (MANAGER, "approve", "", 0, 1, "support_lead"),
        (MANAGER, "approve", "", 1, 1, "support_manager"),
        (MANAGER, "reject", "not eligible", 1, 1, "support_manager"),
        ("lead@northwind.example", "approve", "", 0, 1, "self_approval"),
        ("agent@northwind.example", "approve", "", 0, 1, "insufficient_role"),
        (MANAGER, "approve", "", 0, 7, "stale_proposal"),
        (MANAGER, "approve", "", 0, None, "stale_proposal"),  # a signed review names its version
        (MANAGER, "reject", "", 0, 1, "reason_required"),
    ],
)
def test_authorise_review(
    approver: str, verdict: str, reason: str, tier: int, version: int | None, expected: str
) -> None:
    review = Review(approver=approver, verdict=verdict, reason=reason, proposal_version=version)  # type: ignore[arg-type]
    assert authorise(signed(review), tier) == expected


def test_a_stranger_is_unknown_whatever_they_sign() -> None:
    stranger = SigningKey.new("stranger@example.com")
    review = Review(approver="stranger@example.com", verdict="approve", proposal_version=1)
    assert authorise(signed(review, stranger)) == "unknown_approver"


def test_lead_cannot_decide_a_manager_tier() -> None:
    other = REQUEST.model_copy(update={"requester": "C-1"})
    review = Review(approver="lead@northwind.example", verdict="approve", proposal_version=1)
    assert authorise(signed(review), 1, request=other) == "insufficient_role"


def test_the_subject_cannot_approve_their_own_request() -> None:
    review = Review(approver="C-1", verdict="approve", proposal_version=1)
    assert authorise(signed(review)) == "self_approval"


def test_nothing_pending() -> None:
    with pytest.raises(ReviewRefused) as refused:
        authorise_review(
            Review(approver=MANAGER, verdict="approve"),
            None,
            REQUEST,
            CONFIG,
            workflow_id=WORKFLOW,
            now=NOW,
        )
    assert refused.value.code == "nothing_pending"


@pytest.mark.parametrize(
    ("approver", "reach"),
    [
        ("lead@northwind.example", 0),
        (MANAGER, 1),
        ("agent@northwind.example", None),
        ("stranger@example.com", None),
    ],
)
def test_an_approvers_reach_is_their_highest_tier(approver: str, reach: int | None) -> None:
    assert CONFIG.reach(approver) == reach


# --- signatures ------------------------------------------------------------------------

REVIEW = Review(approver=MANAGER, verdict="approve", reason="ok", proposal_version=1)
EDIT = Edit(
    approver=MANAGER,
    reason="smaller",
    proposal_version=1,
    tool_calls=[ToolCall(tool="issue_refund", arguments={"amount_cents": 1000})],
)


def test_a_signed_review_and_a_signed_edit_count() -> None:
    assert authorise(signed(REVIEW)) == "support_lead"
    assert authorise(signed(EDIT)) == "support_lead"


def test_an_unsigned_review_is_refused() -> None:
    assert authorise(REVIEW) == "unsigned"


def test_another_approvers_key_is_unknown_for_this_one() -> None:
    lead = KEYS["lead@northwind.example"]
    forged = SigningKey(MANAGER, lead.private)  # the lead's key, claiming the manager
    assert authorise(signed(REVIEW, forged)) == "unknown_key"
    assert authorise(signed(REVIEW, SigningKey.new(MANAGER))) == "unknown_key"


@pytest.mark.parametrize(
    "tamper",
    [
        {"verdict": "reject", "reason": "no"},
        {"reason": "a different reason"},
        {"approver": "lead@northwind.example"},  # re-addressed: now the key is not theirs
    ],
)
def test_a_changed_review_breaks_its_signature(tamper: dict[str, str]) -> None:
    changed = signed(REVIEW).model_copy(update=tamper)
    assert authorise(changed) in ("bad_signature", "unknown_key")


def test_a_tampered_edit_breaks_its_signature() -> None:
    good = signed(EDIT)
    more = [ToolCall(tool="issue_refund", arguments={"amount_cents": 99_000})]
    assert authorise(good.model_copy(update={"tool_calls": more})) == "bad_signature"
    assert authorise(good.model_copy(update={"answer": "we refunded you"})) == "bad_signature"


def test_a_review_signature_does_not_pass_as_an_edit() -> None:
    signature = signed(REVIEW).signature
    as_edit = EDIT.model_copy(update={"reason": REVIEW.reason, "signature": signature})
    assert authorise(as_edit) == "bad_signature"


def test_a_signature_for_another_workflow_is_refused() -> None:
    assert authorise(signed(REVIEW, workflow="resolution-r-2")) == "bad_signature"


@pytest.mark.parametrize(
    ("signed_at", "expected"),
    [
        (NOW - timedelta(minutes=14), "support_lead"),
        (NOW - timedelta(minutes=16), "expired"),  # older than signature_ttl
        (NOW + timedelta(minutes=1), "support_lead"),  # a clock a little ahead
        (NOW + timedelta(minutes=10), "expired"),  # signed "in the future"
    ],
)
def test_a_signature_counts_for_a_while(signed_at: datetime, expected: str) -> None:
    assert authorise(signed(REVIEW, at=signed_at)) == expected


def test_a_revoked_key_is_refused_and_a_rotated_one_works() -> None:
    old, new = KEYS[MANAGER], SigningKey.new(MANAGER)
    entry = CONFIG.approvers[MANAGER]
    rotated = CONFIG.merged(
        {
            "approvers": {
                **{k: v.model_dump() for k, v in CONFIG.approvers.items()},
                MANAGER: {
                    "roles": entry.roles,
                    "keys": [
                        {"public_key": old.public_key, "revoked_at": NOW - timedelta(minutes=1)},
                        {"public_key": new.public_key},
                    ],
                },
            }
        }
    )
    assert authorise(signed(REVIEW, old), config=rotated) == "revoked_key"
    assert authorise(signed(REVIEW, new), config=rotated) == "support_lead"
    # Backdating the signature does not help: revocation is judged on the workflow's clock.
    backdated = signed(REVIEW, old, at=NOW - timedelta(minutes=5))
    assert authorise(backdated, config=rotated) == "revoked_key"


def test_nobody_can_decide_without_a_directory_of_keys() -> None:
    assert CONFIG.can_decide(1)
    assert not PACK.policy.can_decide(0)  # the pack ships no approvers
    roles_only = PACK.policy.merged({"approvers": {MANAGER: ["support_manager"]}})
    assert not roles_only.can_decide(0)  # a person without a key signs nothing


def test_a_key_file_round_trips_and_refuses_garbage(tmp_path: object) -> None:
    from pathlib import Path

    from tether.signing import KeyFileError, keyring

    path = Path(str(tmp_path)) / "m.key"
    KEYS[MANAGER].save(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert SigningKey.load(path).public_key == KEYS[MANAGER].public_key
    with pytest.raises(FileExistsError):
        KEYS[MANAGER].save(path)  # never over an existing key
    path.write_text("{not json")
    with pytest.raises(KeyFileError):
        SigningKey.load(path)
    KEYS[MANAGER].save(path.with_name("manager.key"))
    held = keyring(path.parent)  # the broken file is skipped, the others still sign
    assert list(held) == [MANAGER] and held[MANAGER].id == KEYS[MANAGER].id
    # A link to a key file moved away (a rotation half done): skipped the same way.
    path.with_name("gone.key").symlink_to(path.with_name("nowhere.key"))
    assert list(keyring(path.parent)) == [MANAGER]


def test_a_clock_ahead_is_told_so() -> None:
    """A signer whose clock runs ahead is told that, not that their signature is old."""
    review = signed(REVIEW, at=NOW + timedelta(minutes=10))
    with pytest.raises(ReviewRefused, match="clock runs ahead"):
        authorise_review(review, pending(0), REQUEST, CONFIG, workflow_id=WORKFLOW, now=NOW)


def test_a_signature_binds_the_proposal_it_was_shown() -> None:
    """A verdict signed over the hash of the proposal shown counts only while that proposal
    is pending: a run started again under the same id, with another proposal at the same
    version, is not approved by it. A hash stripped or swapped breaks the signature."""
    from tether.signing import proposal_digest

    shown = pending(0).proposal
    other = shown.model_copy(update={"answer": "another refund, to someone else"})
    for_shown = signed(REVIEW.model_copy(update={"proposal_sha256": proposal_digest(shown)}))
    assert authorise(for_shown) == "support_lead"
    for_other = signed(REVIEW.model_copy(update={"proposal_sha256": proposal_digest(other)}))
    assert authorise(for_other) == "stale_proposal"
    stripped = for_shown.model_copy(update={"proposal_sha256": None})
    assert authorise(stripped) == "bad_signature"
    swapped = for_other.model_copy(update={"proposal_sha256": proposal_digest(shown)})
    assert authorise(swapped) == "bad_signature"


def test_a_run_started_today_takes_no_signature_without_the_proposal() -> None:
    """Without a hash the signature names only a version, which another run reuses: a run
    under governed-2026-12-07-signed refuses it; older runs (replayed as recorded) take it."""
    bare = signed(REVIEW)
    assert authorise(bare) == "support_lead"
    with pytest.raises(ReviewRefused) as refused:
        authorise_review(
            bare, pending(0), REQUEST, CONFIG, workflow_id=WORKFLOW, now=NOW, require_digest=True
        )
    assert refused.value.code == "unsigned_proposal"


def test_an_approver_never_approves_a_request_of_theirs_under_another_id() -> None:
    """An approver who is also a requester under another id (an employee id beside the name
    they approve under) lists it in the directory; a request of theirs is not theirs to
    approve under either."""
    directory = {k: v.model_dump() for k, v in CONFIG.approvers.items()}
    directory[MANAGER]["subjects"] = ["C-1"]
    knows = CONFIG.merged({"approvers": directory})
    assert authorise(signed(REVIEW), config=knows) == "self_approval"
    other = REQUEST.model_copy(update={"subject": "C-2", "requester": "C-2"})
    assert authorise(signed(REVIEW), config=knows, request=other) == "support_lead"
