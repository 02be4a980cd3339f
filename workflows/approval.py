"""The approval gate of one workflow: what a person sees, who may decide it, the SLA ladder
(each tier's SLA, then the next tier, then the safe default), and edits.

The workflow's update and signal handlers delegate here. The checks are pure (an Update
validator must be), so the same code refuses an Update at the door and records a refused
signal on the outcome.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from tether import errors, metrics
    from tether.approvals import ReviewRefused, authorise_review
    from tether.config import PolicyConfig
    from tether.contracts import (
        Decision,
        DecisionAction,
        Edit,
        EditRecord,
        Facts,
        PendingApproval,
        Proposal,
        Request,
        Review,
        ReviewReceipt,
        ReviewRecord,
    )
    from tether.domain import DomainPack
    from tether.text import hidden, visible
    from tether.tools import ProposalInvalid

MAX_REFUSED_SIGNALS = 20
M = TypeVar("M", bound=BaseModel)

# An edited proposal, judged again: its facts (arguments re-verified) and its decision.
Assess = Callable[[Proposal], tuple[Facts, Decision]]


@dataclass(frozen=True)
class Edited:
    facts: Facts  # of the edited proposal, judged again
    carried: tuple[str, ...]  # the outbound arguments (tool.argument) given the edited answer


def parse_message(model: type[M], message: object) -> M:
    """A review or an edit as its contract reads it, or ReviewRefused naming each problem."""
    try:
        return model.model_validate(message)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in err.errors()
        )
        raise ReviewRefused("invalid_message", problems) from None


def sender(message: object) -> str:
    """Who a message says it is from, for the record of a refusal (never trusted)."""
    said = message.get("approver") if isinstance(message, dict) else None
    return str(said)[:128] if said else "(unnamed)"


def refused_update(refused: ReviewRefused) -> ApplicationError:
    """A refusal as an Update validator raises it: the code in the message and details, so
    the official CLI shows it too, and non-retryable (the same message is refused again)."""
    return ApplicationError(
        str(refused), refused.code, type=errors.REVIEW_REFUSED, non_retryable=True
    )


class ApprovalGate:
    def __init__(self, request: Request, pack: DomainPack | None) -> None:
        self._request = request
        self._policy: PolicyConfig | None = None  # pinned at the workflow's start
        self._pack = pack
        self.pending: PendingApproval | None = None
        self.verdict: Review | None = None
        self.reviews: list[ReviewRecord] = []
        self.edits: list[EditRecord] = []
        self.edited: Facts | None = None  # an accepted edit's facts
        self.tier: int | None = None  # the tier a verdict was given at
        self.expired = False  # every tier's SLA ran out without a verdict
        self._version = 0  # of the proposal put to people: a review names the one it saw
        # Set by the run (steps.REVIEWED_TEXT): people's text is checked before it is kept,
        # and an edited answer reaches the subject wherever the model's answer would have.
        self.reviewed_text = False
        # Set by the run (steps.SIGNED_PROPOSAL): a verdict's signature must name the
        # proposal pending by its hash.
        self.signed_proposal = False

    def pin(self, policy: PolicyConfig) -> None:
        self._policy = policy

    @property
    def policy(self) -> PolicyConfig:
        assert self._policy is not None, "nothing is put to people before the policy is pinned"
        return self._policy

    async def wait(
        self, decision: Decision, facts: Facts, on_tier: Callable[[str], None]
    ) -> Review | None:
        """The verdict of an authorised person, or None when every tier's SLA ran out."""
        assert facts.proposal is not None and facts.verification is not None
        tiers = self.policy.tiers
        cited = [
            p for p in facts.evidence.passages if p.passage_id in set(facts.proposal.citations)
        ]
        tier = decision.tier or 0
        self._version += 1
        began = workflow.now()
        while tier < len(tiers) and self.verdict is None:
            spec = tiers[tier]
            self.pending = PendingApproval(
                tier=tier,
                tier_name=spec.name,
                role=spec.role,
                deadline=workflow.now() + spec.sla,
                proposal_version=self._version,
                proposal=facts.proposal,
                findings=facts.verification.findings,
                reasons=decision.reasons,
                citations=cited,
            )
            on_tier(spec.name)
            self._count_breaches(spec.name, 0)  # a counter born at 1 shows no increase()
            try:
                await workflow.wait_condition(
                    lambda: self.verdict is not None,
                    timeout=spec.sla,
                    timeout_summary=f"approval SLA, tier {spec.name}",
                )
            except TimeoutError:
                if self.verdict is not None:
                    break  # a verdict accepted in the same task as the deadline still counts
                self.reviews.append(
                    ReviewRecord(
                        approver="system",
                        verdict="expired",
                        reason=f"SLA of {spec.sla} expired at tier {spec.name}",
                        tier=tier,
                        at=workflow.now(),
                    )
                )
                self._count_breaches(spec.name, 1)
                tier += 1
        self.pending = None
        self.expired = self.verdict is None
        self._time_wait(began)
        return self.verdict

    # --- metrics: the workflow's meter records nothing on replay, and adds no command ----

    @property
    def _domain(self) -> str:
        return self._pack.name if self._pack is not None else "unknown"

    def _count_breaches(self, tier: str, breaches: int) -> None:
        workflow.metric_meter().create_counter(
            metrics.SLA_BREACHES, "Approval tiers whose SLA ran out without a verdict"
        ).add(breaches, {"domain": self._domain, "tier": tier})

    def _time_wait(self, began: datetime) -> None:
        workflow.metric_meter().create_histogram_float(
            metrics.STAGE_LATENCY, "Time a resolution run spent in each stage", "s"
        ).record(
            (workflow.now() - began).total_seconds(),
            {"domain": self._domain, "stage": "approval_wait"},
        )

    def reopen(self, why: str) -> None:
        """The approved proposal, judged again, needs more than its approver may give: put it
        to people again (the next ``wait``), as a new version."""
        self.reviews.append(
            ReviewRecord(
                approver="system",
                verdict="reopened",
                reason=why,
                tier=self.tier if self.tier is not None else -1,
                at=workflow.now(),
            )
        )
        self.verdict, self.edited, self.tier = None, None, None

    # --- reviews ------------------------------------------------------------------------

    def check_review(self, review: Review | Edit) -> None:
        """Raises ReviewRefused when ``review`` (or an edit) must not count."""
        if self.verdict is not None:
            raise ReviewRefused("already_decided", "a verdict was already recorded")
        if self.pending is None:
            raise ReviewRefused("nothing_pending", "no approval is pending for this request")
        authorise_review(
            review,
            self.pending,
            self._request,
            self.policy,
            workflow_id=workflow.info().workflow_id,
            now=workflow.now(),
            require_digest=self.signed_proposal,
        )
        if self.reviewed_text:
            _showable(review)

    def accept(self, review: Review) -> ReviewReceipt:
        assert self.pending is not None
        self.tier = self.pending.tier
        self.verdict = review
        self.reviews.append(
            ReviewRecord(
                approver=review.approver,
                verdict=review.verdict,
                reason=review.reason,
                tier=self.tier,
                at=workflow.now(),
                key_id=review.signature.key_id if review.signature else None,
            )
        )
        return ReviewReceipt(
            accepted=True,
            tier=self.tier,
            tier_name=self.pending.tier_name,
            detail=f"{review.verdict} recorded",
        )

    def record_refusal(self, approver: str, refused: ReviewRefused) -> None:
        if sum(1 for r in self.reviews if r.verdict == "refused") >= MAX_REFUSED_SIGNALS:
            return  # a flood of bad signals must not grow the outcome without bound
        reason = f"{refused.code}: {refused.detail}"
        if self.reviewed_text:  # a name and fields the message gave, unchecked: as escapes
            approver, reason = visible(approver), visible(reason)
        self.reviews.append(
            ReviewRecord(
                approver=approver,
                verdict="refused",
                reason=reason,
                tier=self.pending.tier if self.pending else -1,
                at=workflow.now(),
            )
        )

    # --- edits --------------------------------------------------------------------------

    def check_edit(self, edit: Edit, assess: Assess) -> Edited:
        """The edited facts, or ReviewRefused. In order: the review's checks, the tools'
        contracts, policy on the edited proposal, and the editor's own reach: an edit that
        needs a higher tier than any the editor holds is theirs to propose, not to approve."""
        self.check_review(edit)
        assert self.pending is not None and self._pack is not None
        original = self.pending.proposal
        changed = original.model_dump(mode="json")
        if edit.answer is not None:
            changed["answer"] = edit.answer
        if edit.tool_calls is not None:
            changed["tool_calls"] = [c.model_dump(mode="json") for c in edit.tool_calls]
        carried: tuple[str, ...] = ()
        if self.reviewed_text and edit.answer not in (None, original.answer):
            carried = self._carry(changed["tool_calls"], original.answer, edit)
        try:
            edited = self._pack.tools.validate_proposal(
                json.dumps(changed), intents=self._pack.intents
            )
        except ProposalInvalid as invalid:
            raise ReviewRefused("edit_invalid", "; ".join(invalid.errors)) from None
        if edited == original:
            raise ReviewRefused("edit_changes_nothing", "approve instead: the edit is the proposal")
        try:
            facts, decision = assess(edited)
        except Exception as err:  # a pack that cannot judge the edit does not get to hang it
            raise ReviewRefused("edit_invalid", f"could not be judged: {err!r}"[:300]) from None
        if decision.action is DecisionAction.REJECT:
            raise ReviewRefused(
                "edit_rejected_by_policy", "; ".join(r.detail for r in decision.reasons)
            )
        needed = decision.tier if decision.action is DecisionAction.APPROVAL else None
        reach = self.policy.reach(edit.approver)
        if needed is not None and (reach is None or needed > reach):
            held = self.policy.tiers[reach].name if reach is not None else "none"
            raise ReviewRefused(
                "edit_exceeds_limit",
                f"the edit needs tier {self.policy.tiers[needed].name} ("
                + "; ".join(r.detail for r in decision.reasons)
                + f"); {edit.approver} decides up to tier {held}",
            )
        return Edited(facts, carried)

    def _carry(self, calls: list[dict[str, Any]], was: str, edit: Edit) -> tuple[str, ...]:
        """An edited answer goes where the model's went: each outbound argument (a message
        body) that held the model's answer holds the new one. An outbound argument that says
        something else must be edited too, unless the edit sets the calls itself: else the
        approver's correction is recorded and the subject is sent the model's words."""
        assert self._pack is not None and edit.answer is not None
        carried = []
        for call in calls:
            if call["tool"] not in self._pack.tools:
                continue  # refused by the contracts next
            for argument in self._pack.tools.get(call["tool"]).outbound:
                said = call["arguments"].get(argument)
                if said == was:
                    call["arguments"][argument] = edit.answer
                    carried.append(f"{call['tool']}.{argument}")
                elif edit.tool_calls is None and said is not None and said != edit.answer:
                    raise ReviewRefused(
                        "edit_misses_outbound",
                        f"{call['tool']}.{argument} also reaches the "
                        f"{self._pack.subject_label} and does not say the answer: "
                        "edit it too, or approve the answer as it is",
                    )
        return tuple(carried)

    def accept_edit(self, edit: Edit, edited: Edited) -> ReviewReceipt:
        assert self.pending is not None and edited.facts.proposal is not None
        self.edited = edited.facts
        self.edits.append(
            EditRecord(
                approver=edit.approver,
                reason=edit.reason,
                tier=self.pending.tier,
                original=self.pending.proposal,
                edited=edited.facts.proposal,
                at=workflow.now(),
            )
        )
        accepted = self.accept(
            Review(
                approver=edit.approver,
                verdict="approve",
                reason=edit.reason,
                proposal_version=edit.proposal_version,
                proposal_sha256=edit.proposal_sha256,
                signature=edit.signature,
            )
        )
        detail = "edit approved" + (
            f"; the new answer is sent as {', '.join(edited.carried)}" if edited.carried else ""
        )
        return accepted.model_copy(update={"tier": self.edits[-1].tier, "detail": detail})


def _showable(review: Review | Edit) -> None:
    """What a person wrote is kept in the history and shown to people (an operator's
    terminal, the console) or sent to the subject: never a control or invisible character,
    which a terminal would obey and a reader would not see. Tab and newline are text."""
    said = [("reason", review.reason)]
    if isinstance(review, Edit):
        said.append(("answer", review.answer or ""))
        for call in review.tool_calls or []:
            said += [("tool", call.tool), *_strings(call.tool, call.arguments)]
    for where, text in said:
        odd = hidden(text, "\n\t")
        if odd:
            raise ReviewRefused(
                "hidden_characters",
                f"{where}: control or invisible characters are not kept (U+{ord(odd[0]):04X})",
            )


def _strings(where: str, value: object) -> list[tuple[str, str]]:
    """Every string in ``value`` (keys too, at any depth), with where it is."""
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, dict):
        return [
            found
            for key, item in value.items()
            for found in [(where, str(key)), *_strings(f"{where}.{key}", item)]
        ]
    if isinstance(value, list):
        return [found for item in value for found in _strings(where, item)]
    return []
