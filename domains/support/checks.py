"""The verifier's argument checks that only the support business knows: the amounts asked
for, and what the customer is told (a reply's body, and the answer itself)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from tether.contracts import Facts, Finding
from tether.text import asserted, clause, own_sentences, said

from .money import Amount, amounts_in, usd

# A sentence telling the customer that money moved for them (not how refunds work in
# general, what will happen, what has not, or a question): only true when the plan moves it.
_DONE = r"(?:approved|issued|processed|sent|granted|paid|credited|completed?|done|through)"
_GAP = r"(?:(?!not\b|never\b|yet\b)[\w$.,]+\s+){0,3}?"  # a few words, none a negation
_CLAIM = re.compile(
    # "we refunded", "we've just refunded", "you have been refunded", "$40 was refunded"
    rf"\b(?:we|i|was|were|been|has|have|had|'ve)\s+{_GAP}refunded\b"
    # "your refund has been processed", "the refund of $40 was issued", "refund went through";
    # not a refund *request* that was sent on to someone
    rf"|(?<!\bno\s)\brefund\b(?!\s+request)\s+{_GAP}(?:has|have|had|was|were|is now|is being|went|has gone)"
    rf"\s+(?:been\s+)?(?:now\s+)?(?:fully\s+)?{_DONE}"
    rf"|(?<!\bno\s)\brefund(?:'s| is)\s+(?:been\s+|now\s+)?(?:on its way|complete|completed|done|{_DONE})"
    # "Refund complete.", "refund issued"
    r"|^\W*refund\s+(?:complete|completed|done|issued|processed|approved)\b"
    # "we issued your refund", "processed a full refund"
    rf"|\b(?:we|i|have|has|'ve)\s+{_GAP}{_DONE}\s+(?:a|your|the)\s+(?:full\s+|partial\s+)?refund\b",
    re.IGNORECASE | re.MULTILINE,  # a line of its own starts a claim too ("Refund issued")
)
# Or any sentence about a refund (not a request for one) that says something was done:
# "You will see the refund on your card: it has been processed."
_ABOUT = re.compile(r"(?<!\bno\s)\brefund\b(?!\s+request)", re.IGNORECASE)  # not "no refund"
_WAS_DONE = re.compile(
    rf"\b(?:has|have|had|was|were|is now)\s+(?:been\s+)?(?:now\s+)?(?:fully\s+)?{_DONE}\b",
    re.IGNORECASE,
)
# A number with no currency where it can only be the sum refunded: "we refunded 159.00",
# "a refund of 5000", "5000 back to your card". Elsewhere in the sentence a bare number is a
# count, a date, a range of days or an order's number.
_SUM = r"((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d{2})?)(?![\w,-]|\.\d)"
_BARE_AMOUNT = re.compile(
    rf"\b(?:refunded|credited|paid)\s+(?:you\s+|back\s+)?{_SUM}"
    rf"|\brefund\s+of\s+{_SUM}"
    rf"|(?<![\w.,#-]){_SUM}\s+(?:(?:was|were|has been|have been)\s+refunded|(?:back\s+)?to your)"
    rf"|:\s*{_SUM}\W*$",  # "...has been issued: 159."
    re.IGNORECASE,
)


def _claims(sentence: str) -> bool:
    """Whether ``sentence`` says a refund was made: a claim asserted in its own clause (not
    negated there, not a question; tether.text.asserted), or a refund (not a request for
    one) whose own clause says it was done."""
    if any(asserted(sentence, m.start(), m.end()) for m in _CLAIM.finditer(sentence)):
        return True
    for about in _ABOUT.finditer(sentence):
        begin, end = clause(sentence, about.start(), about.end())
        done = _WAS_DONE.search(sentence, begin, end)
        if done is not None and asserted(
            sentence, min(about.start(), done.start()), max(about.end(), done.end())
        ):
            return True
    return False


def amount_as_asked(facts: Facts) -> Iterator[Finding]:
    """A refund of an amount other than one the customer named (in dollars) is a person's
    call, and so is one when what they named cannot be paid as named (another currency, a
    negative or unreadable amount)."""
    named = amounts_in(facts.request.text)
    if not named or facts.proposal is None:
        return
    usable = [a.cents for a in named if a.usable]
    asked = ", ".join(str(a) for a in named)
    for call in facts.proposal.tool_calls:
        amount = call.arguments.get("amount_cents")
        if amount is not None and int(amount) not in usable:
            yield Finding(
                code="amount_not_requested",
                severity="warn",
                detail=f"{call.tool} pays {usd(int(amount))}; the request named {asked}",
            )


def _amounts(sentence: str, claim: bool) -> list[Amount]:
    """The amounts a sentence names; in one that says a refund was made, bare numbers too."""
    found = amounts_in(sentence)
    if claim:
        taken = [a.text for a in found]
        for match in _BARE_AMOUNT.finditer(sentence):
            number = next(n for n in match.groups() if n is not None)
            if not any(number in t for t in taken):
                cents = round(float(number.replace(",", "")) * 100)
                found.append(Amount(cents, "?", False, number))
    return found


def reply_tells_the_truth(facts: Facts) -> Iterator[Finding]:
    """What the customer reads (each reply's body, and the answer) may only name amounts the
    plan pays or the cited sources state, may only say a refund happened when the plan makes
    one, and then only of the amounts it pays. Sentences copied from a cited source are the
    source's word, not a claim about this request."""
    if facts.proposal is None:
        return
    cited = set(facts.proposal.citations)
    sources = [said(p.text) for p in facts.evidence.passages if p.passage_id in cited]
    sources += [said(r.text) for r in facts.context if r.citation_id in cited]
    known = {(a.cents, a.currency) for text in sources for a in amounts_in(text)}
    calls = facts.proposal.tool_calls
    refunds = [int(c.arguments["amount_cents"]) for c in calls if c.tool == "issue_refund"]
    paid = {*refunds, sum(refunds)} if refunds else set()
    bodies = [str(c.arguments.get("body", "")) for c in calls if c.tool == "send_reply"]
    answer = facts.proposal.answer
    told = [("the reply", body) for body in bodies]
    if answer.strip() not in {body.strip() for body in bodies}:
        told.append(("the answer", answer))
    for where, text in told:
        # Whole sentences (a line break or a semicolon does not cut a claim in two, but
        # ends its clause), each with the words around its numbers.
        own = own_sentences(text, sources, min_length=1)
        claims = [s for s in own if _claims(s)]
        # Where it says a refund was made, what the plan pays (beside which a cited amount
        # may stand: "$40 of your $159 order"); elsewhere, what a cited source states too.
        misstated = [a for s in claims for a in _misstated(_amounts(s, True), paid, known)]
        unplanned = [
            a
            for s in own
            if s not in claims
            for a in _amounts(s, False)
            if not _planned(a, paid) and not _known(a, known)
        ]
        if misstated or unplanned:
            parts = []
            if misstated:
                plan = ", ".join(usd(c) for c in refunds) or "nothing"
                parts.append(
                    f"says {', '.join(map(str, misstated))} was refunded; the plan refunds {plan}"
                )
            if unplanned:
                parts.append(
                    f"names {', '.join(map(str, unplanned))}, which no planned refund and no "
                    "cited source says"
                )
            yield Finding(
                code="reply_names_unplanned_amount",
                severity="block",
                detail=f"{where} " + "; and ".join(parts),
            )
        if not refunds and claims:
            yield Finding(
                code="reply_claims_unplanned_refund",
                severity="block",
                detail=f"{where} says a refund was made, and the plan makes none",
            )


def _misstated(named: list[Amount], paid: set[int], known: set[tuple[int, str]]) -> list[Amount]:
    """Of the amounts in a sentence saying a refund was made, those it has wrong: all it names
    beside what the plan pays when it names none of that, or names one nobody stated."""
    others = [a for a in named if not _planned(a, paid)]
    if len(others) < len(named) and all(_known(a, known) for a in others):
        return []
    return others


def _known(amount: Amount, known: set[tuple[int, str]]) -> bool:
    """An amount a cited source states (a bare number: in any currency it states it)."""
    if amount.currency == "?":
        return any(cents == amount.cents for cents, _ in known)
    return (amount.cents, amount.currency) in known


def _planned(amount: Amount, paid: set[int]) -> bool:
    """An amount the plan pays: in dollars (or with no currency said), not negative."""
    return amount.currency in ("USD", "?") and not amount.negative and amount.cents in paid
