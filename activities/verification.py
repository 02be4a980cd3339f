"""The second signal: challenges a proposal independently of the model that made it.

The answer must be grounded, sentence by sentence, in the passages or context records it
cites; citations must point at what was retrieved or read; tool arguments must agree with the
request (the records they name mentioned in it, the subject the request's), and with the
pack's own argument checks; the context read must belong to the request's subject.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tether import errors
from tether.contracts import Finding, Request, ToolCall, Verification, VerifyInput
from tether.domain import DomainPack
from tether.embeddings import Embedder
from tether.text import split_sentences


def argument_findings(pack: DomainPack, request: Request, calls: list[ToolCall]) -> list[Finding]:
    """Tool arguments must be consistent with what the request actually said. Pure: the
    workflow runs it again on an approver's edit."""
    findings: list[Finding] = []
    mentioned = pack.references_of(request)
    for call in calls:
        if call.tool not in pack.tools:
            continue  # refused as an invalid call before this runs
        spec = pack.tools.get(call.tool)
        for argument, kind, ident in spec.referenced(call.arguments):
            if ident not in mentioned.get(kind, []):
                findings.append(
                    Finding(
                        code="reference_not_in_request",
                        severity="block",
                        detail=f"{call.tool}.{argument} names {kind} {ident}, which the request "
                        "never mentions",
                        about="arguments",
                    )
                )
        addressee = call.arguments.get(spec.subject_argument) if spec.subject_argument else None
        if addressee is not None and addressee != request.subject:
            findings.append(
                Finding(
                    code="subject_mismatch",
                    severity="block",
                    detail=f"{call.tool} addresses {addressee}, the request is for {request.subject}",
                    about="arguments",
                )
            )
    return findings + pack.check_arguments(request, calls)


class VerificationActivities:
    def __init__(
        self, embedder: Embedder, packs: Sequence[DomainPack], *, grounding_similarity: float = 0.7
    ) -> None:
        self._embedder = embedder
        self._packs = {pack.name: pack for pack in packs}
        self._threshold = grounding_similarity

    @activity.defn
    def verify_proposal(self, inp: VerifyInput) -> Verification:
        pack = self._packs.get(inp.domain)
        if pack is None:
            raise ApplicationError(
                f"this worker serves no domain {inp.domain!r}",
                type=errors.UNKNOWN_DOMAIN,
                non_retryable=True,
            )
        proposal = inp.proposal
        sources = {p.passage_id: p.text for p in inp.evidence.passages}
        sources.update({r.citation_id: r.text for r in inp.context})
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
        findings += argument_findings(pack, inp.request, proposal.tool_calls)
        findings += [
            Finding(
                code="not_subjects_record",
                severity="block",
                detail=f"{r.kind} {r.id} belongs to another subject than {inp.request.subject}",
                about="context",
            )
            for r in inp.context
            if r.owner is not None and r.owner != inp.request.subject
        ]
        return Verification(
            grounding=grounded / len(sentences) if sentences else 0.0,
            sentences=len(sentences),
            findings=findings,
        )
