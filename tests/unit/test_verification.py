"""The verifier's grounding, claim by claim: what a model glues onto a grounded sentence is
scored on its own, and a part quoted word for word from a cited source is grounded in it; the
request's intent read again from the request alone."""

from __future__ import annotations

from datetime import date

import pytest

from tests.unit.builders import FRESH, NOW, REPLY, refund
from tether.activities.verification import VerificationActivities, unplanned_writes
from tether.contracts import (
    Evidence,
    Facts,
    Passage,
    Proposal,
    Request,
    ToolCall,
    Verification,
    VerifyInput,
)
from tether.domains.support import PACK
from tether.embeddings import Embedder
from tether.intents import Reading
from tether.text import split_claims

SOURCE = (
    "Refunds are returned to the original payment method within 5 to 10 business days after "
    "the refund is issued. Weekends and public holidays do not count as business days; a "
    "confirmation email is sent when a refund is issued."
)
PASSAGE = Passage(
    passage_id="refund-processing-times#0",
    doc_id="refund-processing-times",
    title="Refund processing times",
    source="kb",
    version=2,
    effective_date=date(2026, 3, 1),
    updated_at=NOW,
    fetched_at=NOW,
    content_hash="h",
    text=SOURCE,
    score=0.8,
)
GROUNDED = SOURCE.split(". ")[0] + "."
FALSE = "Your account has been upgraded to premium status for free"


def verify(
    embedder: Embedder,
    answer: str,
    *,
    text: str = "How long?",
    intent: str = "refund_request",
    calls: list[ToolCall] | None = None,
) -> Verification:
    request = Request(request_id="r-1", subject="C-1", requester="C-1", text=text)
    proposal = Proposal(
        intent=intent,
        answer=answer,
        citations=[PASSAGE.passage_id],
        tool_calls=calls or [],
        confidence=0.9,
    )
    verified = VerificationActivities(embedder, [PACK]).verify_proposal(
        VerifyInput(
            domain="support",
            request=request,
            evidence=Evidence(query="q", passages=[PASSAGE], freshness=FRESH),
            proposal=proposal,
        )
    )
    return verified


def grounding(embedder: Embedder, answer: str) -> float:
    return verify(embedder, answer).grounding


@pytest.mark.parametrize(
    "glue",
    [" ", "", "\n", "; ", "\u3002", "! "],
    ids=["space", "none", "newline", "semicolon", "cjk", "bang"],
)
def test_a_claim_glued_to_a_grounded_sentence_is_scored_on_its_own(
    embedder: Embedder, glue: str
) -> None:
    assert grounding(embedder, GROUNDED) == 1.0
    assert grounding(embedder, GROUNDED + glue + FALSE + ".") == 0.5


def test_parts_quoted_from_a_cited_source_are_grounded(embedder: Embedder) -> None:
    """The source's own semicolon makes two claims of one sentence: each is its words."""
    second = SOURCE.split(". ", 1)[1]
    assert split_claims(second) == [
        "Weekends and public holidays do not count as business days",
        "a confirmation email is sent when a refund is issued.",
    ]
    assert grounding(embedder, second) == 1.0


def test_numbers_and_lower_case_after_a_stop_are_not_cut() -> None:
    said = "Refunds of $1.50 on 2.5.2026 (see example.com/Refunds) arrive in U.S.A.-based banks."
    assert split_claims(said) == [said]


def test_the_verifier_reads_the_requests_intent_whatever_the_proposal_names(
    embedder: Embedder,
) -> None:
    """Read from the request alone, as the local model reads it: a proposal naming another
    intent is noted (info: the gate, not the verifier, decides what that changes)."""
    text = "Where is my parcel? It has not arrived yet."
    named = verify(embedder, GROUNDED, text=text, intent="order_status")
    assert named.intent == "order_status"
    assert "intent_disagrees" not in [f.code for f in named.findings]
    other = verify(embedder, GROUNDED, text=text, intent="refund_request")
    assert other.intent == "order_status"
    [note] = [f for f in other.findings if f.code == "intent_disagrees"]
    assert note.severity == "info"
    assert note.detail == "the request reads as order_status; the proposal names refund_request"
    assert not other.blocking


