"""The outcome store on SQLite and on PostgreSQL (127.0.0.1:5432, as CI runs it)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from tether.contracts import (
    Decision,
    DecisionAction,
    FreshnessReport,
    Mode,
    Outcome,
    Reason,
    TallyHold,
)
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


def hold(request_id: str, amount: int = 4_500, subject: str = "C-1") -> TallyHold:
    return TallyHold(
        domain="support",
        name="refunds",
        subject=subject,
        request_id=request_id,
        amount=amount,
        window=timedelta(hours=24),
    )


def test_a_request_is_held_against_what_came_before_it_and_what_was_done(store: Store) -> None:
    now = datetime.now(UTC)
    assert store.hold_tally(hold("a"), now) == 0
    assert store.hold_tally(hold("b"), now + timedelta(seconds=1)) == 4_500  # a came first
    assert store.hold_tally(hold("a", 5_000), now + timedelta(seconds=2)) == 0  # b came after
    assert store.hold_tally(hold("x", 99, subject="C-2"), now) == 0  # another subject's own
    done = outcome("a", followup=False).model_copy(
        update={"tallies": {"refunds": 0}, "tallied": {"refunds": 5_000}}
    )
    store.record_outcome(done)  # a acted: counted for anyone, before or after
    assert store.hold_tally(hold("c"), now + timedelta(seconds=3)) == 5_000 + 4_500
    voided = outcome("b", followup=True).model_copy(
        update={"tallies": {"refunds": 5_000}, "tallied": {"refunds": 0}}
    )
    store.record_outcome(voided)  # b did nothing: it no longer counts
    assert store.hold_tally(hold("d"), now + timedelta(seconds=4)) == 5_000 + 4_500
    later = now + timedelta(days=2)  # two days on, all of it has left the window
    assert store.hold_tally(hold("e"), later) == 0


def test_concurrent_holds_of_one_subject_see_each_other(database_url: str) -> None:
    """Sixteen tickets of one customer at once, each on its own connection: every one sees a
    different total, so no two can both think they are the first."""
    stores = [Store(database_url) for _ in range(4)]
    now = datetime.now(UTC)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            seen = list(
                pool.map(lambda i: stores[i % 4].hold_tally(hold(f"r{i:02d}", 100), now), range(16))
            )
    finally:
        for s in stores:
            s.close()
    assert sorted(seen) == [100 * i for i in range(16)]
