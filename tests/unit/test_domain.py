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
from tether.intents import load_intents
from tether.knowledge import load_directory


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
        # Other currencies by code or name: never taken for dollars.
        ("5000 CAD, CHF 5000, 5000 yen", ["5,000.00 CAD", "5,000.00 CHF", "5,000.00 JPY"]),
        ("5000 U.S. dollars", ["5,000.00 USD"]),
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
        # Said as a model writes it: a typographic apostrophe, a bare number, an invisible
        # hyphen or space, a sentence glued on with no space or with a semicolon.
        (
            "We\u2019ve refunded 159.00 to your card.",
            None,
            ["reply_names_unplanned_amount", "reply_claims_unplanned_refund"],
        ),
        ("You have been refunded in full.", None, ["reply_claims_unplanned_refund"]),
        ("Your refund went through today.", None, ["reply_claims_unplanned_refund"]),
        ("Refund complete.", None, ["reply_claims_unplanned_refund"]),
        ("The refund's been processed.", None, ["reply_claims_unplanned_refund"]),
        ("We have re\u00adfunded your order.", None, ["reply_claims_unplanned_refund"]),
        ("We refunded $5\u200b000 to your card.", 4_000, ["reply_names_unplanned_amount"]),
        ("We refunded 5000 to your card.", 4_000, ["reply_names_unplanned_amount"]),
        ("We refunded 40 EUR to your card.", 4_000, ["reply_names_unplanned_amount"]),
        (
            "Refunds of up to $50.00 are issued automatically once the request is confirmed."
            "We refunded $500.00.",
            4_000,
            ["reply_names_unplanned_amount"],
        ),
        ("Thanks; we have refunded $500.00.", 4_000, ["reply_names_unplanned_amount"]),
        # A cited amount said to be what was refunded: only the plan's amount was.
        ("We refunded $50.00 to your card.", 4_000, ["reply_names_unplanned_amount"]),
        # Beside the amount refunded, a cited one and a count of days may stand.
        ("We refunded $40.00 of the $50.00; it reaches you in 5 to 10 business days.", 4_000, []),
        ("We refunded 40.00 to your card.", 4_000, []),
        # What will happen, or how refunds work, is no claim that one was made.
        ("Your refund will be issued once a lead approves it.", None, []),
        ("Refunds are processed within 5 business days.", None, []),
        # Nor what was not done, a question, or a request sent on.
        ("Your order has not been refunded yet: it is outside the window.", None, []),
        ("I'm sorry, but we have not refunded this order.", None, []),
        ("Have you been refunded for the earlier return?", None, []),
        ("Your refund request was sent to a support lead for review.", None, []),
        ("Please send a photo, and once that's done we will review it.", None, []),
        # Beside a refund made, counts, dates, order numbers and ranges are no amounts.
        ("Your refund of $40 has been issued and arrives in 5 to 10 business days.", 4_000, []),
        ("We have refunded $40 for 1 of the 2 headlamps on your order.", 4_000, []),
        ("Your refund of $40 for order #1234 was issued on November 25.", 4_000, []),
        # A claim however it is put, and a bare sum wherever it can only be the sum refunded.
        ("Your refund is on its way to your card.", None, ["reply_claims_unplanned_refund"]),
        ("Your refund\nhas been processed.", None, ["reply_claims_unplanned_refund"]),
        (
            "You will see the refund: it has been processed.",
            None,
            ["reply_claims_unplanned_refund"],
        ),
        ("Your r\u0435fund has been issued.", None, ["reply_claims_unplanned_refund"]),
        ("We have ref\u057dnded your order.", None, ["reply_claims_unplanned_refund"]),
        ("We have refu\u0578ded your order.", None, ["reply_claims_unplanned_refund"]),
        # Look-alikes from any script Unicode's confusables name: Cherokee, Lisu, Latin small
        # capitals, a Coptic gamma, a dotless i.
        ("We have \u13a1efun\ua4d2ed your order.", None, ["reply_claims_unplanned_refund"]),
        ("Your \u2c85efund has been \u0131ssued.", None, ["reply_claims_unplanned_refund"]),
        ("We have ref\u1d1cnded your order.", None, ["reply_claims_unplanned_refund"]),
        # Another script's digits are the number they say, not look-alike letters.
        ("We have refunded $\u0967\u0966\u0966.", 100, ["reply_names_unplanned_amount"]),
        ("We have refunded $\u0967\u0966\u0966.", 10_000, []),
        ("We have refunded $\u09ea\u09e6.", 800, ["reply_names_unplanned_amount"]),
        ("We have refunded 5000.", 4_000, ["reply_names_unplanned_amount"]),
        ("Your refund has been issued: 159.", 4_000, ["reply_names_unplanned_amount"]),
        # A negation or a question in another clause or line hides no claim.
        (
            "Sorry it didn't arrive, so we have refunded your order in full.",
            None,
            ["reply_claims_unplanned_refund"],
        ),
        (
            "We have refunded your order in full\nAnything else I can help with?",
            None,
            ["reply_claims_unplanned_refund"],
        ),
        ("Thanks for waiting\nRefund issued", None, ["reply_claims_unplanned_refund"]),
        (
            "Good news: a refund of $5,000.00 for ORD-1002 has been approved and sent.",
            None,
            ["reply_names_unplanned_amount", "reply_claims_unplanned_refund"],
        ),
        ("No worries we have refunded your order.", None, ["reply_claims_unplanned_refund"]),
        # And no claim where its own clause says otherwise.
        ("No refund has been issued.", None, []),
        ("Once your return has been processed, a refund will follow.", None, []),
        (
            "The refund you asked about cannot be made, but your replacement has been sent.",
            None,
            [],
        ),
    ],
)
def test_a_reply_says_only_what_the_plan_does_and_the_sources_say(
    body: str, refund: int | None, codes: list[str]
) -> None:
    found = [f.code for f in reply_tells_the_truth(reply_facts(body, refund=refund))]
    assert found == codes


