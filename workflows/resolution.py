"""ResolutionWorkflow: one governed request, from ticket to recorded outcome.

retrieve -> look up order -> propose (bounded repair) -> verify -> decide (pure policy)
-> approval (Update/signal, SLA per tier, safe default) -> act (idempotent tools) -> record.
"""

from __future__ import annotations

import json

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.model import ModelActivities
    from activities.records import RecordActivities
    from activities.retrieval import RetrievalActivities
    from activities.verification import ARGUMENT_CODES, VerificationActivities, argument_findings
    from domains.support import INTENTS
    from domains.support.tools import REGISTRY
    from tether import errors, search
    from tether.approvals import ReviewRefused, approval_limit, authorise_review
    from tether.config import Retry
    from tether.contracts import (
        Decision,
        DecisionAction,
        Edit,
        EditRecord,
        Evidence,
        Finding,
        FreshnessReport,
        Mode,
        ModelIdentity,
        OrderSnapshot,
        Outcome,
        PendingApproval,
        Proposal,
        ProposeInput,
        Reason,
        ResolutionInput,
        RetrievalQuery,
        Review,
        ReviewReceipt,
        ReviewRecord,
        Stage,
        ToolCall,
        ToolInvocation,
        ToolResult,
        Verification,
        VerifyInput,
        WorkflowStatus,
    )
    from tether.policy import PolicyInput, decide, refund_total
    from tether.tools import ProposalInvalid


MAX_REFUSED_SIGNALS = 20


# Failures that mean the target made no change: refused before acting, or refused by it.
NO_EFFECT = frozenset(
    {
        errors.INVALID_TOOL_CALL,
        errors.PERMISSION_DENIED,
        errors.PRECONDITION_FAILED,
        errors.UPSTREAM_REJECTED,
        errors.ORDER_NOT_FOUND,
        errors.IDEMPOTENCY_CONFLICT,
    }
)


def _failure(cause: BaseException | None) -> tuple[str, str]:
    """(kind, detail) of an activity failure: the outer error's type, and the chain down to
    the last attempt's own error (a timeout says little without it)."""
    kinds: list[str] = []
    parts: list[str] = []
    while cause is not None:
        if isinstance(cause, ApplicationError):
            kinds.append(cause.type or "ApplicationError")
            parts.append(f"{kinds[-1]}: {cause.message}")
        else:
            kinds.append(type(cause).__name__)
            parts.append(f"{kinds[-1]}: {cause}")
        cause = cause.__cause__
    return (kinds[0] if kinds else "unknown"), " <- ".join(parts)


def workflow_id_for(request_id: str) -> str:
    """Deterministic id: starting the same request twice runs it once."""
    return f"resolution-{request_id}"


def _retry(r: Retry, *, non_retryable: list[str] | None = None) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=r.initial,
        backoff_coefficient=r.backoff,
        maximum_interval=r.maximum_interval,
        maximum_attempts=r.maximum_attempts,
        non_retryable_error_types=non_retryable,
    )


