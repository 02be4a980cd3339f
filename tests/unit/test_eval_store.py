"""What evaluation keeps, on SQLite and PostgreSQL: later feedback (once), scores, and
versioned datasets (a new version only when the content changes)."""

from __future__ import annotations

from tests.unit.test_drift import NOW, outcome
from tether.contracts import LaterFeedback
from tether.datasets import Case
from tether.store import Store


def test_feedback_scores_and_datasets_round_trip(database_url: str) -> None:
    store = Store(database_url)
    try:
        first, second = outcome(1, grounding=0.9), outcome(2, grounding=0.4)
        store.record_outcome(first)
        complaint = LaterFeedback(request_id=first.request_id, kind="complaint", detail="late")
        assert store.attach_feedback(complaint, NOW) and store.attach_feedback(complaint, NOW)
        assert [f["kind"] for f in store.later(first.request_id)] == ["complaint"]
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