def test_the_answer_is_checked_like_a_reply() -> None:
    """With no reply planned the answer is still what the requester reads: the same lie in it
    is found, and said once when a reply carries the answer."""
    facts = reply_facts("Your refund has been processed.")
    assert facts.proposal is not None
    alone = facts.proposal.model_copy(
        update={"answer": "We have refunded $5,000.00 to your card.", "tool_calls": []}
    )
    found = list(reply_tells_the_truth(facts.model_copy(update={"proposal": alone})))
    assert [(f.code, f.detail.split(" ")[:2]) for f in found] == [
        ("reply_names_unplanned_amount", ["the", "answer"]),
        ("reply_claims_unplanned_refund", ["the", "answer"]),
    ]
    same = facts.proposal.model_copy(update={"answer": "Your refund has been processed."})
    found = list(reply_tells_the_truth(facts.model_copy(update={"proposal": same})))
    assert [f.detail for f in found] == [
        "the reply says a refund was made, and the plan makes none"
    ]


def test_the_answer_may_name_no_other_record() -> None:
    """The core's check of outbound text reads the answer too (once, when a reply carries
    it): another customer's order in it is refused like one in a reply's body."""
    from tether.activities.verification import argument_findings

    facts = reply_facts("Your order ORD-1234 is on its way.")
    assert facts.proposal is not None
    told = "ORD-1234 shipped; so did ORD-2001."

    def other_records(**update: object) -> list[str]:
        assert facts.proposal is not None
        proposal = facts.proposal.model_copy(update=update)
        found = argument_findings(PACK, facts.model_copy(update={"proposal": proposal}))
        return [f.detail for f in found if f.code == "outbound_names_other_record"]

    said = "tells the subject about order ORD-2001, which the request never mentions"
    assert other_records(answer=told) == [f"the answer {said}"]
    carried = [
        c.model_copy(update={"arguments": {**c.arguments, "body": told}})
        for c in facts.proposal.tool_calls
    ]
    assert other_records(answer=told, tool_calls=carried) == [f"send_reply.body {said}"]


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
