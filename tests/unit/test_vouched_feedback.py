"""Feedback the learning loop counts is vouched for: signed by a reporter the domain's
approver directory holds, over every word of it and the request it names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tests.unit.builders import KEYS, staffed
from tests.unit.test_store import outcome
from tether import errors
from tether.activities.records import RecordActivities
from tether.contracts import LaterFeedback, Review
from tether.domains.support import PACK
from tether.policystore import PolicyStore
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
    ("change", "code"),
    [
        ({"request_id": "r-2"}, "bad_signature"),  # moved to another customer's request
        ({"kind": "confirmation"}, "bad_signature"),
        ({"detail": "all fine"}, "bad_signature"),
        ({"source": "ledger"}, "bad_signature"),
        ({"at": NOW - timedelta(days=1)}, "bad_signature"),
        ({"reporter": "manager@northwind.example"}, "unknown_key"),  # claimed for another
    ],
)
def test_every_word_is_signed(change: dict[str, object], code: str) -> None:
    signed = KEYS[HELPDESK].vouch(ITEM, NOW)
    assert refused(signed.model_copy(update=change)) == code


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


def test_the_worker_vouches_by_the_directory_as_of_arrival(tmp_path: Path) -> None:
    """RecordActivities.attach_feedback as a worker runs it: the domain's active directory,
    the time the feedback arrived (its workflow's start), and nothing kept when refused."""
    url = f"sqlite:///{tmp_path}/store.db"
    store, policies = Store(url), PolicyStore(url)
    try:
        policies.add("support", CONFIG, by="test")
        policies.activate("support", CONFIG.version, by="test", reason="directory")
        done = outcome("r-1", followup=False)
        store.record_outcome(done)
        worker = ActivityEnvironment()
        records = RecordActivities(store, policies)
        signed = KEYS[HELPDESK].vouch(ITEM, NOW)
        # Judged as of its arrival (its workflow's start), not when the activity runs (later).
        late = worker.run(records.attach_feedback, signed, NOW + timedelta(minutes=1))
        assert late == HELPDESK
        [kept] = store.heard("r-1")
        assert (kept["vouched_by"], kept["vouched_key"]) == (HELPDESK, KEYS[HELPDESK].id)
        assert worker.run(records.attach_feedback, ITEM, NOW) is None  # kept, unverified
        assert len(store.later("r-1")) == 2

        old = KEYS[HELPDESK].vouch(ITEM.model_copy(update={"kind": "confirmation"}), NOW)
        for refusal, code in [
            (lambda: worker.run(records.attach_feedback, old, NOW + timedelta(hours=1)), "expired"),
            (lambda: worker.run(RecordActivities(store).attach_feedback, old, NOW), "no_directory"),
        ]:
            with pytest.raises(ApplicationError) as refused_here:
                refusal()
            assert refused_here.value.type == errors.FEEDBACK_REFUSED
            assert refused_here.value.details == (code,)
        assert len(store.later("r-1")) == 2  # nothing of the refused kept
        stranger = KEYS[HELPDESK].vouch(ITEM.model_copy(update={"request_id": "nobody"}), NOW)
        with pytest.raises(ApplicationError, match="no outcome for request nobody"):
            worker.run(records.attach_feedback, stranger, NOW)
    finally:
        store.close()
        policies.close()
