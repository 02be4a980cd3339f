"""The policy gate: a pure function from Facts to a Decision with reasons.

It runs inside the workflow, so it must stay deterministic: no I/O, no clock (``now`` is
passed in), no randomness. Only fields computed by deterministic code are consulted; text a
requester, a document or the model wrote can never widen what policy allows.

Sequence: degraded modes; then rejects (the verifier's blocks, the core's reference and
subject gates, the pack's rules); then escalations (stale index or evidence, low confidence,
weak grounding, permissions outside the autonomous set, the verifier's warnings, the pack's
rules), to the highest tier any of them needs; else automatic. Every branch says why.
The confidence and grounding thresholds are the policy's, or the proposal's intent's own
where the policy names them (``PolicyConfig.intent_thresholds``).

A domain pack adds rules: pure functions of (facts, the pack's rule settings, now) returning
verdicts: ``Reject``, ``Escalate`` to a tier by name, or ``Allow`` (a reason shown when the
decision is automatic). A rule sees every tool call at once, so totals across calls (one
payment split in three) are as easy to limit as a single call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tether.config import PolicyConfig
from tether.contracts import Decision, DecisionAction, Facts, Mode, Reason, ToolCall
from tether.tools import ToolRegistry

if TYPE_CHECKING:
    from tether.domain import DomainPack


@dataclass(frozen=True)
class Reject:
    code: str
    detail: str


@dataclass(frozen=True)
class Escalate:
    code: str
    detail: str
    tier: str | None = None  # a tier's name; None: the first tier


@dataclass(frozen=True)
class Allow:
    code: str
    detail: str


Verdict = Reject | Escalate | Allow
# The two escalations the confidence and grounding thresholds make (tether/calibration.py
# reads them: a request escalated for nothing else is automatic above the thresholds).
LOW_CONFIDENCE = "low_confidence"
WEAK_GROUNDING = "weak_grounding"
THRESHOLD_CODES = frozenset({LOW_CONFIDENCE, WEAK_GROUNDING})
# (facts, the pack's rule settings as its own model, the decision's time) -> verdicts
Rule = Callable[[Facts, Any, datetime], Iterable[Verdict]]


def writes_of(facts: Facts, registry: ToolRegistry) -> list[ToolCall]:
    calls = facts.proposal.tool_calls if facts.proposal else []
    return [c for c in calls if registry.get(c.tool).writes]


def argument_total(calls: Iterable[ToolCall], registry: ToolRegistry, argument: str) -> int:
    """The sum of an integer argument over the write calls that carry it: a limit on the
    total cannot be slipped under by splitting one action into several."""
    return sum(
        int(c.arguments[argument])
        for c in calls
        if registry.get(c.tool).writes and argument in c.arguments
    )


def _reference_gates(facts: Facts, registry: ToolRegistry) -> list[Reason]:
    """A write may only name records read for this request, belonging to its subject, and
    address only the request's subject."""
    subject = facts.request.subject
    rejects: list[Reason] = []
    for call in writes_of(facts, registry):
        spec = registry.get(call.tool)
        addressee = call.arguments.get(spec.subject_argument) if spec.subject_argument else None
        if addressee is not None and addressee != subject:
            rejects.append(
                Reason(
                    code="subject_mismatch",
                    detail=f"{call.tool} addresses {addressee}; the request is for {subject}",
                )
            )
        for _, kind, ident in spec.referenced(call.arguments):
            record = facts.record(kind, ident)
            read = [r.id for r in facts.records(kind)]
            if record is None and read:
                rejects.append(
                    Reason(
                        code="reference_mismatch",
                        detail=f"{call.tool} names {kind} {ident}; the {kind} read for this "
                        f"request is {', '.join(read)}",
                    )
                )
            elif record is None:
                rejects.append(
                    Reason(
                        code="reference_unknown",
                        detail=f"{call.tool} names {kind} {ident}, which could not be read",
                    )
                )
            elif record.owner is not None and record.owner != subject:
                rejects.append(
                    Reason(
                        code="not_subjects_record",
                        detail=f"{kind} {ident} belongs to another subject than {subject}",
                    )
                )
    return rejects


