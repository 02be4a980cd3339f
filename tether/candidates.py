"""A candidate beside live traffic: which requests it sees, and how far it agrees with the live
decisions and with what people did later (``tether candidate status``).

A request is shadowed when a hash of the candidate's name and the request id falls under the
candidate's share: the same request is always in or out (a retry, a replay), and two
candidates sample different requests.

Agreement with live: the candidate's action and mode equal the live decision's.
Agreement with people, over the requests people judged (a verdict, an edit, or later feedback):
- people said act (approved unedited, or later confirmed) and nothing said it was wrong: the
  candidate disagrees only by refusing (reject, degraded);
- people said not as proposed (rejected, edited, or feedback that it was wrong): the candidate
  disagrees only by acting on its own (auto).
Asking a person defers to people and never counts against the candidate."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from tether.contracts import (
    WRONG_FEEDBACK,
    Decision,
    DecisionAction,
    Facts,
    LiveCandidate,
    LiveShadowInput,
    Outcome,
    ShadowDecision,
)

Judgement = Literal["act", "not_as_proposed"]
SHOWN = 20  # disagreements listed by status


def selected(request_id: str, candidate: LiveCandidate) -> bool:
    digest = hashlib.sha256(f"{candidate.name}\x00{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < candidate.share


def input_digest(inp: LiveShadowInput) -> str:
    """What a candidate's own run was given, as the live run gave it (sha256 of its JSON): the
    run records its decision only on that (activities/shadowstart.py). Pure: the workflow
    computes it on replay as it did live. A field added since is left out at the value its
    absence means, so that an input an earlier worker wrote down keeps its digest."""
    added = {"read"} if not inp.read else None
    return hashlib.sha256(inp.model_dump_json(exclude=added).encode()).hexdigest()


def shadow_decision(
    facts: Facts,
    decision: Decision,
    *,
    candidate: str,
    policy_version: str,
    at: datetime,
    on_live_proposal: bool,
) -> ShadowDecision:
    """What the candidate decided on ``facts``, as kept beside the live outcome."""
    proposal = facts.proposal
    return ShadowDecision(
        request_id=facts.request.request_id,
        domain=facts.domain,
        candidate=candidate,
        policy_version=policy_version,
        action=decision.action,
        mode=decision.mode,
        reasons=decision.codes(),
        intent=proposal.intent if proposal else None,
        grounding=facts.verification.grounding if facts.verification else None,
        confidence=proposal.confidence if proposal else None,
        planned=[c.tool for c in proposal.tool_calls] if proposal else [],
        at=at,
        on_live_proposal=on_live_proposal,
    )


def judgement(outcome: Outcome, later: Sequence[Mapping[str, Any]]) -> Judgement | None:
    """What people said of ``outcome``'s proposal, if they said anything."""
    if outcome.edits or any(f["kind"] in WRONG_FEEDBACK for f in later):
        return "not_as_proposed"
    verdicts = [r.verdict for r in outcome.reviews if r.verdict in ("approve", "reject")]
    if verdicts:
        return "act" if verdicts[-1] == "approve" else "not_as_proposed"
    if any(f["kind"] == "confirmation" for f in later):
        return "act"
    return None


def agrees_with_people(action: DecisionAction, said: Judgement) -> bool:
    if said == "act":
        return action not in (DecisionAction.REJECT, DecisionAction.DEGRADED)
    return action is not DecisionAction.AUTO


def label(action: DecisionAction, mode: object) -> str:
    return f"{action.value}/{getattr(mode, 'value', mode)}"


class Disagreement(BaseModel):
    request_id: str
    live: str
    candidate: str
    people: Judgement | None
    candidate_reasons: list[str]


class CandidateStatus(BaseModel):
    domain: str
    candidate: LiveCandidate
    shadowed: int  # shadow decisions recorded
    compared: int  # of those, with a live outcome recorded
    agree_live: int
    judged: int  # of those compared, judged by people
    agree_people: int
    candidate_actions: dict[str, int]
    live_actions: dict[str, int]
    disagreements: list[Disagreement]

    @property
    def agree_live_share(self) -> float | None:
        return self.agree_live / self.compared if self.compared else None

    @property
    def agree_people_share(self) -> float | None:
        return self.agree_people / self.judged if self.judged else None


def status(
    domain: str,
    candidate: LiveCandidate,
    shadows: Sequence[ShadowDecision],
    outcomes: Mapping[str, Outcome],
    later: Mapping[str, Sequence[Mapping[str, Any]]],
) -> CandidateStatus:
    """The candidate's record against the live outcomes (by request id) and later feedback."""
    compared = agree_live = judged = agree_people = 0
    disagreements: list[Disagreement] = []
    live_actions: Counter[str] = Counter()
    for shadow in shadows:
        outcome = outcomes.get(shadow.request_id)
        if outcome is None:
            continue  # still running, or waiting for a person
        compared += 1
        live = label(outcome.decision.action, outcome.decision.mode)
        mine = label(shadow.action, shadow.mode)
        live_actions[outcome.decision.action.value] += 1
        same = live == mine
        agree_live += same
        said = judgement(outcome, later.get(shadow.request_id, []))
        with_people = True
        if said is not None:
            judged += 1
            with_people = agrees_with_people(shadow.action, said)
            agree_people += with_people
        if not same or not with_people:
            disagreements.append(
                Disagreement(
                    request_id=shadow.request_id,
                    live=live,
                    candidate=mine,
                    people=said,
                    candidate_reasons=shadow.reasons,
                )
            )
    return CandidateStatus(
        domain=domain,
        candidate=candidate,
        shadowed=len(shadows),
        compared=compared,
        agree_live=agree_live,
        judged=judged,
        agree_people=agree_people,
        candidate_actions=dict(Counter(s.action.value for s in shadows)),
        live_actions=dict(live_actions),
        disagreements=disagreements[-SHOWN:],
    )
