"""Properties of the trust seam, over generated input: a review or an edit of any shape is
either refused with a named code or counts only when a live key of its approver signed exactly
it; policy files of any shape parse or fail with a ValidationError, and a stored version's
hash does not depend on how its content was written."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.unit.test_approvals import CONFIG, KEYS, MANAGER, NOW, WORKFLOW, pending
from tether.approvals import ReviewRefused, authorise_review
from tether.config import PolicyConfig
from tether.contracts import Edit, Request, Review, Signature, ToolCall
from tether.domains.support import PACK
from tether.policystore import content_hash
from tether.signing import SigningKey

CODES = {
    "unsigned",
    "unknown_key",
    "bad_signature",
    "expired",
    "revoked_key",
    "unknown_approver",
    "self_approval",
    "insufficient_role",
    "stale_proposal",
    "reason_required",
}
# The subject, C-1, is in the directory too: their own signed approval is self_approval.
REQUEST = Request(request_id="r-1", subject="C-1", requester="C-1", text="refund please")
PEOPLE = [*sorted(CONFIG.approvers), "stranger@example.com"]
text = st.text(max_size=60)


def signatures() -> st.SearchStrategy[Signature | None]:
    forged = st.builds(
        Signature,
        key_id=st.sampled_from([k.id for k in KEYS.values()])
        | st.from_regex(r"[0-9a-f]{16}", fullmatch=True),
        signed_at=st.datetimes(timezones=st.just(UTC)),  # naive ones: refused by the contract
        value=st.binary(min_size=64, max_size=64).map(lambda b: base64.b64encode(b).decode()),
    )
    return st.none() | forged


@st.composite
def messages(draw: st.DrawFn) -> Review | Edit:
    approver = draw(st.sampled_from(PEOPLE))
    version = draw(st.none() | st.integers(0, 3))
    if draw(st.booleans()):
        message: Review | Edit = Review(
            approver=approver,
            verdict=draw(st.sampled_from(["approve", "reject"])),
            reason=draw(text),
            proposal_version=version,
        )
    else:
        message = Edit(
            approver=approver,
            reason=draw(text.filter(lambda t: t.strip())),
            proposal_version=version,
            answer=draw(st.none() | text.filter(bool)),
            tool_calls=[
                ToolCall(
                    tool="issue_refund",
                    arguments={"amount_cents": draw(st.integers(-(10**9), 10**9))},
                )
            ],
        )
    how = draw(st.sampled_from(["forged", "signed", "signed_then_changed", "signed_elsewhere"]))
    if how == "forged":
        return message.model_copy(update={"signature": draw(signatures())})
    key = KEYS.get(approver) or SigningKey.new(approver)
    at = NOW - timedelta(seconds=draw(st.integers(-600, 3_600)))
    workflow = WORKFLOW if how != "signed_elsewhere" else "resolution-other"
    signed = message.model_copy(update={"signature": key.sign(message, workflow, at)})
    if how == "signed_then_changed":
        return signed.model_copy(update={"reason": signed.reason + "!"})
    return signed


@given(messages(), st.integers(0, 1))
def test_a_verdict_counts_only_when_its_approver_signed_exactly_it(
    message: Review | Edit, tier: int
) -> None:
    try:
        role = authorise_review(
            message, pending(tier), REQUEST, CONFIG, workflow_id=WORKFLOW, now=NOW
        )
    except ReviewRefused as refused:
        assert refused.code in CODES
        return
    # Counted: then it was signed, here, lately, by a key the directory gives its approver,
    # for the version pending, and the approver holds a role for the tier.
    sig = message.signature
    assert sig is not None and message.proposal_version == 1
    owner = CONFIG.key(sig.key_id)
    assert owner is not None and owner[0] == message.approver != REQUEST.subject
    assert timedelta(minutes=-2) <= NOW - sig.signed_at <= CONFIG.signature_ttl
    assert role in CONFIG.approvers[message.approver].roles
    assert KEYS[message.approver].sign(message, WORKFLOW, sig.signed_at) == sig


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=8,
)
FIELDS = list(PolicyConfig.model_fields)


@given(
    st.dictionaries(st.sampled_from(FIELDS) | text, json_values, max_size=6),
    st.dictionaries(
        st.sampled_from(PEOPLE) | text, json_values | st.lists(text, max_size=3), max_size=3
    ),
)
def test_a_policy_file_parses_or_names_its_problems(fields: dict[str, Any], people: Any) -> None:
    try:
        policy = PACK.policy.merged({**fields, "approvers": people})
    except ValidationError:
        return
    # Parsed: it means one thing, whatever the spelling, and nobody without a key decides.
    again = PolicyConfig.model_validate_json(policy.model_dump_json())
    assert content_hash(again) == content_hash(policy)
    if all(not entry.keys for entry in policy.approvers.values()):
        assert not any(policy.can_decide(t) for t in range(len(policy.tiers)))


NAIVE = st.datetimes().map(lambda d: d.isoformat())  # no zone: would not compare with now


@given(
    st.dictionaries(text, json_values, max_size=6)
    | json_values
    | st.fixed_dictionaries(
        {"key_id": st.just("0" * 16), "signed_at": NAIVE, "value": st.just("A" * 86 + "==")}
    )
)
def test_any_message_is_a_review_or_a_validation_error(message: Any) -> None:
    for model in (Review, Edit, Signature):
        with contextlib.suppress(ValidationError):
            parsed = model.model_validate(message)
            if isinstance(parsed, Signature):
                assert parsed.signed_at.tzinfo is not None


def test_the_verdict_property_sees_both_outcomes() -> None:
    """The generator reaches counted verdicts too (else the property above proves little)."""
    review = Review(approver=MANAGER, verdict="approve", proposal_version=1)
    signed = review.model_copy(update={"signature": KEYS[MANAGER].sign(review, WORKFLOW, NOW)})
    assert authorise_review(signed, pending(0), REQUEST, CONFIG, workflow_id=WORKFLOW, now=NOW)
