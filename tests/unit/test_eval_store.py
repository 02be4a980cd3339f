"""What evaluation keeps, on SQLite and PostgreSQL: later feedback (once), scores, and
versioned datasets (a new version only when the content changes)."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.test_drift import NOW, outcome
from tether.contracts import LaterFeedback
from tether.datasets import Case
from tether.db import utc
from tether.store import Store


def test_feedback_scores_and_datasets_round_trip(database_url: str) -> None:
    store = Store(database_url)
    try:
        first, second = outcome(1, grounding=0.9), outcome(2, grounding=0.4)
        store.record_outcome(first)
        complaint = LaterFeedback(request_id=first.request_id, kind="complaint", detail="late")
        assert store.attach_feedback(complaint, NOW) and store.attach_feedback(complaint, NOW)
        assert [f["kind"] for f in store.later(first.request_id)] == ["complaint"]
        # Said fifty times in other words, dated before the outcome or in the future: once,
        # and when it happened kept between the outcome and now.
        for n in range(50):
            again = complaint.model_copy(update={"detail": f"late, said again ({n})"})
            assert store.attach_feedback(again, NOW)
        backdated = LaterFeedback(
            request_id=first.request_id,
            kind="clawback",
            detail="reversed",
            source="ledger",
            at=first.finished_at - timedelta(days=3650),
        )
        assert store.attach_feedback(backdated, NOW)
        assert store.attach_feedback(
            backdated.model_copy(update={"kind": "reversal", "at": NOW + timedelta(days=3650)}),
            NOW,
        )
        later = store.later(first.request_id)
        assert [f["kind"] for f in later].count("complaint") == 1
        assert all(first.finished_at <= utc(f["at"]) <= NOW for f in later), later
        unknown = complaint.model_copy(update={"request_id": "nobody"})
        assert not store.attach_feedback(unknown, NOW)

        store.record_scores({first.request_id: {"grounded": 1.0}}, NOW)
        store.record_scores({first.request_id: {"grounded": 0.0}}, NOW)  # re-evaluated
        assert store.scores(first.request_id) == {"grounded": 0.0}

        assert store.save_dataset("slow", [Case(outcome=first)], NOW) == 1
        assert store.save_dataset("slow", [Case(outcome=first)], NOW) == 1  # unchanged
        assert store.save_dataset("slow", [Case(outcome=first), Case(outcome=second)], NOW) == 2
        version, cases = store.dataset("slow")
        assert version == 2 and [c.request_id for c in cases] == [
            first.request_id,
            second.request_id,
        ]
        assert [c.request_id for c in store.dataset("slow", 1)[1]] == [first.request_id]
        assert [(d["name"], d["version"], d["cases"]) for d in store.datasets()] == [
            ("slow", 1, 1),
            ("slow", 2, 2),
        ]
    finally:
        store.close()
