"""Evidence-aware proposal reuse (tether/reuse.py) and its store, on SQLite and PostgreSQL:
what matches, what may be kept, who may take it, and what makes it stale."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from tether import reuse
from tether.contracts import (
    ContextRecord,
    Decision,
    DecisionAction,
    EditRecord,
    Evidence,
    Finding,
    FreshnessReport,
    LaterFeedback,
    Mode,
    ModelIdentity,
    Outcome,
    Passage,
    Proposal,
    Request,
    ReuseQuery,
    ReviewRecord,
    ToolCall,
    Verification,
)
from tether.store import Store

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
MODEL = ModelIdentity(provider="local", model="m", fingerprint="f1")


def passage(pid: str, *, version: int = 1, digest: str = "h1") -> Passage:
    return Passage(
        passage_id=pid,
        doc_id=pid.split("#")[0],
        title="t",
        source="kb",
        version=version,
        effective_date=date(2026, 1, 1),
        updated_at=NOW,
        fetched_at=NOW,
        content_hash=digest,
        text="Standard delivery takes three to five working days.",
        score=0.8,
    )


def evidence(*passages: Passage) -> Evidence:
    fresh = FreshnessReport(index_refreshed_at=NOW, index_age_seconds=1.0, stale_index=False)
    return Evidence(query="q", passages=list(passages), freshness=fresh)


def request(rid: str, text: str = "How long does delivery take?", subject: str = "S-1") -> Request:
    return Request(request_id=rid, subject=subject, requester=subject, text=text)


def proposal(*, calls: bool = False) -> Proposal:
    return Proposal(
        intent="faq",
        answer="Three to five working days.",
        citations=["kb-1#0"],
        tool_calls=[ToolCall(tool="do_it", arguments={"amount": 5})] if calls else [],
        confidence=0.9,
    )


def outcome(
    rid: str,
    *,
    key: str | None = "k",
    calls: bool = False,
    action: DecisionAction = DecisionAction.AUTO,
    subject: str = "S-1",
    **changes: object,
) -> Outcome:
    made = Outcome(
        domain="d",
        request_id=rid,
        workflow_id=f"w-{rid}",
        intent="faq",
        decision=Decision(action=action, mode=Mode.NORMAL, reasons=[], policy_version="p/1"),
        mode=Mode.NORMAL,
        answer="Three to five working days.",
        citations=["kb-1#0"],
        proposal=proposal(calls=calls),
        verification=Verification(grounding=1.0, sentences=1),
        freshness=evidence().freshness,
        actions=[],
        reviews=[],
        evidence=evidence(passage("kb-1#0"), passage("kb-2#0")),
        request=request(rid, subject=subject),
        followup_required=False,
        model=MODEL,
        reuse_key=key,
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=1),
    )
    return made.model_copy(update=changes)


# --- matching ------------------------------------------------------------------------


def test_a_match_ignores_case_spacing_width_and_punctuation_at_word_ends() -> None:
    same = [
        "How long does delivery take?",
        "  how LONG does\tdelivery take ",
        "How long does delivery take??!",
        "\uff28\uff4f\uff57 long does delivery take?",  # full-width letters (NFKC)
    ]
    assert len({reuse.normalise(t) for t in same}) == 1
    assert reuse.normalise("Where is ORD-1001?") == "where is ord-1001"  # an id keeps its hyphen
    assert reuse.normalise("take 5") != reuse.normalise("take 6")


def test_the_default_key_changes_with_the_records_read() -> None:
    a = ContextRecord(kind="acct", id="A-1", data={"balance": 5}, text="x", owner="S-1")
    b = a.model_copy(update={"data": {"balance": 6}})
    q = request("r1")
    assert reuse.default_key(q, [a]) == reuse.default_key(
        request("r2", "how long does delivery take"), [a]
    )
    assert reuse.default_key(q, [a]) != reuse.default_key(q, [b])
    assert reuse.default_key(q, [a]) != reuse.default_key(q, [])
    assert reuse.default_key(request("r3", "?!?"), []) is None  # nothing left to match on


def test_the_stored_key_separates_domains_and_model_queues() -> None:
    keys = {
        reuse.key_for("d", "q", "m"),
        reuse.key_for("e", "q", "m"),
        reuse.key_for("d", "q-candidate", "m"),
    }
    assert len(keys) == 3


# --- what is kept --------------------------------------------------------------------


def test_a_proposal_that_stood_is_kept_with_the_passages_it_cited() -> None:
    entry = reuse.keepable(outcome("r1"), "k")
    assert entry is not None and entry.scope == reuse.ANY_SUBJECT
    assert [c.passage_id for c in entry.cited] == ["kb-1#0"]  # not kb-2, which it did not cite
    with_calls = reuse.keepable(outcome("r2", calls=True), "k")
    assert with_calls is not None and with_calls.scope == "S-1"  # its own subject only


@pytest.mark.parametrize(
    "changes",
    [
        {
            "decision": Decision(
                action=DecisionAction.REJECT, mode=Mode.NORMAL, reasons=[], policy_version="p"
            )
        },
        {"mode": Mode.HUMAN_DRAFT},
        {
            "verification": Verification(
                grounding=0.1,
                sentences=1,
                findings=[Finding(code="ungrounded", severity="block", detail="x")],
            )
        },
        {"verification": None},
        {"reviews": [ReviewRecord(approver="a", verdict="reject", reason="no", tier=0, at=NOW)]},
        {"reused_from": "r0"},
        {"proposal": None},
    ],
    ids=["rejected", "human_draft", "blocked", "unverified", "turned_down", "reused", "none"],
)
def test_a_proposal_that_did_not_stand_is_not_kept(changes: dict[str, object]) -> None:
    assert reuse.keepable(outcome("r1", **changes), "k") is None


def test_an_edited_proposal_is_not_kept() -> None:
    edit = EditRecord(
        approver="a", reason="fix", original=proposal(), edited=proposal(calls=True), at=NOW, tier=0
    )
    assert reuse.keepable(outcome("r1", edits=[edit]), "k") is None


def test_a_changed_cited_passage_makes_it_stale() -> None:
    entry = reuse.keepable(outcome("r1"), "k")
    assert entry is not None
    assert reuse.stale(entry, evidence(passage("kb-1#0"))) is None
    assert "changed" in (reuse.stale(entry, evidence(passage("kb-1#0", version=2))) or "")
    assert "changed" in (reuse.stale(entry, evidence(passage("kb-1#0", digest="h2"))) or "")
    assert "not in the evidence" in (reuse.stale(entry, evidence(passage("kb-2#0"))) or "")


# --- the store -----------------------------------------------------------------------


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    yield s
    s.close()


def query(
    subject: str = "S-1", *passages: Passage, max_age: timedelta = timedelta(hours=1)
) -> ReuseQuery:
    return ReuseQuery(
        domain="d",
        key="k",
        subject=subject,
        evidence=evidence(*(passages or (passage("kb-1#0"),))),
        max_age=max_age,
    )


def test_a_kept_answer_is_found_by_any_subject_while_its_evidence_stands(store: Store) -> None:
    assert store.reusable(query(), NOW) == (None, "miss")
    store.record_outcome(outcome("r1"))
    found, why = store.reusable(query("S-2"), NOW + timedelta(minutes=5))
    assert why == "hit" and found is not None
    assert (found.request_id, found.proposal, found.model) == ("r1", proposal(), MODEL)
    changed = query("S-2", passage("kb-1#0", version=2))
    assert store.reusable(changed, NOW)[0] is None
    assert store.reusable(query(max_age=timedelta(minutes=1)), NOW + timedelta(hours=2)) == (
        None,
        "expired",
    )


def test_a_plan_with_calls_is_found_by_its_own_subject_only(store: Store) -> None:
    store.record_outcome(outcome("r1", calls=True))
    assert store.reusable(query("S-2"), NOW)[0] is None
    found, _ = store.reusable(query("S-1"), NOW)
    assert found is not None and found.proposal.tool_calls


def test_an_outcome_without_a_key_keeps_nothing(store: Store) -> None:
    store.record_outcome(outcome("r1", key=None))
    assert store.reusable(query(), NOW) == (None, "miss")


def test_the_newest_proposal_replaces_the_older_one(store: Store) -> None:
    store.record_outcome(outcome("r1"))
    store.record_outcome(outcome("r2"))
    found, _ = store.reusable(query(), NOW)
    assert found is not None and found.request_id == "r2"


def test_feedback_that_says_it_was_wrong_forgets_it(store: Store) -> None:
    store.record_outcome(outcome("r1"))
    confirmed = LaterFeedback(request_id="r1", kind="confirmation", detail="fine")
    assert store.attach_feedback(confirmed, NOW)
    assert store.reusable(query(), NOW)[0] is not None
    wrong = LaterFeedback(request_id="r1", kind="complaint", detail="it took two weeks")
    assert store.attach_feedback(wrong, NOW)
    assert store.reusable(query(), NOW) == (None, "miss")


def test_a_reused_proposal_a_person_turned_down_is_forgotten(store: Store) -> None:
    store.record_outcome(outcome("r1"))
    turned_down = ReviewRecord(approver="a", verdict="reject", reason="wrong", tier=0, at=NOW)
    store.record_outcome(
        outcome("r2", reused_from="r1", action=DecisionAction.APPROVAL, reviews=[turned_down])
    )
    assert store.reusable(query(), NOW) == (None, "miss")