@workflow.defn
class ResolutionWorkflow:
    @workflow.init
    def __init__(self, inp: ResolutionInput) -> None:
        self._inp = inp
        self._stage = Stage.RECEIVED
        self._mode = Mode.NORMAL
        self._intent: str | None = None
        self._decision: Decision | None = None
        self._pending: PendingApproval | None = None
        self._verdict: Review | None = None
        self._reviews: list[ReviewRecord] = []
        self._compensations: list[ToolResult] = []
        self._model_failure: Reason | None = None
        # (mode, evidence, order, verification) as first decided: what an edit is judged by.
        self._facts: tuple[Mode, Evidence, OrderSnapshot | None, Verification | None]
        self._edited: tuple[Proposal, Verification] | None = None
        self._edits: list[EditRecord] = []

    # --- run -------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: ResolutionInput) -> Outcome:
        started = workflow.now()
        request, policy = inp.request, inp.policy

        self._set_stage(Stage.RETRIEVING)
        evidence = await self._retrieve()
        order = await self._lookup_order(request.order_reference())

        self._set_stage(Stage.PROPOSING)
        proposal, model, mode = await self._propose(evidence, order)
        self._mode = mode
        if proposal is not None:
            self._intent = proposal.intent

        verification: Verification | None = None
        if proposal is not None:
            self._set_stage(Stage.VERIFYING)
            verification = await self._verify(
                VerifyInput(request=request, evidence=evidence, order=order, proposal=proposal)
            )

        self._facts = (mode, evidence, order, verification)

        def decide_now(order: OrderSnapshot | None) -> Decision:
            return decide(self._policy_input(proposal, verification, order), policy, REGISTRY)

        self._set_stage(Stage.DECIDING)
        decision = decide_now(order)
        self._decision, self._mode = decision, decision.mode

        approved = decision.action is DecisionAction.AUTO
        if decision.action is DecisionAction.APPROVAL and proposal is not None:
            assert verification is not None
            approved = await self._await_approval(decision, proposal, verification, evidence)
            if approved and self._edited is not None:
                # An approver's edit replaces the proposal; its own checks already passed, and
                # the approval grants what the edited calls need.
                proposal, verification = self._edited
                decision = decision.model_copy(
                    update={"permissions": decide_now(order).permissions}
                )
                self._decision = decision
            # Hours may pass while a human looks: decide again on a fresh read before acting.
            # Patched, so histories recorded before this step keep replaying.
            if approved and workflow.patched("recheck-policy-after-approval"):
                recheck = decide_now(await self._lookup_order(request.order_reference()))
                if recheck.action is DecisionAction.REJECT:
                    approved = False
                    decision = recheck
                    self._decision = recheck

        actions: list[ToolResult] = []
        if approved and proposal is not None:
            self._set_stage(Stage.ACTING)
            actions = await self._act(proposal.tool_calls, decision)

        answer, citations = self._answer(decision, proposal, evidence, approved)
        outcome = Outcome(
            request_id=request.request_id,
            workflow_id=workflow.info().workflow_id,
            intent=self._intent,
            decision=decision,
            mode=self._mode,
            answer=answer,
            citations=citations,
            proposal=proposal,
            verification=verification,
            freshness=evidence.freshness,
            actions=actions,
            compensations=list(self._compensations),
            reviews=list(self._reviews),
            edits=list(self._edits),
            top_score=max((p.score for p in evidence.passages), default=None),
            evidence=evidence,
            order=self._facts[2],
            request=request,
            followup_required=not approved or any(not a.ok for a in actions),
            model=model,
            started_at=started,
            finished_at=workflow.now(),
        )
        self._set_stage(Stage.RECORDING)
        await workflow.execute_activity_method(
            RecordActivities.record_outcome,
            outcome,
            start_to_close_timeout=inp.timeouts.record,
            retry_policy=_retry(inp.timeouts.record_retry),
        )
        self._set_stage(Stage.COMPLETED)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return outcome

    # --- stages ----------------------------------------------------------------------

    def _policy_input(
        self,
        proposal: Proposal | None,
        verification: Verification | None,
        order: OrderSnapshot | None,
    ) -> PolicyInput:
        mode, evidence, _, _ = self._facts
        return PolicyInput(
            request=self._inp.request,
            mode=mode,
            proposal=proposal,
            verification=verification,
            order=order,
            freshness=evidence.freshness,
            now=workflow.now(),
            model_failure=self._model_failure,
        )

    async def _retrieve(self) -> Evidence:
        """Evidence, or (when retrieval fails for good) none at all, flagged as stale so that
        policy lets nothing write without a human."""
        inp = self._inp
        try:
            return await workflow.execute_activity_method(
                RetrievalActivities.retrieve_evidence,
                RetrievalQuery(text=inp.request.text, request_id=inp.request.request_id),
                start_to_close_timeout=inp.timeouts.retrieval,
                retry_policy=_retry(inp.timeouts.default_retry),
            )
        except ActivityError as err:
            workflow.logger.warning("retrieval failed, continuing without evidence: %s", err.cause)
            return Evidence(
                query=inp.request.text,
                passages=[],
                freshness=FreshnessReport(
                    index_refreshed_at=None, index_age_seconds=None, stale_index=True
                ),
            )

    async def _verify(self, inp: VerifyInput) -> Verification:
        """The verifier's findings, or, when it cannot run, a finding that says so (which
        sends the proposal to a human: nothing unverified acts on its own)."""
        try:
            return await workflow.execute_activity_method(
                VerificationActivities.verify_proposal,
                inp,
                start_to_close_timeout=self._inp.timeouts.verification,
                retry_policy=_retry(self._inp.timeouts.default_retry),
            )
        except ActivityError as err:
            workflow.logger.warning("verifier unavailable: %s", err.cause)
            return Verification(
                grounding=0.0,
                sentences=0,
                findings=[
                    Finding(code="verifier_unavailable", severity="warn", detail=str(err.cause))
                ],
            )

    async def _lookup_order(self, order_id: str | None) -> OrderSnapshot | None:
        """The order, or None if it does not exist or cannot be read: policy then refuses
        any money movement against it (order_unknown)."""
        if order_id is None:
            return None
        try:
            result = await self._run_tool(
                ToolCall(tool="lookup_order", arguments={"order_id": order_id}),
                key=self._key(0, "lookup_order"),
                granted=[REGISTRY.get("lookup_order").permission],  # the runtime's own read
                why="the runtime reads the order named in the request",
            )
        except ActivityError as err:
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.type == errors.ORDER_NOT_FOUND):
                workflow.logger.warning("order %s unreadable: %s", order_id, cause)
            return None
        return OrderSnapshot.model_validate(result.output)

    async def _propose(
        self, evidence: Evidence, order: OrderSnapshot | None
    ) -> tuple[Proposal | None, ModelIdentity | None, Mode]:
        """Ask the model, validate, repair up to the bound; else change operating mode."""
        inp = self._inp
        repair_errors: list[str] = []
        model: ModelIdentity | None = None
        for attempt in range(inp.policy.max_repairs + 1):
            try:
                raw = await workflow.execute_activity_method(
                    ModelActivities.propose_resolution,
                    ProposeInput(
                        request=inp.request,
                        evidence=evidence,
                        order=order,
                        tool_catalogue=REGISTRY.catalogue(),
                        intents=list(INTENTS),
                        repair_errors=repair_errors,
                        attempt=attempt,
                    ),
                    task_queue=inp.model_queue,
                    schedule_to_start_timeout=inp.timeouts.model_schedule_to_start,
                    start_to_close_timeout=inp.timeouts.model_start_to_close,
                    schedule_to_close_timeout=inp.timeouts.model_budget,
                    retry_policy=_retry(inp.timeouts.model_retry),
                    summary=f"propose (attempt {attempt + 1})",
                )
            except ActivityError as err:
                cause = err.cause
                workflow.logger.warning("model unavailable, retrieval-only mode: %s", cause)
                circuit = isinstance(cause, ApplicationError) and cause.type == errors.CIRCUIT_OPEN
                self._model_failure = Reason(
                    code="circuit_open" if circuit else "model_unavailable",
                    detail=f"no proposal, answering from passages only: {cause}"[:300],
                )
                return None, model, Mode.RETRIEVAL_ONLY
            model = raw.model
            try:
                return REGISTRY.validate_proposal(raw.content, intents=INTENTS), model, Mode.NORMAL
            except ProposalInvalid as invalid:
                workflow.logger.info("proposal invalid (attempt %d): %s", attempt + 1, invalid)
                repair_errors = invalid.errors
        return None, model, Mode.HUMAN_DRAFT

    async def _await_approval(
        self, decision: Decision, proposal: Proposal, verification: Verification, evidence: Evidence
    ) -> bool:
        """Wait for an authorised verdict; on SLA expiry escalate a tier; past the last, no action."""
        tiers = self._inp.policy.tiers
        cited = [p for p in evidence.passages if p.passage_id in set(proposal.citations)]
        tier = decision.tier or 0
        while tier < len(tiers):
            spec = tiers[tier]
            self._verdict = None
            self._pending = PendingApproval(
                tier=tier,
                tier_name=spec.name,
                role=spec.role,
                deadline=workflow.now() + spec.sla,
                proposal_version=1,
                proposal=proposal,
                findings=verification.findings,
                reasons=decision.reasons,
                citations=cited,
            )
            self._set_stage(Stage.AWAITING_APPROVAL, queue=spec.name)
            try:
                await workflow.wait_condition(
                    lambda: self._verdict is not None,
                    timeout=spec.sla,
                    timeout_summary=f"approval SLA, tier {spec.name}",
                )
            except TimeoutError:
                if self._verdict is not None:
                    break  # a verdict accepted in the same task as the deadline still counts
                self._reviews.append(
                    ReviewRecord(
                        approver="system",
                        verdict="expired",
                        reason=f"SLA of {spec.sla} expired at tier {spec.name}",
                        tier=tier,
                        at=workflow.now(),
                    )
                )
                tier += 1
                continue
            break
        self._pending = None
        if self._verdict is None:
            self._mode = Mode.SAFE_DEFAULT
            return False
        return self._verdict.verdict == "approve"

    async def _act(self, calls: list[ToolCall], decision: Decision) -> list[ToolResult]:
        """Run write tools in order. If one fails for good, stop, and (saga) compensate the
        completed steps in reverse; the compensations are recorded on the outcome."""
        if workflow.patched("saga-irreversible-last"):
            # Steps that can be undone first, irreversible ones (a message sent) last: a
            # failure then never strands an effect that no compensation can take back.
            calls = sorted(calls, key=lambda c: REGISTRY.get(c.tool).compensation is None)
        why = f"{decision.action.value}: {', '.join(decision.codes())}"
        results: list[ToolResult] = []
        for step, call in enumerate(calls, start=1):
            key = self._key(step, call.tool)
            result = await self._try_tool(call, key=key, granted=decision.permissions, why=why)
            results.append(result)
            if not result.ok:
                # Patched: histories of failed plans recorded before sagas keep replaying.
                if workflow.patched("saga-compensation"):
                    await self._compensate(results)
                break
        return results

    async def _compensate(self, done: list[ToolResult]) -> None:
        """Undo, newest first, every step that changed the target: completed ones, and a
        failed one whose effect reconciliation found."""
        for step in range(len(done), 0, -1):
            result = done[step - 1]
            undo = REGISTRY.get(result.tool).compensation
            if undo is None or not (result.ok or result.unconfirmed_effect):
                continue  # irreversible (a message sent) or nothing happened: nothing to undo
            call = undo(result)
            key = f"{workflow.info().workflow_id}/compensate/{step}/{call.tool}"
            # The runtime grants a compensation the permission to undo what it was allowed to do.
            grant = [REGISTRY.get(call.tool).permission]
            self._compensations.append(
                await self._try_tool(
                    call, key=key, granted=grant, why=f"saga: compensates step {step}", undo=True
                )
            )

    async def _try_tool(
        self, call: ToolCall, *, key: str, granted: list[str], why: str, undo: bool = False
    ) -> ToolResult:
        """The tool's result, or a failed result that says why (after retries). When the
        failure leaves the effect unknown, the target is asked by key (reconciliation)."""
        try:
            return await self._run_tool(call, key=key, granted=granted, why=why, undo=undo)
        except ActivityError as err:
            kind, detail = _failure(err.cause)
            failed = ToolResult(
                tool=call.tool,
                idempotency_key=key,
                arguments=call.arguments,
                ok=False,
                error=detail,
            )
            if kind in NO_EFFECT or not workflow.patched("reconcile-unknown-effects"):
                return failed
            found: ToolResult = await workflow.execute_activity(
                "reconcile_tool",
                self._invocation(call, key, granted),
                result_type=ToolResult,
                start_to_close_timeout=self._inp.timeouts.tool,
                # Money may have moved: keep asking until the target answers.
                retry_policy=_retry(self._inp.timeouts.compensation_retry),
                summary=f"reconcile {key} after {kind}",
            )
            return found.model_copy(update={"error": detail})

    def _invocation(self, call: ToolCall, key: str, granted: list[str]) -> ToolInvocation:
        return ToolInvocation(
            tool=call.tool,
            arguments=call.arguments,
            idempotency_key=key,
            request_id=self._inp.request.request_id,
            granted=granted,
        )

    async def _run_tool(
        self, call: ToolCall, *, key: str, granted: list[str], why: str, undo: bool = False
    ) -> ToolResult:
        timeouts = self._inp.timeouts
        result: ToolResult = await workflow.execute_activity(
            call.tool,
            self._invocation(call, key, granted),
            result_type=ToolResult,
            start_to_close_timeout=timeouts.tool,
            # A compensation must not give up: the business system has to end as it began.
            schedule_to_close_timeout=None if undo else timeouts.tool_budget,
            retry_policy=_retry(
                timeouts.compensation_retry if undo else timeouts.tool_retry,
                non_retryable=sorted(
                    NO_EFFECT | {errors.UPSTREAM_MALFORMED, errors.POSTCONDITION_FAILED}
                ),
            ),
            # The audit's story, readable in the Temporal UI's event list.
            summary=f"{call.tool} {call.arguments} · key {key} · {why}"[:400],
        )
        return result

    def _key(self, step: int, tool: str) -> str:
        """Idempotency key: the same workflow and step always send the same key."""
        return f"{workflow.info().workflow_id}/{step}/{tool}"

    def _answer(
        self, decision: Decision, proposal: Proposal | None, evidence: Evidence, approved: bool
    ) -> tuple[str, list[str]]:
        if proposal is None:
            # Retrieval-only: cite the best passages, act on nothing, a human follows up.
            best = evidence.passages[:2]
            if not best:
                return "No answer could be found; a person will follow up.", []
            quoted = " ".join(p.text for p in best)
            return f"{quoted} A person from our team will follow up.", [p.passage_id for p in best]
        if approved:
            return proposal.answer, proposal.citations
        if decision.action is DecisionAction.REJECT:
            return "Not processed: " + "; ".join(r.detail for r in decision.reasons), []
        if self._mode is Mode.SAFE_DEFAULT or self._verdict is None:
            return (
                "No approver answered in time; no action was taken and a person will follow up.",
                [],
            )
        return f"Declined by {self._verdict.approver}: {self._verdict.reason}", []

    def _set_stage(self, stage: Stage, *, queue: str = "none") -> None:
        self._stage = stage
        workflow.upsert_search_attributes(
            [
                search.STAGE.value_set(stage.value),
                search.QUEUE.value_set(queue),
                search.MODE.value_set(self._mode.value),
                search.INTENT.value_set(self._intent or "unknown"),
            ]
        )

    # --- approval messages -----------------------------------------------------------

    @workflow.update
    async def review(self, review: Review) -> ReviewReceipt:
        """Approve or reject the pending proposal (validator checks identity and role)."""
        # Re-checked here: two Updates can both pass validation before either handler runs.
        self._validate_review(review)
        assert self._pending is not None
        tier = self._pending.tier
        self._accept(review, tier)
        return ReviewReceipt(accepted=True, tier=tier, detail=f"{review.verdict} recorded")

    @review.validator
    def _validate_review(self, review: Review) -> None:
        try:
            self._authorise(review)
        except ReviewRefused as refused:
            # An exception in a validator rejects the Update without touching history.
            raise ApplicationError(
                str(refused), refused.code, type=errors.REVIEW_REFUSED, non_retryable=True
            ) from None

    def _authorise(self, review: Review) -> None:
        if self._verdict is not None:
            raise ReviewRefused("already_decided", "a verdict was already recorded")
        authorise_review(review, self._pending, self._inp.request, self._inp.policy)

    @workflow.signal
    def review_signal(self, review: Review) -> None:
        """The same verdict for tools that can only signal; the same checks apply here."""
        try:
            self._authorise(review)
        except ReviewRefused as refused:
            self._record_refusal(review.approver, refused)
            return
        assert self._pending is not None
        self._accept(review, self._pending.tier)

    def _record_refusal(self, approver: str, refused: ReviewRefused) -> None:
        refused_so_far = sum(1 for r in self._reviews if r.verdict == "refused")
        if refused_so_far >= MAX_REFUSED_SIGNALS:
            return  # a flood of bad signals must not grow the outcome without bound
        self._reviews.append(
            ReviewRecord(
                approver=approver,
                verdict="refused",
                reason=f"{refused.code}: {refused.detail}",
                tier=self._pending.tier if self._pending else -1,
                at=workflow.now(),
            )
        )

    @workflow.update
    async def edit(self, edit: Edit) -> ReviewReceipt:
        """Approve a changed version of the pending proposal (validator: the same identity
        checks as a review, the same contracts and policy, and the editor's own limit)."""
        edited = self._check_edit(edit)
        assert self._pending is not None
        self._accept_edit(edit, edited, self._pending.tier)
        return ReviewReceipt(accepted=True, tier=self._pending.tier, detail="edit approved")

    @edit.validator
    def _validate_edit(self, edit: Edit) -> None:
        self._check_edit(edit)

    @workflow.signal
    def edit_signal(self, edit: Edit) -> None:
        """The same edit for tools that can only signal; refused ones are recorded."""
        try:
            edited = self._checked_edit(edit)
        except ReviewRefused as refused:
            self._record_refusal(edit.approver, refused)
            return
        assert self._pending is not None
        self._accept_edit(edit, edited, self._pending.tier)

    def _check_edit(self, edit: Edit) -> tuple[Proposal, Verification]:
        try:
            return self._checked_edit(edit)
        except ReviewRefused as refused:
            raise ApplicationError(
                str(refused), refused.code, type=errors.REVIEW_REFUSED, non_retryable=True
            ) from None

    def _checked_edit(self, edit: Edit) -> tuple[Proposal, Verification]:
        """The edited proposal and its verification, or ReviewRefused. Pure: also a validator."""
        as_review = Review(
            approver=edit.approver,
            verdict="approve",
            reason=edit.reason,
            proposal_version=edit.proposal_version,
        )
        self._authorise(as_review)
        assert self._pending is not None
        original = self._pending.proposal
        changed = original.model_dump(mode="json")
        if edit.answer is not None:
            changed["answer"] = edit.answer
        if edit.tool_calls is not None:
            changed["tool_calls"] = [c.model_dump(mode="json") for c in edit.tool_calls]
        try:
            edited = REGISTRY.validate_proposal(json.dumps(changed), intents=INTENTS)
        except ProposalInvalid as invalid:
            raise ReviewRefused("edit_invalid", "; ".join(invalid.errors)) from None
        if edited == original:
            raise ReviewRefused("edit_changes_nothing", "approve instead: the edit is the proposal")
        _, _, order, verification = self._facts
        assert verification is not None
        # The tool arguments are checked against the request again; the grounding stays the
        # model's (an operator's words are theirs to answer for).
        checked = verification.model_copy(
            update={
                "findings": [f for f in verification.findings if f.code not in ARGUMENT_CODES]
                + argument_findings(self._inp.request, edited.tool_calls)
            }
        )
        decision = decide(self._policy_input(edited, checked, order), self._inp.policy, REGISTRY)
        if decision.action is DecisionAction.REJECT:
            raise ReviewRefused(
                "edit_rejected_by_policy", "; ".join(r.detail for r in decision.reasons)
            )
        total = refund_total(edited, REGISTRY)
        limit = approval_limit(edit.approver, self._inp.policy)
        if total > limit:
            raise ReviewRefused(
                "edit_exceeds_limit",
                f"the edit refunds {total / 100:.2f}, {edit.approver} may approve up to "
                f"{limit / 100:.2f}",
            )
        return edited, checked

    def _accept_edit(self, edit: Edit, edited: tuple[Proposal, Verification], tier: int) -> None:
        assert self._pending is not None
        self._edited = edited
        self._edits.append(
            EditRecord(
                approver=edit.approver,
                reason=edit.reason,
                tier=tier,
                original=self._pending.proposal,
                edited=edited[0],
                at=workflow.now(),
            )
        )
        self._accept(Review(approver=edit.approver, verdict="approve", reason=edit.reason), tier)

    def _accept(self, review: Review, tier: int) -> None:
        self._verdict = review
        self._reviews.append(
            ReviewRecord(
                approver=review.approver,
                verdict=review.verdict,
                reason=review.reason,
                tier=tier,
                at=workflow.now(),
            )
        )

    @workflow.query
    def status(self) -> WorkflowStatus:
        return WorkflowStatus(
            request_id=self._inp.request.request_id,
            stage=self._stage,
            mode=self._mode,
            intent=self._intent,
            decision=self._decision,
            pending=self._pending,
            reviews=list(self._reviews),
            request=self._inp.request,
        )
