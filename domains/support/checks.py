"""The verifier's argument checks that only the support business knows: the amounts asked
for, and what a reply may tell a customer."""

from __future__ import annotations

import re
from collections.abc import Iterator

from tether.contracts import Facts, Finding

from .money import amounts_in, usd

# A sentence telling the customer that money moved for them (not how refunds work in
# general): only true when the plan moves it.
_DONE = r"(?:approved|issued|processed|sent|granted|paid|credited)"
_CLAIM = re.compile(
    rf"\b(?:we|i)(?:'ve| have)?\s+(?:refunded|{_DONE})\b"
    rf"|\brefund\b.*\b(?:has been|have been|was|is now|is being)\s+{_DONE}"
    rf"|\brefund\b.*\bis on its way"
    rf"|\b{_DONE}\s+(?:a|your|the)\s+refund\b",
    re.IGNORECASE,
)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def amount_as_asked(facts: Facts) -> Iterator[Finding]:
    """A refund of an amount other than one the customer named (in dollars) is a person's
    call, and so is one when what they named cannot be paid as named (another currency, a
    negative or unreadable amount)."""
    named = amounts_in(facts.request.text)
    if not named or facts.proposal is None:
        return
    usable = [a.cents for a in named if a.usable]
    said = ", ".join(str(a) for a in named)
    for call in facts.proposal.tool_calls:
        amount = call.arguments.get("amount_cents")
        if amount is not None and int(amount) not in usable:
            yield Finding(
                code="amount_not_requested",
                severity="warn",
                detail=f"{call.tool} pays {usd(int(amount))}; the request named {said}",
            )


def reply_tells_the_truth(facts: Facts) -> Iterator[Finding]:
    """A reply may only name amounts the plan pays or the cited sources state, and may only
    say a refund happened when the plan makes one. Sentences copied from a cited source are
    the source's word, not a claim about this request."""
    if facts.proposal is None:
        return
    cited = set(facts.proposal.citations)
    sources = [p.text for p in facts.evidence.passages if p.passage_id in cited]
    sources += [r.text for r in facts.context if r.citation_id in cited]
    known = {a.cents for text in sources for a in amounts_in(text)}
    calls = facts.proposal.tool_calls
    refunds = [int(c.arguments["amount_cents"]) for c in calls if c.tool == "issue_refund"]
    for call in calls:
        if call.tool != "send_reply":
            continue
        own = [
            s
            for s in _sentences(str(call.arguments.get("body", "")))
            if not any(s in t for t in sources)
        ]
        unplanned = [
            a for s in own for a in amounts_in(s) if a.cents not in known and a.cents not in refunds
        ]
        if unplanned:
            yield Finding(
                code="reply_names_unplanned_amount",
                severity="block",
                detail=f"the reply names {', '.join(map(str, unplanned))}, which no planned "
                "refund and no cited source says",
            )
        if not refunds and any(_CLAIM.search(s) for s in own):
            yield Finding(
                code="reply_claims_unplanned_refund",
                severity="block",
                detail="the reply says a refund was made, and the plan makes none",
            )
