"""The second signal: challenges a proposal independently of the model that made it.

The answer, and any text a tool carries to the subject (a message body), must be grounded,
sentence by sentence, in the passages or context records the proposal cites; citations must
point at what was retrieved or read; tool arguments must agree with the request (the records
they name mentioned in it, the subject the request's, no other record named in outbound text
than those the request, the knowledge or the records read for it state)
and with the pack's own argument checks; the context read must belong to the subject. The
request's intent is read again from the request alone (tether.intents), so that the intent
the proposal names moves no threshold unless the verifier reads it too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from temporalio import activity
from temporalio.exceptions import ApplicationError

from tether import errors
from tether.contracts import Facts, Finding, ToolCall, Verification, VerifyInput
from tether.domain import DomainPack
from tether.embeddings import Embedder
from tether.intents import IntentReader, Reading
from tether.sentencevectors import SentenceVectors
from tether.text import split_claims, split_sentences


def argument_findings(pack: DomainPack, facts: Facts) -> list[Finding]:
    """Tool arguments must be consistent with what the request actually said. Pure: the
    workflow runs it again on an approver's edit."""
    findings: list[Finding] = []
    request = facts.request
    mentioned = pack.references_of(request)
    # Ids the subject may read besides those they named: their own, the records read for
    # them, and, of kinds nobody owns (a host, not a private record), those that the passages
    # the proposal cites or those records state (a runbook's host, an asset's manager).
    cited = set(facts.proposal.citations) if facts.proposal else set()
    stated = [p.text for p in facts.evidence.passages if p.passage_id in cited]
    stated += [r.text for r in facts.context]
    known = {request.subject, *(r.id for r in facts.context)} | {
        ident
        for ref in pack.references
        if ref.owner is None
        for text in stated
        for ident in ref.find(text)
    }
    said: set[str] = set()  # outbound text checked already
    for call in facts.proposal.tool_calls if facts.proposal else []:
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
        for argument in spec.outbound:
            text = str(call.arguments.get(argument) or "")
            findings += _other_records(f"{call.tool}.{argument}", text, pack, mentioned, known)
            said.add(text.strip())
    # The answer is read by the requester too, whether or not a tool carries it.
    answer = facts.proposal.answer if facts.proposal else ""
    if answer.strip() not in said:
        findings += _other_records("the answer", answer, pack, mentioned, known)
    return findings + pack.check_arguments(facts)


def repeated_writes(pack: DomainPack, facts: Facts) -> list[Finding]:
    """A write proposed twice with the same arguments: each step has its own idempotency key,
    so both would run. No plan needs that; nothing runs. Checked on the model's proposal only:
    an approver's edit is theirs (``argument_findings`` is what the workflow checks again, and
    this finding, about the arguments, goes with the edit)."""
    seen: set[str] = set()
    repeated: list[str] = []
    for call in _writes(pack, facts):
        # The same to a reader: case, blanks and a closing stop aside ("Fix it." twice).
        alike = {k: _plain(v) if isinstance(v, str) else v for k, v in call.arguments.items()}
        key = call.tool + json.dumps(alike, sort_keys=True, default=str)
        if key in seen and call.tool not in repeated:
            repeated.append(call.tool)
        seen.add(key)
    return [
        Finding(
            code="repeated_write",
            severity="block",
            detail=f"{tool} is proposed more than once with the same arguments",
            about="arguments",
        )
        for tool in repeated
    ]


def _plain(text: str) -> str:
    return " ".join(text.split()).rstrip(".!").casefold()


def _writes(pack: DomainPack, facts: Facts) -> list[ToolCall]:
    """The proposal's calls of the pack's tools that write (one it lacks is refused before)."""
    calls = facts.proposal.tool_calls if facts.proposal else []
    return [c for c in calls if c.tool in pack.tools and pack.tools.get(c.tool).writes]


# Two intents read this close (mean similarity) are both what the request may be: a write
# is planned only if both plan it (the local model's confidence, full at a margin of 0.08,
# sends such a request to a person too). "Which team owns svc-checkout?" reads nearly as
# well as a restart as a question.
NEAR_TIE = 0.04


def unplanned_writes(pack: DomainPack, facts: Facts, read: Reading | None) -> list[Finding]:
    """Writes the intent the request reads as (from the request alone) has no plan for: a
    question answered with a restart, whatever the proposal calls its intent. A person looks.
    Where the runner-up reads nearly as well, its plan must name the write too. The model's
    proposal only, as for ``repeated_writes``; nothing where the pack gives that intent no
    plan."""
    if read is None:
        return []
    near = read.runner_up if read.best - read.second < NEAR_TIE else None
    writes = {call.tool for call in _writes(pack, facts)}
    for intent, how in ((read.intent, ""), (near, " nearly as well")):
        if intent is not None and intent in pack.plans:
            unplanned = sorted(writes - pack.plans[intent])
            if unplanned:
                return [
                    Finding(
                        code="write_not_planned",
                        severity="warn",
                        detail=f"the request reads{how} as {intent}, whose plan names no "
                        + ", ".join(unplanned),
                        about="arguments",
                    )
                ]
    return []


