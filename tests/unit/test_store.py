"""The outcome store on SQLite and on PostgreSQL (127.0.0.1:5432, as CI runs it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tether.contracts import Decision, DecisionAction, FreshnessReport, Mode, Outcome, Reason
from tether.store import Store


def outcome(request_id: str, *, followup: bool, domain: str = "support") -> Outcome:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    return Outcome(
        domain=domain,
        request_id=request_id,
        workflow_id=f"resolution-{request_id}",
        intent="refund_request",
        decision=Decision(
            action=DecisionAction.REJECT,
            mode=Mode.NORMAL,
            reasons=[Reason(code="amount_exceeds_balance", detail="d")],
            policy_version="p/1",
        ),
        mode=Mode.NORMAL,
        answer="Not processed",
        citations=[],
        proposal=None,
        verification=None,
        freshness=FreshnessReport(index_refreshed_at=now, index_age_seconds=1.0, stale_index=False),
        actions=[],
        reviews=[],
        followup_required=followup,
        model=None,
        started_at=now,
        finished_at=now + timedelta(milliseconds=250),
    )


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    yield s
    s.close()


def test_outcome_round_trip_and_idempotent_rewrite(store: Store) -> None:
    first = outcome("r-1", followup=True)
    store.record_outcome(first)
    store.record_outcome(first)  # a retried activity writes the same row again
    assert store.outcome("r-1") == first
    assert store.open_followups() == [("r-1", "amount_exceeds_balance")]
    store.record_outcome(outcome("r-2", followup=False))
    assert [r for r, _ in store.open_followups()] == ["r-1"]
    assert store.outcome("missing") is None


def test_each_sources_latest_refresh_is_kept_per_domain(store: Store) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    store.record_refresh("support", "kb", t0 + timedelta(days=2), 16, 64)
    store.record_refresh("support", "faq", t0, 3, 9)
    store.record_refresh("support", "kb", t0 + timedelta(days=3), 16, 64)
    store.record_refresh("rooms", "kb", t0, 3, 9)  # another domain's source of the same name
    assert store.refreshes("support") == {"kb": t0 + timedelta(days=3), "faq": t0}
    assert store.refreshes("rooms") == {"kb": t0}


def test_outcomes_are_listed_per_domain(store: Store) -> None:
    store.record_outcome(outcome("r-1", followup=False))
    store.record_outcome(outcome("r-2", followup=False, domain="rooms"))
    start, end = datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)
    assert [o.request_id for o in store.outcomes_between(start, end)] == ["r-1", "r-2"]
    assert [o.request_id for o in store.outcomes_between(start, end, domain="rooms")] == ["r-2"]