def decide(
    facts: Facts,
    config: PolicyConfig,
    pack: DomainPack,
    now: datetime,
    *,
    plans: bool = True,
    read: bool = True,
) -> Decision:
    """The decision on ``facts`` under ``config``. ``plans``: an intent's own thresholds apply
    to a write only when its plan names it; ``read``: only when the verifier reads the
    request as that intent too (False: as runs recorded before each rule, which replay as
    they ran)."""
    registry = pack.tools
    permissions: list[str] = []

    def decision(
        action: DecisionAction, mode: Mode, reasons: list[Reason], tier: int | None = None
    ) -> Decision:
        return Decision(
            action=action,
            mode=mode,
            reasons=reasons,
            tier=tier,
            policy_version=config.version,
            permissions=permissions,
        )

    problems = pack.problems(facts.request)
    if problems:  # the client refuses these; a caller that went around it is refused here
        return decision(
            DecisionAction.REJECT,
            Mode.NORMAL,
            [Reason(code="invalid_request", detail="; ".join(problems))],
        )
    if facts.withheld:  # nothing of them was read or shown: a person looks at the request
        return decision(
            DecisionAction.REJECT,
            Mode.NORMAL,
            [
                Reason(
                    code="not_subjects_record",
                    detail=f"the request names {', '.join(facts.withheld)}, which belong to "
                    f"another subject than {facts.request.subject}",
                )
            ],
        )
    proposal, verification = facts.proposal, facts.verification
    if facts.mode is Mode.RETRIEVAL_ONLY or proposal is None or verification is None:
        code = "model_unavailable" if facts.mode is Mode.RETRIEVAL_ONLY else "invalid_model_output"
        detail = "no valid proposal; answering without actions"
        if facts.repairs:  # why, in the model's own failures: the last answer's errors
            detail = (
                f"no valid proposal after {len(facts.repairs)} answers; the last: "
                + "; ".join(facts.repairs[-1])
            )
        why = facts.model_failure or Reason(code=code, detail=detail[:1000])
        return decision(
            DecisionAction.DEGRADED,
            facts.mode if facts.mode is not Mode.NORMAL else Mode.HUMAN_DRAFT,
            [why],
        )

    writes = writes_of(facts, registry)
    permissions = sorted({registry.get(c.tool).permission for c in proposal.tool_calls})
    try:
        verdicts = list(pack.judge(facts, config, now))
    except Exception as err:  # a rule that cannot decide allows nothing (and never hangs)
        verdicts = [Reject("pack_error", f"{pack.name}'s rules failed: {err!r}"[:300])]
    rejects = [Reason(code=f"verifier:{f.code}", detail=f.detail) for f in verification.blocking]
    found = {r.code for r in rejects}
    rejects += [r for r in _reference_gates(facts, registry) if f"verifier:{r.code}" not in found]
    rejects += [Reason(code=v.code, detail=v.detail) for v in verdicts if isinstance(v, Reject)]
    escalated: list[tuple[int, Reason]] = []  # the pack's; after the core's below
    for v in verdicts:
        if isinstance(v, Escalate):
            tier = 0 if v.tier is None else config.tier_index(v.tier)
            if tier is None:  # the pack names a tier this policy lacks: nobody may approve
                rejects.append(
                    Reason(code="no_tier_may_approve", detail=f"{v.code}: no tier {v.tier!r}")
                )
                continue
            detail = f"{v.detail}: {config.tiers[tier].name} approves"
            escalated.append((tier, Reason(code=v.code, detail=detail)))
    if rejects:
        return decision(DecisionAction.REJECT, Mode.NORMAL, rejects)

    escalations: list[tuple[int, Reason]] = []
    mode = Mode.NORMAL
    if writes and facts.evidence.freshness.stale_index:
        mode = Mode.READ_ONLY
        escalations.append(
            (0, Reason(code="stale_index", detail="knowledge index is stale: no autonomous writes"))
        )
    stale_cited = sorted(set(proposal.citations) & set(facts.evidence.freshness.stale_kept))
    if writes and stale_cited:
        mode = Mode.READ_ONLY
        escalations.append(
            (
                0,
                Reason(
                    code="stale_evidence",
                    detail=f"cites passages past their freshness rule: {', '.join(stale_cited)}",
                ),
            )
        )
    # The intent's own thresholds, if the policy names any (else the policy's): the intent
    # is the model's word, like its confidence, so it moves only these two gates; only when
    # the verifier reads the request as that intent too (where they differ, the strictest of
    # both intents' thresholds and the policy's); and for writes only when its plan names
    # them: a write labelled as another intent is judged by the stricter of that intent's
    # thresholds and the policy's.
    min_confidence = config.min_confidence_for(proposal.intent)
    min_grounding = config.min_grounding_for(proposal.intent)
    whose = f" for {proposal.intent}" if proposal.intent in config.intent_thresholds else ""
    other = verification.intent
    if read and other != proposal.intent and (whose or other in config.intent_thresholds):
        min_confidence = max(
            min_confidence, config.min_confidence_for(other), config.min_auto_confidence
        )
        min_grounding = max(min_grounding, config.min_grounding_for(other), config.min_grounding)
        whose = f" for {proposal.intent}, read by the verifier as {other or 'no intent'}"
    if plans and whose and writes and not pack.plans_for(proposal.intent, (c.tool for c in writes)):
        min_confidence = max(min_confidence, config.min_auto_confidence)
        min_grounding = max(min_grounding, config.min_grounding)
        planned = pack.plans.get(proposal.intent or "", frozenset())
        whose += ", whose plan names no " + ", ".join(sorted({c.tool for c in writes} - planned))
    if proposal.confidence < min_confidence:
        # The model is unsure: what it wrote goes to a person as a draft, not as a decision.
        if mode is Mode.NORMAL:
            mode = Mode.HUMAN_DRAFT
        escalations.append(
            (
                0,
                Reason(
                    code=LOW_CONFIDENCE,
                    detail=f"confidence {proposal.confidence:.2f} < {min_confidence:.2f}{whose}",
                ),
            )
        )
    if verification.grounding < min_grounding:
        if writes:  # evidence that does not support the answer cannot justify an action
            mode = Mode.READ_ONLY
        escalations.append(
            (
                0,
                Reason(
                    code=WEAK_GROUNDING,
                    detail=f"grounding {verification.grounding:.2f} < {min_grounding:.2f}{whose}",
                ),
            )
        )
    for permission in permissions:
        if permission not in config.autonomous_permissions:
            escalations.append(
                (
                    0,
                    Reason(
                        code="permission_needs_human",
                        detail=f"{permission} is not exercised without a person",
                    ),
                )
            )
    for finding in verification.findings:
        if finding.severity == "warn":
            escalations.append((0, Reason(code=f"verifier:{finding.code}", detail=finding.detail)))
    uncounted = [  # a total nobody could count cannot clear a limit
        t.name
        for t in pack.tallies
        if t.name in config.tally_windows
        and t.name not in facts.tallies
        and argument_total(writes, registry, t.argument)
    ]
    for name in uncounted:
        escalations.append(
            (
                0,
                Reason(
                    code="tally_unknown",
                    detail=f"the subject's {name} over the window could not be counted",
                ),
            )
        )
    escalations += escalated
    if escalations:
        tier = max(t for t, _ in escalations)
        reasons = [r for _, r in escalations]
        if not config.can_decide(tier):  # nobody could sign a verdict: refuse now, saying so
            detail = (
                f"policy {config.version} names nobody with a live key who decides tier "
                f"{config.tiers[tier].name}: configure the approver directory"
            )
            return decision(
                DecisionAction.REJECT, mode, [*reasons, Reason(code="no_approver", detail=detail)]
            )
        return decision(DecisionAction.APPROVAL, mode, reasons, tier)

    allowed = [
        Reason(
            code="confidence_ok",
            detail=f"confidence {proposal.confidence:.2f} >= {min_confidence:.2f}{whose}",
        ),
        Reason(
            code="grounded",
            detail=f"grounding {verification.grounding:.2f} >= {min_grounding:.2f}{whose}",
        ),
    ]
    allowed += [Reason(code=v.code, detail=v.detail) for v in verdicts if isinstance(v, Allow)]
    if not writes:
        allowed.append(Reason(code="no_writes", detail="answer only"))
    return decision(DecisionAction.AUTO, Mode.NORMAL, allowed)
