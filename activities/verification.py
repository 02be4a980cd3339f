"""The second signal: challenges a proposal independently of the model that made it."""

from __future__ import annotations

import numpy as np
from temporalio import activity

from tether.contracts import Finding, Request, ToolCall, Verification, VerifyInput, find_order_ids
from tether.embeddings import Embedder
from tether.text import amounts_in, split_sentences

# The findings argument_findings produces: recomputed when an approver edits the tool calls.
ARGUMENT_CODES = frozenset({"order_not_in_request", "customer_mismatch", "amount_not_requested"})


def argument_findings(request: Request, calls: list[ToolCall]) -> list[Finding]:
    """Tool arguments must be consistent with what the customer actually asked."""
    findings: list[Finding] = []
    mentioned = set(find_order_ids(request.text)) | (
        {request.order_id} if request.order_id else set()
    )
    asked = amounts_in(request.text)
    for call in calls:
        args = call.arguments
        order_id = args.get("order_id")
        if order_id is not None and order_id not in mentioned:
            findings.append(
                Finding(
                    code="order_not_in_request",
                    severity="block",
                    detail=f"{call.tool} names {order_id}, which the request never mentions",
                )
            )
        customer = args.get("customer_id")
        if customer is not None and customer != request.customer_id:
            findings.append(
                Finding(
                    code="customer_mismatch",
                    severity="block",
                    detail=f"{call.tool} addresses {customer}, the request came from {request.customer_id}",
                )
            )
        amount = args.get("amount_cents")
        if amount is not None and asked and int(amount) not in asked:
            findings.append(
                Finding(
                    code="amount_not_requested",
                    severity="warn",
                    detail=f"{call.tool} amount {int(amount)} cents differs from the amounts asked {asked}",
                )
            )
    return findings


class VerificationActivities:
    def __init__(self, embedder: Embedder, *, grounding_similarity: float = 0.7) -> None:
        self._embedder = embedder
        self._threshold = grounding_similarity

    @activity.defn
    def verify_proposal(self, inp: VerifyInput) -> Verification:
        proposal = inp.proposal
        sources = {p.passage_id: p.text for p in inp.evidence.passages}
        if inp.order is not None:
            sources[inp.order.citation_id] = inp.order.as_text()
        findings = [
            Finding(code="citation_unknown", severity="block", detail=f"{c} was not retrieved")
            for c in proposal.citations
            if c not in sources
        ]
        if not proposal.citations:
            findings.append(
                Finding(code="no_citations", severity="warn", detail="answer cites nothing")
            )
        sentences = split_sentences(proposal.answer)
        pool = [s for c in proposal.citations if c in sources for s in split_sentences(sources[c])]
        grounded = 0
        if sentences and pool:
            vectors = self._embedder.encode(sentences + pool)
            similarity = vectors[: len(sentences)] @ vectors[len(sentences) :].T
            best = similarity.max(axis=1)
            grounded = int(np.sum(best >= self._threshold))
            for sentence, score in zip(sentences, best, strict=True):
                if score < self._threshold:
                    findings.append(
                        Finding(
                            code="ungrounded_sentence",
                            severity="info",
                            detail=f"{score:.2f}: {sentence[:120]}",
                        )
                    )
        findings += argument_findings(inp.request, proposal.tool_calls)
        if inp.order is not None and inp.order.customer_id != inp.request.customer_id:
            findings.append(
                Finding(
                    code="order_not_customers",
                    severity="block",
                    detail=f"{inp.order.order_id} belongs to another customer",
                )
            )
        return Verification(
            grounding=grounded / len(sentences) if sentences else 0.0,
            sentences=len(sentences),
            findings=findings,
        )