def _other_records(
    where: str, text: str, pack: DomainPack, mentioned: dict[str, list[str]], known: set[str]
) -> list[Finding]:
    """A record ``text`` tells the subject about that neither the request nor what was read
    or cited for it names (read loosely: any id-shaped part counts)."""
    foreign = [
        f"{ref.name} {ident}"
        for ref in pack.references
        for ident in ref.find(text, loose=True)
        if ident not in mentioned.get(ref.name, []) and ident not in known
    ]
    if not foreign:
        return []
    return [
        Finding(
            code="outbound_names_other_record",
            severity="block",
            detail=f"{where} tells the subject about {', '.join(foreign)}, which the request "
            "never mentions",
            about="arguments",
        )
    ]


def _quoted(claim: str, sources: list[str]) -> bool:
    """Whether ``claim`` is in one of ``sources`` word for word (spacing aside)."""
    words = " ".join(claim.split())
    return any(words in " ".join(text.split()) for text in sources)


class VerificationActivities:
    def __init__(
        self,
        embedder: Embedder,
        packs: Sequence[DomainPack],
        *,
        grounding_similarity: float = 0.7,
        sentence_vectors: SentenceVectors | None = None,
        intents: IntentReader | None = None,
    ) -> None:
        self._embedder = embedder
        self._intents = intents or IntentReader(embedder, packs)
        # Cited passages' sentences were embedded at ingest: read, not embedded again.
        self._known = sentence_vectors or SentenceVectors(embedder)
        self._packs = {pack.name: pack for pack in packs}
        self._threshold = grounding_similarity

    def _support(self, sentences: list[str], pool: list[str]) -> list[float]:
        """Each sentence's best similarity to any sentence of ``pool`` (0 with no pool)."""
        if not sentences or not pool:
            return [0.0] * len(sentences)
        vectors = self._embedder.encode(sentences + pool)
        similarity = vectors[: len(sentences)] @ vectors[len(sentences) :].T
        return [float(s) for s in similarity.max(axis=1)]

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
        cited = set(proposal.citations)
        self._known.ensure(inp.domain, [p for p in inp.evidence.passages if p.passage_id in cited])
        quoted = [sources[c] for c in proposal.citations if c in sources]
        pool = [s for text in quoted for s in split_sentences(text)]
        # Claim by claim: a sentence glued to another with no space, a semicolon or a line
        # break is two claims, each grounded on its own (a part quoted word for word from a
        # cited source is grounded in it).
        sentences = split_claims(proposal.answer)
        # Text a tool carries to the subject, unless it is the answer itself: one more pass.
        outbound = [
            (f"{call.tool}.{argument}", split_claims(str(call.arguments.get(argument) or "")))
            for call in proposal.tool_calls
            if call.tool in pack.tools
            for argument in pack.tools.get(call.tool).outbound
            if str(call.arguments.get(argument) or "").strip() != proposal.answer.strip()
        ]
        said = sentences + [s for _, ss in outbound for s in ss]
        best = [
            1.0 if _quoted(s, quoted) else score
            for s, score in zip(said, self._support(said, pool), strict=True)
        ]
        answer_best, rest = best[: len(sentences)], best[len(sentences) :]
        grounded = sum(1 for score in answer_best if score >= self._threshold)
        for sentence, score in zip(sentences, answer_best, strict=True):
            if score < self._threshold:
                findings.append(
                    Finding(
                        code="ungrounded_sentence",
                        severity="info",
                        detail=f"{score:.2f}: {sentence[:120]}",
                    )
                )
        for where, said in outbound:
            scores, rest = rest[: len(said)], rest[len(said) :]
            unsupported = [
                s for s, score in zip(said, scores, strict=True) if score < self._threshold
            ]
            if unsupported:  # the operator's own words on an edit are theirs: not re-checked
                findings.append(
                    Finding(
                        code="outbound_ungrounded",
                        severity="warn",
                        detail=f"{where}: {len(unsupported)} of {len(said)} sentences are not "
                        f"supported by what the proposal cites, e.g. {unsupported[0][:120]!r}",
                        about="arguments",
                    )
                )
        facts = Facts(
            domain=inp.domain,
            request=inp.request,
            evidence=inp.evidence,
            context=inp.context,
            proposal=proposal,
        )
        findings += argument_findings(pack, facts) + repeated_writes(pack, facts)
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
        # The request's intent, read from the request alone: the proposal's is the model's word.
        read = self._intents.read(inp.request.text, inp.domain)
        intent = read.intent if read is not None else None
        if intent is not None and intent != proposal.intent:
            findings.append(
                Finding(
                    code="intent_disagrees",
                    severity="info",
                    detail=f"the request reads as {intent}; the proposal names {proposal.intent}",
                )
            )
        findings += unplanned_writes(pack, facts, read)
        return Verification(
            grounding=grounded / len(sentences) if sentences else 0.0,
            sentences=len(sentences),
            findings=findings,
            intent=intent,
            intent_read=True,
        )
