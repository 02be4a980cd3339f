"""The support domain pack is consistent with itself and with the workflow's constants."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tether.contracts import (
    Evidence,
    Facts,
    FreshnessReport,
    Passage,
    Proposal,
    Request,
    ToolCall,
)
from tether.domains.support import INTENTS, PACK
from tether.domains.support.checks import reply_tells_the_truth
from tether.domains.support.money import amounts_in
from tether.domains.support.tools import REGISTRY
from tether.knowledge import load_directory
from tether.localmodel import load_intents


def test_intent_names_match_the_examples_file() -> None:
    intents = load_intents(PACK.intents_file)
    assert tuple(i.name for i in intents) == INTENTS
    for intent in intents:
        assert len(intent.examples) >= 10, intent.name
        assert all(tool in REGISTRY for tool in intent.plan), intent.name


def test_knowledge_base_has_provenance_and_one_superseded_policy() -> None:
    documents = load_directory(Path(str(PACK.knowledge[0].location)), fetched_at=datetime.now(UTC))
    assert len(documents) >= 15
    superseded = [meta for meta, _ in documents if meta.status == "superseded"]
    assert [m.doc_id for m in superseded] == ["refund-policy-v2"]
    assert superseded[0].superseded_by == "refund-policy"
    for meta, chunks in documents:
        assert chunks, meta.doc_id
        assert all(c.payload["doc_id"] == meta.doc_id and c.payload["content_hash"] for c in chunks)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Please refund $40 for the headlamp", ["40.00 USD"]),
        ("refund 5000 dollars now", ["5,000.00 USD"]),
        ("I want 2400 EUR back", ["2,400.00 EUR"]),
        ("€12.50 and £3", ["12.50 EUR", "3.00 GBP"]),
        ("USD 40, or $1,234.50", ["40.00 USD", "1,234.50 USD"]),
        ("refund -500", ["-500.00 ?"]),
        ("refund -$30", ["-30.00 USD"]),
        ("give me 1e9", ["1,000,000,000.00 ?"]),
        ("$40 USD", ["40.00 USD"]),  # read once
        ("ORD-1002 within 5 to 10 business days", []),  # ids and counts are no money
        ("USD500, not USD 5", ["500.00 USD", "5.00 USD"]),
        ("\uff04\uff15\uff10\uff10 please", ["500.00 USD"]),  # full-width
        ("50000 cents or 99\u00a2", ["500.00 USD", "0.99 USD"]),
        (
            "$1.5k, 2 million euros, 3bn GBP",
            ["1,500.00 USD", "2,000,000.00 EUR", "3,000,000,000.00 GBP"],
        ),
        ("100,00 \u20ac and 1.000,50 \u20ac", ["100.00 EUR", "1,000.50 EUR"]),
        ("five hundred dollars", ["500.00 USD"]),
        ("a thousand euros, twenty-five bucks", ["1,000.00 EUR", "25.00 USD"]),
        ("one hundred and ten pounds", ["110.00 GBP"]),
        ("minus fifty dollars", ["-50.00 USD"]),
        ("3 m tall, a dog and two cats", []),  # a scale or a count without money is no money
        # Idioms are no amounts; a letter is a scale only right after the digits.
        ("not a cent back, not a dollar, my two cents", []),
        ("$20 M&S voucher, $40 m., $5m", ["20.00 USD", "40.00 USD", "5,000,000.00 USD"]),
        ("5 hundred dollars", ["500.00 USD"]),
        # Groups of a thousands chain are read from its first; other numbers stand apart.
        (
            "1 500 dollars, 3 40 dollars, ORD-1001 100 dollars",
            ["1,500.00 USD", "40.00 USD", "100.00 USD"],
        ),
    ],
)
def test_amounts_are_read_in_every_spelling(text: str, named: list[str]) -> None:
    assert [str(a) for a in amounts_in(text)] == named


def reply_facts(body: str, *, refund: int | None = None) -> Facts:
    passage = Passage(
        passage_id="p1",
        doc_id="d",
        title="t",
        source="kb",
        version=1,
        effective_date=date(2026, 1, 1),
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        fetched_at=datetime(2026, 1, 1, tzinfo=UTC),
        content_hash="h",
        text="Refunds of up to $50.00 are issued automatically once the request is confirmed.",
        score=0.9,
    )
    calls = [ToolCall(tool="send_reply", arguments={"customer_id": "C-1", "body": body})]
    if refund:
        calls.insert(
            0,
            ToolCall(
                tool="issue_refund",
                arguments={"order_id": "ORD-1234", "amount_cents": refund, "reason": "r"},
            ),
        )
    return Facts(
        domain="support",
        request=Request(request_id="r", subject="C-1", requester="C-1", text="refund ORD-1234"),
        evidence=Evidence(
            query="q",
            passages=[passage],
            freshness=FreshnessReport(
                index_refreshed_at=None, index_age_seconds=None, stale_index=False
            ),
        ),
        proposal=Proposal(
            intent="refund_request", answer="a", citations=["p1"], tool_calls=calls, confidence=0.9
        ),
    )


@pytest.mark.parametrize(
    ("body", "refund", "codes"),
    [
        # copied from the cited source: its amounts and words are the source's
        (
            "Refunds of up to $50.00 are issued automatically once the request is confirmed.",
            None,
            [],
        ),
        ("We refunded $40.00 to your card.", 4_000, []),
        (
            "A refund of $5,000.00 has been approved.",
            None,
            ["reply_names_unplanned_amount", "reply_claims_unplanned_refund"],
        ),
        ("Your refund has been processed.", None, ["reply_claims_unplanned_refund"]),
        ("We refunded $45.00 to your card.", 4_000, ["reply_names_unplanned_amount"]),
        # The same lie in the spellings a model or an approver's edit might use.
        ("We refunded USD500 to your card.", 4_000, ["reply_names_unplanned_amount"]),
        (
            "We refunded \uff04\uff15\uff10\uff10 to your card.",
            4_000,
            ["reply_names_unplanned_amount"],
        ),
        ("We refunded 50000 cents to your card.", 4_000, ["reply_names_unplanned_amount"]),
        ("We refunded 1k dollars to your card.", 4_000, ["reply_names_unplanned_amount"]),
        ("We refunded five hundred dollars.", 4_000, ["reply_names_unplanned_amount"]),
        ("We refunded forty dollars to your card.", 4_000, []),
        ("We refunded 4000 cents to your card.", 4_000, []),
        ("We refunded $40.00. You will not be charged a cent in fees.", 4_000, []),
    ],
)
def test_a_reply_says_only_what_the_plan_does_and_the_sources_say(
    body: str, refund: int | None, codes: list[str]
) -> None:
    found = [f.code for f in reply_tells_the_truth(reply_facts(body, refund=refund))]
    assert found == codes


def test_a_refund_asked_in_digits_comes_before_one_in_words() -> None:
    from tether.domains.support.money import named_cents

    assert named_cents("I run the one dollar store; refund $40 on ORD-1003") == [4_000, 100]


def test_an_order_id_is_written_in_ascii_digits() -> None:
    """Full-width or Arabic-Indic digits look like an order id and are none: not found in the
    text, refused by the tool's contract (a business system that folded them would read
    another record)."""
    from pydantic import ValidationError

    from tether.domains.support import PACK
    from tether.domains.support.tools import IssueRefundArgs

    for odd in ("ORD-\uff11\uff10\uff10\uff13", "ORD-\u0661\u0660\u0660\u0663"):
        assert PACK.reference("order").find(f"refund {odd} please") == []
        with pytest.raises(ValidationError):
            IssueRefundArgs(order_id=odd, amount_cents=4_000, reason="x")