def test_a_write_proposed_twice_alike_is_refused(embedder: Embedder) -> None:
    """Each step has its own idempotency key, so the same write twice would run twice (a
    prompt-injected model asked for eight restarts, all allowed). No plan needs it."""
    text = "Please refund my order ORD-1234, it arrived broken."
    twice = verify(embedder, GROUNDED, text=text, calls=[refund(4000), REPLY, refund(4000)])
    [found] = [f for f in twice.findings if f.code == "repeated_write"]
    assert found.severity == "block" and found.about == "arguments"
    assert found.detail == "issue_refund is proposed more than once with the same arguments"
    # The same arguments in another order, or text that differs only in case, blanks or a
    # closing stop, are the same write.
    spelt = ToolCall(tool="issue_refund", arguments=dict(reversed(refund(4000).arguments.items())))
    again = verify(embedder, GROUNDED, text=text, calls=[refund(4000), spelt])
    assert "repeated_write" in [f.code for f in again.findings]
    loud = REPLY.model_copy(update={"arguments": {**REPLY.arguments, "body": " HELLO. "}})
    twice = verify(embedder, GROUNDED, text=text, calls=[REPLY, loud])
    assert "repeated_write" in [f.code for f in twice.findings]
    # Two different writes, or one, are a plan.
    for calls in ([refund(4000), refund(2000)], [refund(4000), REPLY]):
        assert "repeated_write" not in [
            f.code for f in verify(embedder, GROUNDED, text=text, calls=calls).findings
        ]


def test_a_write_the_requests_intent_has_no_plan_for_goes_to_a_person(embedder: Embedder) -> None:
    """The verifier reads the request's intent from the request alone: a write that intent's
    plan does not name (a refund for "where is my parcel?") is a person's to look at,
    whatever intent the proposal names. The local model plans from the intent it reads, so
    this bites on another model (a hostile review found a question answered with restarts)."""
    parcel = "Where is my parcel? It has not arrived yet."
    for named in ("order_status", "refund_request"):
        refunds = verify(embedder, GROUNDED, text=parcel, intent=named, calls=[refund(4000)])
        [found] = [f for f in refunds.findings if f.code == "write_not_planned"]
        assert (found.severity, found.about) == ("warn", "arguments")
        assert found.detail == "the request reads as order_status, whose plan names no issue_refund"
    replies = verify(embedder, GROUNDED, text=parcel, intent="order_status", calls=[REPLY])
    assert "write_not_planned" not in [f.code for f in replies.findings]
    asked = "Please refund my order ORD-1234, it arrived broken."
    planned = verify(embedder, GROUNDED, text=asked, calls=[refund(4000), REPLY])
    assert planned.intent == "refund_request"
    assert "write_not_planned" not in [f.code for f in planned.findings]


def test_on_a_near_tie_a_write_both_readings_plan_is_planned() -> None:
    """Two intents read nearly as well are both what the request may be: a write needs both
    plans (a question that reads nearly as well as a restart is not a restart)."""
    request = Request(request_id="r-1", subject="C-1", requester="C-1", text="Refund it")

    def findings(read: Reading | None, intent: str = "refund_request") -> list[str]:
        proposal = Proposal(
            intent=intent, answer="a", citations=[], tool_calls=[refund(4000)], confidence=0.9
        )
        facts = Facts(
            domain="support",
            request=request,
            evidence=Evidence(query="q", passages=[], freshness=FRESH),
            proposal=proposal,
        )
        return [f.code for f in unplanned_writes(PACK, facts, read)]

    def reading(best: str, runner_up: str, margin: float) -> Reading:
        return Reading(intent=best, best=0.62, second=0.62 - margin, runner_up=runner_up)

    assert findings(reading("refund_request", "order_status", 0.10)) == []
    assert findings(reading("refund_request", "order_status", 0.02)) == ["write_not_planned"]
    assert findings(reading("order_status", "refund_request", 0.02)) == ["write_not_planned"]
    assert findings(reading("order_status", "refund_request", 0.10)) == ["write_not_planned"]
    assert findings(None) == []
