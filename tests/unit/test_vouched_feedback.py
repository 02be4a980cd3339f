"""Feedback the learning loop counts is vouched for: signed by a reporter the domain's
approver directory holds, over every word of it and the request it names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tests.unit.builders import KEYS, staffed
from tests.unit.test_store import outcome
from tether.contracts import LaterFeedback, Review
from tether.domains.support import PACK
from tether.signing import SignatureRefused, SigningKey, verify_feedback
from tether.store import Store

HELPDESK = "helpdesk"
# A service that reports: a role no tier names, so it can vouch and decide nothing.
CONFIG = staffed(PACK.policy, {**PACK.demo_approvers, HELPDESK: ["reporter"]})
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
ITEM = LaterFeedback(request_id="r-1", kind="complaint", detail="the parcel never came")


def refused(item: LaterFeedback, config=CONFIG, now: datetime = NOW) -> str:  # type: ignore[no-untyped-def]
    try:
        return "vouched by " + verify_feedback(item, config, now)
    except SignatureRefused as refusal:
        return refusal.code


def test_a_reporter_in_the_directory_vouches_and_decides_nothing() -> None:
    assert refused(KEYS[HELPDESK].vouch(ITEM, NOW)) == f"vouched by {HELPDESK}"
    assert CONFIG.reach(HELPDESK) is None


@pytest.mark.parametrize(
    "change",
    [
        {"request_id": "r-2"},  # moved to another customer's request
        {"kind": "confirmation"},
        {"detail": "all fine"},
        {"source": "ledger"},
        {"at": NOW - timedelta(days=1)},
        {"reporter": "manager@northwind.example"},  # claimed for someone else
    ],
)
def test_every_word_is_signed(change: dict[str, object]) -> None:
    signed = KEYS[HELPDESK].vouch(ITEM, NOW)
    assert refused(signed.model_copy(update=change)) in {"bad_signature", "unknown_key"}


def test_a_key_the_directory_does_not_hold_is_unknown() -> None:
    stranger = SigningKey.new(HELPDESK)  # the right name, a key of its own making
    assert refused(stranger.vouch(ITEM, NOW)) == "unknown_key"
    assert refused(KEYS[HELPDESK].vouch(ITEM, NOW), config=PACK.policy) == "unknown_key"


def test_an_approvals_signature_is_not_feedbacks() -> None:
    review = Review(approver=HELPDESK, verdict="approve", reason="ok", proposal_version=1)
    approval = KEYS[HELPDESK].sign(review, "resolution-r-1", NOW)
    assert refused(ITEM.model_copy(update={"reporter": HELPDESK, "signature": approval})) == (
        "bad_signature"
    )


def test_a_revoked_or_old_signature_is_refused() -> None:
    signed = KEYS[HELPDESK].vouch(ITEM, NOW)
    assert refused(signed, now=NOW + CONFIG.signature_ttl + timedelta(seconds=1)) == "expired"
    assert refused(signed, now=NOW - timedelta(minutes=10)) == "expired"  # from a clock ahead
    revoked = CONFIG.merged(
        {
            "approvers": {
                **{k: v.model_dump() for k, v in CONFIG.approvers.items()},
                HELPDESK: {
                    "roles": ["reporter"],
                    "keys": [{"public_key": KEYS[HELPDESK].public_key, "revoked_at": NOW}],
                },
            }
        }
    )
    assert refused(signed, config=revoked) == "revoked_key"


def test_a_reporter_comes_with_a_signature() -> None:
    with pytest.raises(ValidationError, match="reporter and a signature come together"):
        LaterFeedback.model_validate({**ITEM.model_dump(), "reporter": HELPDESK})
    signature = KEYS[HELPDESK].vouch(ITEM, NOW).signature
    with pytest.raises(ValidationError, match="come together"):
        LaterFeedback.model_validate({**ITEM.model_dump(), "signature": signature})


def test_the_loop_hears_what_was_vouched_for_and_once(tmp_path: object) -> None:
    store = Store(f"sqlite:///{tmp_path}/store.db")
    try:
        done = outcome("r-1", followup=False)
        store.record_outcome(done)
        at = done.finished_at + timedelta(minutes=1)
        # Anyone's word: kept on the record, heard by nothing that learns.
        for n in range(20):
            loud = ITEM.model_copy(update={"detail": f"refund was wrong ({n})"})
            assert store.attach_feedback(loud, at)
        assert [f["vouched_by"] for f in store.later("r-1")] == [None]
        assert store.heard("r-1") == []
        # Vouched for: heard, once per reporter however often it is signed again.
        for minutes in range(3):
            signed = KEYS[HELPDESK].vouch(ITEM, NOW + timedelta(minutes=minutes))
            assert store.attach_feedback(signed, at, vouched_by=HELPDESK)
        [heard] = store.heard("r-1")
        assert (heard["kind"], heard["vouched_by"]) == ("complaint", HELPDESK)
        assert len(store.later("r-1")) == 2
    finally:
        store.close()
