"""Evidence-aware proposal reuse: a request that matches an earlier one (by its pack's key:
by default the normalised text and the context records as read) takes the earlier proposal
instead of calling the model, if every passage that proposal cited is still in this
request's evidence at the same version and content hash. The proposal is then verified and
decided like a fresh one; only the model call is saved.

What may be reused, and by whom:
- A proposal that plans no tool call answers from documents alone: any subject's request
  with the same key may take it. One that plans a call is kept for its own subject only
  (its arguments were made from that subject's records and words).
- Only a proposal that stood: made by a model in normal mode, grounded by the verifier
  (no blocking finding) and not refused, edited or rejected by a person. Later feedback
  that says it was wrong (tether feedback) forgets it.
- Per domain policy (``PolicyConfig.proposal_reuse``: how long; None, the default, never),
  and per model queue: a candidate model never takes another model's proposals.

All pure functions: the workflow computes the key, the store keeps the entries."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence

from pydantic import BaseModel

from tether.contracts import (
    ContextRecord,
    DecisionAction,
    Evidence,
    Mode,
    ModelIdentity,
    Outcome,
    Proposal,
    Request,
    Reused,
)

ANY_SUBJECT = "*"  # the scope of an entry any subject may take
_SPACE = re.compile(r"\s+")
# Punctuation a person adds or drops without changing the question: at the ends of words.
_EDGE_PUNCTUATION = re.compile(r"(?<!\w)[^\w\s]+|[^\w\s]+(?!\w)")


def normalise(text: str) -> str:
    """The text as a match sees it: Unicode-normalised (NFKC), case-folded, whitespace
    collapsed, punctuation at the ends of words dropped (an id's inner hyphen stays)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _EDGE_PUNCTUATION.sub(" ", folded)).strip()


def context_snapshot(context: Sequence[ContextRecord]) -> str:
    """The records as read, in a form that changes when any field of any record does."""
    records = sorted(
        ({"kind": r.kind, "id": r.id, "data": r.data, "owner": r.owner} for r in context),
        key=lambda r: (r["kind"], r["id"]),
    )
    return hashlib.sha256(_canonical(records).encode()).hexdigest()


def default_key(request: Request, context: Sequence[ContextRecord]) -> str | None:
    """A pack's key unless it gives its own: the normalised text and the context snapshot.
    None (for an empty text) means this request is never matched."""
    text = normalise(request.text)
    if not text:
        return None
    return _digest({"text": text, "context": context_snapshot(context)})


def key_for(domain: str, model_queue: str, match: str) -> str:
    """The stored key: the pack's match, within one domain and one model queue."""
    return _digest({"domain": domain, "model_queue": model_queue, "match": match})


class CitedPassage(BaseModel):
    passage_id: str
    version: int
    content_hash: str


class ReuseEntry(BaseModel):
    """A proposal kept for reuse, with what it stood on."""

    domain: str
    key: str
    scope: str  # ANY_SUBJECT or the subject it was made for
    request_id: str
    proposal: Proposal
    model: ModelIdentity | None
    cited: list[CitedPassage]

    def reused(self) -> Reused:
        return Reused(request_id=self.request_id, proposal=self.proposal, model=self.model)


def scope_of(proposal: Proposal, subject: str) -> str:
    return subject if proposal.tool_calls else ANY_SUBJECT


def cited(proposal: Proposal, evidence: Evidence) -> list[CitedPassage]:
    """The passages ``proposal`` cites, as they were (a context record's citation is not a
    passage: the context snapshot in the key covers it)."""
    by_id = {p.passage_id: p for p in evidence.passages}
    return [
        CitedPassage(passage_id=p.passage_id, version=p.version, content_hash=p.content_hash)
        for c in dict.fromkeys(proposal.citations)
        if (p := by_id.get(c)) is not None
    ]


def stale(entry: ReuseEntry, evidence: Evidence) -> str | None:
    """Why ``entry`` may not be reused on ``evidence`` (None: it may): a cited passage that is
    no longer retrieved, or is at another version or content."""
    now = {p.passage_id: p for p in evidence.passages}
    for c in entry.cited:
        p = now.get(c.passage_id)
        if p is None:
            return f"cited passage {c.passage_id} is not in the evidence now"
        if (p.version, p.content_hash) != (c.version, c.content_hash):
            return f"cited passage {c.passage_id} changed (version {c.version} -> {p.version})"
    return None


def keepable(outcome: Outcome, key: str) -> ReuseEntry | None:
    """The entry ``outcome`` leaves for later requests, or None when its proposal did not
    stand (see the module's docstring)."""
    proposal, request = outcome.proposal, outcome.request
    if proposal is None or request is None or outcome.evidence is None:
        return None
    if outcome.reused_from is not None:  # the first one's entry stands already
        return None
    verification = outcome.verification
    if verification is None or verification.blocking:
        return None
    refused = outcome.decision.action in (DecisionAction.REJECT, DecisionAction.DEGRADED)
    turned_down = any(r.verdict != "approve" for r in outcome.reviews)
    if outcome.mode is not Mode.NORMAL or refused or turned_down or outcome.edits:
        return None
    return ReuseEntry(
        domain=outcome.domain,
        key=key,
        scope=scope_of(proposal, request.subject),
        request_id=outcome.request_id,
        proposal=proposal,
        model=outcome.model,
        cited=cited(proposal, outcome.evidence),
    )


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _digest(value: object) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()
