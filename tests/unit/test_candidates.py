"""A live candidate: which requests it samples, its record against live decisions and people,
and its start, stop and history in the policy store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tether import candidates
from tether.config import Settings
from tether.contracts import (
    Decision,
    DecisionAction,
    EditRecord,
    FreshnessReport,
    LiveCandidate,
    Mode,
    Outcome,
    Proposal,
    ReviewRecord,
    ShadowDecision,
)
from tether.domains.support import PACK
from tether.policystore import CandidateRunning, NoCandidate, NoSuchVersion, PolicyStore

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
AUTO, APPROVAL, REJECT = DecisionAction.AUTO, DecisionAction.APPROVAL, DecisionAction.REJECT


def candidate(share: float = 0.25, name: str = "next") -> LiveCandidate:
    return LiveCandidate(name=name, policy_version="v2", share=share)


def test_a_share_samples_that_share_and_the_same_requests_every_time() -> None:
    ids = [f"r-{i}" for i in range(20_000)]
    chosen = [i for i in ids if candidates.selected(i, candidate(0.25))]
    assert 0.23 < len(chosen) / len(ids) < 0.27
    assert chosen == [i for i in ids if candidates.selected(i, candidate(0.25))]
    other = {i for i in ids if candidates.selected(i, candidate(0.25, name="other"))}
    assert 0.2 < len(other & set(chosen)) / len(chosen) < 0.3  # independent samples
    assert all(candidates.selected(i, candidate(1.0)) for i in ids[:1000])


@pytest.mark.parametrize("share", [0, -0.1, 1.5, float("nan")])
def test_a_share_outside_0_to_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError):
        candidate(share)


def outcome(rid: str, action: DecisionAction, **changes: object) -> Outcome:
    made = Outcome(
        domain="support",
        request_id=rid,
        workflow_id=f"w-{rid}",
        intent="x",
        decision=Decision(action=action, mode=Mode.NORMAL, reasons=[], policy_version="v1"),
        mode=Mode.NORMAL,
        answer="a",
        citations=[],
        proposal=None,
        verification=None,
        freshness=FreshnessReport(index_refreshed_at=NOW, index_age_seconds=1, stale_index=False),
        actions=[],
        reviews=[],
        followup_required=False,
        model=None,
        started_at=NOW,
        finished_at=NOW,
    )
    return made.model_copy(update=changes)


def shadow(rid: str, action: DecisionAction) -> ShadowDecision:
    return ShadowDecision(
        request_id=rid,
        domain="support",
        candidate="next",
        policy_version="v2",
        action=action,
        mode=Mode.NORMAL,
        reasons=["r"],
        intent="x",
        grounding=1.0,
        confidence=0.9,
        at=NOW,
    )


def review(verdict: str) -> ReviewRecord:
    return ReviewRecord(approver="a", verdict=verdict, reason="", tier=0, at=NOW)  # type: ignore[arg-type]


def test_agreement_with_live_and_with_people() -> None:
    p = Proposal(intent="x", answer="a", citations=[], confidence=0.9)
    edit = EditRecord(approver="a", reason="r", tier=0, original=p, edited=p, at=NOW)
    outcomes = {
        "same": outcome("same", AUTO),
        "approved": outcome("approved", APPROVAL, reviews=[review("approve")]),
        "rejected": outcome("rejected", APPROVAL, reviews=[review("reject")]),
        "edited": outcome("edited", APPROVAL, edits=[edit]),
        "complained": outcome("complained", AUTO),
    }
    later = {"complained": [{"kind": "complaint"}], "same": [{"kind": "confirmation"}]}
    shadows = [
        shadow("same", AUTO),  # agrees with live; people confirmed: agrees
        shadow("approved", AUTO),  # people approved: acting agrees with them
        shadow("rejected", AUTO),  # people rejected: acting alone disagrees
        shadow("edited", APPROVAL),  # asking a person defers: agrees
        shadow("complained", REJECT),  # it was wrong: refusing agrees
        shadow("running", AUTO),  # no live outcome yet: not compared
    ]
    report = candidates.status("support", candidate(), shadows, outcomes, later)
    assert (report.shadowed, report.compared, report.agree_live) == (6, 5, 2)  # same, edited
    assert (report.judged, report.agree_people) == (5, 4)
    assert report.agree_people_share == 0.8
    assert {d.request_id for d in report.disagreements} == {"approved", "rejected", "complained"}
    rejected = next(d for d in report.disagreements if d.request_id == "rejected")
    assert rejected.people == "not_as_proposed" and rejected.candidate == "auto/normal"
    assert report.candidate_actions == {"auto": 4, "approval": 1, "reject": 1}


def test_nothing_to_compare_says_so() -> None:
    report = candidates.status("support", candidate(), [], {}, {})
    assert report.agree_live_share is None and report.agree_people_share is None


@pytest.fixture
def policies(database_url: str) -> PolicyStore:
    store = PolicyStore(database_url)
    store.add("support", PACK.policy, by="ops")
    store.add("support", PACK.policy.model_copy(update={"version": "v2"}), by="ops")
    return store


def test_one_candidate_at_a_time_and_every_run_on_the_record(policies: PolicyStore) -> None:
    assert policies.candidate("support") is None
    policies.start_candidate("support", candidate(), by="carol")
    assert policies.candidate("support") == candidate()
    with pytest.raises(CandidateRunning, match="stop or promote"):
        policies.start_candidate("support", candidate(name="other"), by="dan")
    assert policies.stop_candidate("support", by="dan") == candidate()
    assert policies.candidate("support") is None
    with pytest.raises(NoCandidate):
        policies.stop_candidate("support", by="dan")
    with pytest.raises(NoSuchVersion):
        missing = LiveCandidate(name="x", policy_version="nope", share=0.5)
        policies.start_candidate("support", missing, by="carol")
    [run] = policies.candidate_runs("support")
    assert (run["started_by"], run["stopped_by"], run["outcome"]) == ("carol", "dan", "stopped")
    assert run["stopped_at"] >= run["started_at"]


def test_simultaneous_starts_run_one_candidate(policies: PolicyStore) -> None:
    """Six operators start a candidate at once: the database lets one run, the others are
    told which one runs."""
    barrier = threading.Barrier(6)
    refused: list[str] = []

    def start(n: int) -> None:
        barrier.wait()
        try:
            policies.start_candidate("support", candidate(name=f"c{n}"), by=f"op{n}")
        except CandidateRunning as error:
            refused.append(str(error))

    threads = [threading.Thread(target=start, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    running = policies.candidate("support")
    assert running is not None and len(refused) == 5
    assert all(f"already runs candidate {running.name}" in r for r in refused)
    assert len(policies.candidate_runs("support")) == 1


def test_a_shadow_worker_needs_its_queue_and_a_compute_queue(tmp_path: Path) -> None:
    """`tether worker --role shadow` says what is missing, each in one line, before it
    builds a worker."""
    from tether.errors import ConfigurationError
    from tether.workers.main import Resources, workers_for

    res = Resources.build(Settings(data_dir=tmp_path, domains=["support"]))
    try:
        with pytest.raises(ConfigurationError) as refused:
            workers_for(None, res, "shadow")  # type: ignore[arg-type]  # never reached
        assert refused.value.problems == [
            "--role shadow serves TETHER_SHADOW_QUEUE: set it",
            "--role shadow runs no verification: set TETHER_COMPUTE_QUEUE and run a --role "
            "compute worker on it",
        ]
    finally:
        asyncio.run(res.close())
