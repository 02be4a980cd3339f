"""ResolutionWorkflow: one governed request, from ticket to recorded outcome, for any domain
pack. It reads top to bottom:

pin the workers' policy (an activity: version and hash in history) -> gather facts
(retrieve, read context, propose with bounded repair, verify) -> decide (pure policy) ->
approve (signed Update/signal, SLA per tier, safe default; read again and decide again) ->
act (idempotent tools, saga) -> record.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from tether import candidates, errors, names, overlay, packs, search
    from tether.activities.records import RecordActivities
    from tether.activities.shadowstart import ShadowStarts
    from tether.activities.verification import argument_findings
    from tether.approvals import ReviewRefused
    from tether.config import PolicyConfig
    from tether.contracts import (
        ContextRecord,
        Decision,
        DecisionAction,
        Edit,
        Facts,
        LiveShadowInput,
        Mode,
        Outcome,
        PinnedPolicy,
        Proposal,
        ResolutionInput,
        Review,
        ReviewReceipt,
        ShadowDecision,
        ShadowStart,
        Stage,
        ToolCall,
        ToolResult,
        WorkflowStatus,
    )
    from tether.domain import DomainPack
    from tether.overlay import Overlay
    from tether.policy import argument_total, decide, writes_of

# Workflow code: sandboxed and reloaded with this module, not passed through.
from tether.workflows import steps
from tether.workflows.approval import (
    ApprovalGate,
    Edited,
    parse_message,
    refused_update,
    sender,
)
from tether.workflows.effects import Effects

SHADOW_PRIORITY = 5  # the server's default lowest (live work is 3)

# Stages a run may rest in for long, where operators list it by search attribute.
RESTING = frozenset({Stage.AWAITING_APPROVAL, Stage.WAITING_FOR_MODEL, Stage.COMPLETED})


@workflow.defn(name=names.RESOLUTION)
class ResolutionWorkflow:
    @workflow.init
    def __init__(self, inp: ResolutionInput) -> None:
        self._inp = inp
        try:
            self._pack: DomainPack | None = packs.get(inp.domain)
        except packs.UnknownDomain:
            self._pack = None  # run() fails the task, saying so
        self._stage = Stage.RECEIVED
        self._facts = Facts(
            domain=inp.domain, request=inp.request, evidence=steps.no_evidence(inp.request)
        )
        self._decision: Decision | None = None
        self._pinned: PinnedPolicy | None = None
        self._overlay: Overlay | None = None  # read where a decision would write on its own
        self._beside: ShadowDecision | None = None  # a live-model candidate's, decided here
        self._shadow_start: ShadowStart | None = None  # another's run, to start beside
        self._gate = ApprovalGate(inp.request, self._pack)
        self._effects: Effects | None = None
        self._published: tuple[str, ...] | None = None  # the search attributes last written
        self._plans = True  # steps.PLANNED_WRITES: set from the history once the run pins
        self._read = True  # steps.READ_INTENT: the same

    # --- run -------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: ResolutionInput) -> Outcome:
        started = workflow.now()
        pack = self._pack
        if pack is None:
            # A task failure, not the workflow's: retried until a worker that serves the pack
            # takes it (a rolling deploy), shown in the UI meanwhile. Nothing has run yet.
            raise RuntimeError(f"no domain pack {inp.domain!r} on this worker")
        effects = self._effects = Effects(pack.name, pack.tools, inp.timeouts, inp.request)
        readable = not pack.problems(inp.request)  # else policy rejects it (invalid_request)
        pinning = steps.pin_policy(pack.name, inp.timeouts, request_id=inp.request.request_id)
        if readable and steps.pin_beside_reads():
            # Two local activities at once: the policy does not say what to read. Retrieval
            # needs the pin (its queue is the workers'), and goes out once both are in.
            pinned, (records, withheld) = await asyncio.gather(
                pinning, self._read_records(pack, effects)
            )
            self._facts = self._facts.model_copy(update={"context": records, "withheld": withheld})
        else:
            pinned = await pinning
        self._pinned = pinned
        if pinned.resolved_at is not None:
            # Its tools' keys are that run's: this one would take their effects as its own,
            # and a failure here would undo them. What was recorded stands.
            raise ApplicationError(
                f"request {inp.request.request_id} was resolved at "
                f"{pinned.resolved_at.isoformat()} by an earlier run of {workflow.info().workflow_id}"
                ": its outcome stands; a new request needs a new request id",
                type=errors.ALREADY_RESOLVED,
                non_retryable=True,
            )
        self._gate.pin(self._policy)
        self._gate.reviewed_text = steps.reviewed_text()
        self._gate.signed_proposal = steps.signed_proposal()
        self._read = steps.read_intent()  # read once: the edit validator decides too
        self._plans = steps.planned_writes()
        policy = self._policy

        if readable:
            self._set_stage(Stage.RETRIEVING)
            retrieving = steps.retrieve(pack.name, inp.request, inp.timeouts, pinned.compute_queue)
            if steps.pin_beside_reads():
                self._facts = self._facts.model_copy(update={"evidence": await retrieving})
            elif steps.current():
                # Neither needs the other. The reads are local activities, so the workflow task
                # (and with it retrieval's dispatch) completes once they are done: one round
                # trip through the server, not two.
                evidence, (records, withheld) = await asyncio.gather(
                    retrieving, self._read_records(pack, effects)
                )
                self._facts = self._facts.model_copy(
                    update={"evidence": evidence, "context": records, "withheld": withheld}
                )
            else:
                self._facts = self._facts.model_copy(update={"evidence": await retrieving})
                self._facts = await self._read_context(pack, effects)
            if not self._facts.withheld:  # else policy refuses it, having shown the model nothing
                self._set_stage(Stage.PROPOSING)
                self._facts = await steps.reuse(
                    self._facts, pack, policy, inp.timeouts, self._model_queue
                )
                if self._facts.reused_from is None:
                    self._facts = await steps.propose(
                        self._facts,
                        pack,
                        policy,
                        inp.timeouts,
                        self._model_queue,
                        waiting=lambda: self._set_stage(Stage.WAITING_FOR_MODEL),
                    )
                if self._facts.proposal is not None:
                    self._set_stage(Stage.VERIFYING)
                    verifying = steps.verify(self._facts, inp.timeouts, pinned.compute_queue)
                    if steps.current():
                        # The tallies count the proposal, not its verification.
                        verified, counted = await asyncio.gather(
                            verifying, steps.tally(self._facts, pack, policy, inp.timeouts)
                        )
                        self._facts = verified.model_copy(update={"tallies": counted.tallies})
                    else:
                        self._facts = await verifying
                        self._facts = await steps.tally(self._facts, pack, policy, inp.timeouts)

        self._set_stage(Stage.DECIDING)
        shadowing = self._shadow(inp, pack)
        decision = self._decide()
        if self._writes_alone(decision):
            assert self._facts.proposal is not None
            intent = self._facts.proposal.intent
            self._overlay = await steps.overlay_at_decision(pinned, intent, started, inp.timeouts)
            verification = self._facts.verification
            read = verification.intent if verification is not None else None
            if self._read and self._overlay is None and read is not None and read != intent:
                # Naming another intent does not escape the overlay on the one read.
                self._overlay = await steps.overlay_at_decision(pinned, read, started, inp.timeouts)
            decision = self._decide()
        approved = decision.action is DecisionAction.AUTO
        if decision.action is DecisionAction.APPROVAL:
            if self._candidate_waiting:  # now: a person may take days
                await self._keep_beside(inp)
            approved = await self._approve(pack, effects, decision)

        actions: list[ToolResult] = []
        if approved and self._facts.proposal is not None:
            self._set_stage(Stage.ACTING)
            assert self._decision is not None
            actions = await effects.act(self._facts.proposal.tool_calls, self._decision)

        outcome = self._outcome(started, approved, actions)
        self._set_stage(Stage.RECORDING)
        record = (
            workflow.execute_local_activity_method
            if steps.since(steps.LEAN_HISTORY)
            else workflow.execute_activity_method
        )
        recorded = record(
            RecordActivities.record_outcome,
            outcome,
            start_to_close_timeout=inp.timeouts.record,
            retry_policy=inp.timeouts.record_retry.policy(),
        )
        if not self._candidate_waiting:
            await recorded
        else:  # the candidate's decision, or its run's start, beside it at once
            await asyncio.gather(recorded, self._keep_beside(inp))
        self._set_stage(Stage.COMPLETED)
        if shadowing is not None:
            await self._shadow_started(shadowing)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return outcome

    # --- the steps -------------------------------------------------------------------

    @property
    def _model_queue(self) -> str:
        """Where the model is asked: the workers' queue, pinned with the policy, unless the
        workers let a caller name the one it asked for (a caller names a domain and a request,
        never who answers it); the input's in a run pinned before the workers said theirs."""
        asked = self._inp.model_queue
        return self._pinned.answering(asked) if self._pinned else asked

    @property
    def _policy(self) -> PolicyConfig:
        assert self._pinned is not None, "pinned before anything is decided"
        return self._pinned.policy

    async def _read_context(self, pack: DomainPack, effects: Effects) -> Facts:
        """The facts with the records the request points at (``_read_records``)."""
        records, withheld = await self._read_records(pack, effects)
        return self._facts.model_copy(update={"context": records, "withheld": withheld})

    async def _read_records(
        self, pack: DomainPack, effects: Effects
    ) -> tuple[list[ContextRecord], list[str]]:
        """The records the request points at, read through the pack's lookup tools, and the
        references withheld. One that does not exist or cannot be read is left out: policy
        then refuses any write naming it (reference_unknown). One of another subject is
        withheld: its data never leaves the business system, and policy refuses the request."""
        records: list[ContextRecord] = []
        withheld: list[str] = []
        for ref, ident in pack.lookups(self._inp.request):
            try:
                result = await effects.read(
                    pack.lookup_call(ref, ident),
                    key=f"{ref.name}:{ident}",
                    why=f"the runtime reads the {ref.name} named in the request",
                )
                records.append(pack.context_record(ref, ident, result.output))
            except FailureError as err:
                # An activity's failure comes wrapped; a local activity's comes as itself.
                cause = err.cause if isinstance(err, ActivityError) else err
                kind = cause.type if isinstance(cause, ApplicationError) else None
                if kind == errors.NOT_SUBJECTS_RECORD:
                    withheld.append(f"{ref.name}:{ident}")
                elif kind != errors.NOT_FOUND:
                    workflow.logger.warning("%s %s unreadable: %s", ref.name, ident, cause)
            except Exception as err:  # the pack could not describe it: as good as unread
                workflow.logger.warning("%s %s not understood: %r", ref.name, ident, err)
        return records, withheld

    def _writes_alone(self, decision: Decision) -> bool:
        """Whether ``decision`` would write without a person: then the overlay is read."""
        assert self._pack is not None
        return (
            decision.action is DecisionAction.AUTO
            and bool(writes_of(self._facts, self._pack.tools))
            and steps.since_latest(steps.OVERLAY)
        )

    def _decide(self, *, approved_at: int | None = None) -> Decision:
        """The one place the decision is made and written, on the current facts, under the
        conservative overlay if one was read (never looser for it). Once a person has
        approved at tier ``approved_at``, a decision that is not a reject records the
        approval, with the reasons of what was approved (the edited proposal, if edited):
        that approval is what an overlay asks for."""
        assert self._pack is not None
        decision = overlay.apply(
            decide(
                self._facts,
                self._policy,
                self._pack,
                workflow.now(),
                plans=self._plans,
                read=self._read,
            ),
            self._overlay,
            writes=bool(writes_of(self._facts, self._pack.tools)),
            approvable=self._policy.can_decide(0),
        )
        if approved_at is not None and decision.action is not DecisionAction.REJECT:
            needed = decision.tier if decision.action is DecisionAction.APPROVAL else 0
            decision = decision.model_copy(
                update={"action": DecisionAction.APPROVAL, "tier": max(needed or 0, approved_at)}
            )
        self._decision = decision
        return decision

    async def _approve(self, pack: DomainPack, effects: Effects, decision: Decision) -> bool:
        """A person's verdict, then, since hours may pass while they look, the records read
        again and the decision made again. A reject stands; a decision that now needs a tier
        above the approver's reach goes back to the gate, at that tier."""
        while True:
            verdict = await self._gate.wait(
                decision, self._facts, lambda t: self._set_stage(Stage.AWAITING_APPROVAL, t)
            )
            key = verdict.signature.key_id if verdict and verdict.signature else None
            if key and await steps.key_revoked(pack.name, key, self._inp.timeouts):
                self._gate.reopen(f"revoked_key: key {key} was revoked after this request began")
                continue
            if verdict is None or verdict.verdict != "approve":
                return False
            if self._gate.edited is not None:
                self._facts = self._gate.edited
            self._facts = await self._read_context(pack, effects)
            self._facts = await steps.tally(self._facts, pack, self._policy, self._inp.timeouts)
            decision = self._decide(approved_at=self._gate.tier)
            if decision.action is DecisionAction.REJECT:
                return False
            reach = self._policy.reach(verdict.approver)
            if reach is not None and (decision.tier or 0) <= reach:
                return True
            self._gate.reopen(f"now needs tier {self._policy.tiers[decision.tier or 0].name}")

    def _assess(self, proposal: Proposal) -> tuple[Facts, Decision]:
        """An approver's edit judged like the model's proposal: its tool arguments checked
        against the request again, then policy. The grounding stays the model's (an
        operator's words are theirs to answer for). Pure: an Update validator calls it."""
        assert self._pack is not None and self._facts.verification is not None
        verification = self._facts.verification
        facts = self._facts.model_copy(update={"proposal": proposal})
        checked = verification.model_copy(
            update={
                "findings": [f for f in verification.findings if f.about != "arguments"]
                + argument_findings(self._pack, facts)
            }
        )
        facts = facts.model_copy(update={"verification": checked})
        return facts, decide(
            facts, self._policy, self._pack, workflow.now(), plans=self._plans, read=self._read
        )

    # --- a live candidate beside this request ------------------------------------------

    def _shadow(self, inp: ResolutionInput, pack: DomainPack) -> asyncio.Task[Any] | None:
        """Run the domain's live candidate on this request's facts, if it samples this
        request. One on the live model decides here, on this run's proposal. One on another
        model queue gets a run of its own (tether/shadowguard.py lets it call no tool), on the
        workers' shadow queue if they have one (a process of its own), started beside the
        outcome's record (``_keep_beside``; a child, in histories from before), never waited
        for: it gets the facts (evidence, context, tallies), never this run's proposal, and
        proposes on them. A request refused unread is not shadowed."""
        pinned = self._pinned
        candidate = pinned.shadow if pinned else None
        if candidate is None or not candidates.selected(inp.request.request_id, candidate):
            return None
        if pack.problems(inp.request) or self._facts.withheld:
            return None
        assert pinned is not None
        if pinned.shadow_policy is not None and steps.since_latest(steps.SHADOW_IN_RUN):
            # On the live model: this run's proposal is what the candidate would get, so it
            # decides here, a pure function of the facts (it can reach no tool: nothing it
            # returns is acted on), kept beside the outcome. A candidate policy that cannot
            # decide is logged; the live request goes on.
            try:
                decided = decide(
                    self._facts,
                    pinned.shadow_policy,
                    pack,
                    workflow.now(),
                    plans=self._plans,
                    read=self._read,
                )
            except Exception as err:
                workflow.logger.warning(
                    "live candidate %s could not decide: %r", candidate.name, err
                )
                return None
            self._beside = candidates.shadow_decision(
                self._facts,
                decided,
                candidate=candidate.name,
                policy_version=candidate.policy_version or pinned.version,
                at=workflow.now(),
                on_live_proposal=True,
            )
            return None
        shadow = LiveShadowInput(
            domain=pack.name,
            candidate=candidate,
            facts=steps.unanswered(self._facts),
            model_queue=self._model_queue,
            timeouts=inp.timeouts,
            decided_at=workflow.now(),
            plans=self._plans,
            read=self._read,
        )
        here = workflow.info().workflow_id
        if steps.since_latest(steps.SHADOW_STARTED):
            self._shadow_start = ShadowStart(
                workflow_id=names.live_shadow_id(candidate.name, inp.request.request_id),
                task_queue=pinned.shadow_queue or workflow.info().task_queue,
                input=shadow,
                priority=SHADOW_PRIORITY,
                summary=f"candidate {candidate.name}, beside {here}",
            )
            return None
        if not workflow.patched(steps.SHADOW):
            return None
        return asyncio.create_task(
            workflow.start_child_workflow(
                names.LIVE_SHADOW,
                shadow,
                id=f"shadow-{candidate.name}-{here}",
                task_queue=pinned.shadow_queue,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                # The lowest priority (its activities inherit it): where queues back up, live
                # work is taken first.
                priority=Priority(priority_key=SHADOW_PRIORITY),
                static_summary=f"candidate {candidate.name}, beside {here}",
            )
        )

    @property
    def _candidate_waiting(self) -> bool:
        return self._beside is not None or self._shadow_start is not None

    async def _keep_beside(self, inp: ResolutionInput) -> None:
        """Record the candidate's decision made in this run, or start its own run (once).
        One that could not be kept or started is logged: the live outcome never depends on
        its candidate."""
        beside, self._beside = self._beside, None
        start, self._shadow_start = self._shadow_start, None
        try:
            if beside is not None:
                await workflow.execute_local_activity_method(
                    RecordActivities.record_shadow,
                    beside,
                    start_to_close_timeout=inp.timeouts.record,
                    retry_policy=inp.timeouts.record_retry.policy(),
                )
            if start is not None:
                await workflow.execute_local_activity_method(
                    ShadowStarts.start_shadow,
                    start,
                    start_to_close_timeout=inp.timeouts.record,
                    retry_policy=inp.timeouts.record_retry.policy(),
                )
        except FailureError as err:
            workflow.logger.warning("live candidate not kept beside this request: %s", err)

    @staticmethod
    async def _shadow_started(shadowing: asyncio.Task[Any]) -> None:
        """The shadow's start, long done by now; one that could not start is logged: the
        live outcome never depends on its shadow."""
        try:
            await shadowing
        except Exception as err:
            workflow.logger.warning("live candidate not started beside this request: %s", err)

    # --- the record ------------------------------------------------------------------

    @property
    def _mode(self) -> Mode:
        if self._gate.expired:
            return Mode.SAFE_DEFAULT  # every tier's SLA ran out: no action
        return self._decision.mode if self._decision else self._facts.mode

    def _outcome(self, started: datetime, approved: bool, actions: list[ToolResult]) -> Outcome:
        facts, decision = self._facts, self._decision
        assert decision is not None and self._effects is not None
        answer, citations = self._answer(decision, approved)
        return Outcome(
            domain=facts.domain,
            request_id=facts.request.request_id,
            workflow_id=workflow.info().workflow_id,
            intent=facts.proposal.intent if facts.proposal else None,
            decision=decision,
            mode=self._mode,
            answer=answer,
            citations=citations,
            proposal=facts.proposal,
            verification=facts.verification,
            freshness=facts.evidence.freshness,
            actions=actions,
            compensations=list(self._effects.compensations),
            reviews=list(self._gate.reviews),
            edits=list(self._gate.edits),
            top_score=max((p.score for p in facts.evidence.passages), default=None),
            evidence=facts.evidence,
            context=facts.context,
            request=facts.request,
            withheld=facts.withheld,
            repairs=facts.repairs,
            tallies=facts.tallies,
            tallied=self._tallied(actions),
            followup_required=not approved or any(not a.ok for a in actions),
            model=facts.model,
            policy_sha256=self._pinned.sha256 if self._pinned else None,
            reuse_key=facts.reuse_key,
            reused_from=facts.reused_from,
            started_at=started,
            finished_at=workflow.now(),
        )

    def _tallied(self, actions: list[ToolResult]) -> dict[str, int]:
        """Per tally held: what the effects that stand added (an undone step adds nothing)."""
        assert self._pack is not None and self._effects is not None
        undone = {int(c.idempotency_key.rsplit("/", 2)[-2]) for c in self._effects.compensations}
        standing = [
            ToolCall(tool=a.tool, arguments=a.arguments)
            for step, a in enumerate(actions, start=1)
            if (a.ok or a.unconfirmed_effect) and step not in undone
        ]
        return {
            t.name: argument_total(standing, self._pack.tools, t.argument)
            for t in self._pack.tallies
            if t.name in self._facts.tallies
        }

    def _answer(self, decision: Decision, approved: bool) -> tuple[str, list[str]]:
        facts, verdict = self._facts, self._gate.verdict
        proposal = facts.proposal
        if decision.action is DecisionAction.REJECT:
            return "Not processed: " + "; ".join(r.detail for r in decision.reasons), []
        if proposal is None:
            # Retrieval-only: cite the best passages, act on nothing, a person follows up.
            best = facts.evidence.passages[:2]
            if not best:
                return "No answer could be found; a person will follow up.", []
            quoted = " ".join(p.text for p in best)
            return f"{quoted} A person from our team will follow up.", [p.passage_id for p in best]
        if approved:
            return proposal.answer, proposal.citations
        if verdict is None:
            return (
                "No approver answered in time; no action was taken and a person will follow up.",
                [],
            )
        return f"Declined by {verdict.approver}: {verdict.reason}", []

    def _set_stage(self, stage: Stage, queue: str = "none") -> None:
        """The stage, for the status query at once; for the search attributes (a visibility
        write on the server each), when the run comes to rest where an operator lists it
        (approval, a model backlog, the end), leaves such a place, or starts. A step that
        hangs in between shows in the UI as its pending activity, with its attempts."""
        self._stage = stage
        # What the UI shows on the run's page: no server write, served by a query.
        workflow.set_current_details(self._details())
        proposal = self._facts.proposal
        attributes = (
            self._inp.domain,
            stage.value,
            queue,
            self._mode.value,
            proposal.intent if proposal else "unknown",
        )
        lean = steps.since(steps.LEAN_HISTORY)
        if self._published is None and steps.current():
            self._published = search.at_start_of(workflow.info().typed_search_attributes)
        last = self._published
        waiting = stage is Stage.AWAITING_APPROVAL
        if lean:
            leaving = last is not None and Stage(last[1]) in RESTING
            if attributes == last or not (last is None or stage in RESTING or leaving):
                if waiting and self._gate.signed_proposal:  # put to people again: a new version
                    workflow.upsert_memo({names.PENDING_MEMO: self.status()})
                return
        self._published = attributes
        workflow.upsert_search_attributes(
            [
                search.DOMAIN.value_set(attributes[0]),
                search.STAGE.value_set(attributes[1]),
                search.QUEUE.value_set(attributes[2]),
                search.MODE.value_set(attributes[3]),
                search.INTENT.value_set(attributes[4]),
            ]
        )
        if lean and (waiting or (last is not None and last[1] == Stage.AWAITING_APPROVAL.value)):
            # What the approval queue lists, beside the attributes it is found by (None: gone).
            workflow.upsert_memo({names.PENDING_MEMO: self.status() if waiting else None})

    def _details(self) -> str:
        """The run at a glance for the Temporal UI (markdown): what an operator scans for,
        never the request's text or whom it is about: every operator of the namespace reads
        it."""
        proposal, decision = self._facts.proposal, self._decision
        tier = "none"
        if decision is not None and decision.tier is not None and self._pinned is not None:
            tier = self._policy.tiers[decision.tier].name
        rows = [
            ("domain", self._inp.domain),
            ("stage", self._stage.value),
            ("intent", proposal.intent if proposal else "unknown"),
            ("decision", decision.action.value if decision else "pending"),
            ("tier", tier),
            ("mode", self._mode.value),
        ]
        return "\n".join(f"**{name}** {value}  " for name, value in rows)

    # --- approval messages: the gate decides, the handlers deliver -------------------
    # Messages arrive as plain JSON and are read here, so that a malformed one (an extra
    # field, a wrong type) is refused like any other bad review: named, and not retryable.

    @workflow.update(name=names.REVIEW)
    async def review(self, message: dict[str, Any]) -> ReviewReceipt:
        """Approve or reject the pending proposal (validator checks identity and role)."""
        # Checked again here: two Updates can both pass validation before either handler runs.
        return self._gate.accept(self._checked_review(message))

    @review.validator
    def _validate_review(self, message: dict[str, Any]) -> None:
        self._checked_review(message)

    def _checked_review(self, message: dict[str, Any]) -> Review:
        try:
            review = parse_message(Review, message)
            self._gate.check_review(review)
        except ReviewRefused as refused:
            # An exception in a validator rejects the Update without touching history.
            raise refused_update(refused) from None
        return review

    @workflow.signal(name=names.REVIEW_SIGNAL)
    def review_signal(self, message: dict[str, Any]) -> None:
        """The same verdict for tools that can only signal; the same checks apply here."""
        try:
            review = parse_message(Review, message)
            self._gate.check_review(review)
        except ReviewRefused as refused:
            self._gate.record_refusal(sender(message), refused)
            return
        except Exception as err:  # a signal that breaks a check must not stall the workflow
            unjudged = ReviewRefused("invalid_message", f"could not be judged: {err!r}"[:300])
            self._gate.record_refusal(sender(message), unjudged)
            return
        self._gate.accept(review)

    @workflow.update(name=names.EDIT)
    async def edit(self, message: dict[str, Any]) -> ReviewReceipt:
        """Approve a changed version of the pending proposal (validator: the same identity
        checks as a review, the same contracts and policy, and the editor's own reach)."""
        edit, edited = self._checked_edit(message)
        return self._gate.accept_edit(edit, edited)

    @edit.validator
    def _validate_edit(self, message: dict[str, Any]) -> None:
        self._checked_edit(message)

    def _checked_edit(self, message: dict[str, Any]) -> tuple[Edit, Edited]:
        try:
            edit = parse_message(Edit, message)
            return edit, self._gate.check_edit(edit, self._assess)
        except ReviewRefused as refused:
            raise refused_update(refused) from None

    @workflow.signal(name=names.EDIT_SIGNAL)
    def edit_signal(self, message: dict[str, Any]) -> None:
        """The same edit for tools that can only signal; refused ones are recorded."""
        try:
            edit = parse_message(Edit, message)
            edited = self._gate.check_edit(edit, self._assess)
        except ReviewRefused as refused:
            self._gate.record_refusal(sender(message), refused)
            return
        except Exception as err:  # a signal that breaks a check must not stall the workflow
            unjudged = ReviewRefused("invalid_message", f"could not be judged: {err!r}"[:300])
            self._gate.record_refusal(sender(message), unjudged)
            return
        self._gate.accept_edit(edit, edited)

    @workflow.query(name=names.STATUS)
    def status(self) -> WorkflowStatus:
        proposal = self._facts.proposal
        return WorkflowStatus(
            domain=self._inp.domain,
            request_id=self._inp.request.request_id,
            stage=self._stage,
            mode=self._mode,
            intent=proposal.intent if proposal else None,
            decision=self._decision,
            pending=self._gate.pending,
            reviews=list(self._gate.reviews),
            request=self._inp.request,
        )
