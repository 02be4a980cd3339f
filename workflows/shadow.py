"""ShadowEvaluationWorkflow: replay a dataset against a candidate. It retrieves, proposes,
verifies and decides; it has no path to any tool that writes, so shadow mode cannot act."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.model import ModelActivities
    from activities.records import RecordActivities
    from activities.retrieval import RetrievalActivities
    from activities.verification import VerificationActivities
    from domains.support import INTENTS
    from domains.support.tools import REGISTRY
    from tether.contracts import (
        Decision,
        Evidence,
        Mode,
        Outcome,
        Proposal,
        ProposeInput,
        Reason,
        Request,
        RetrievalQuery,
        Verification,
        VerifyInput,
    )
    from tether.policy import PolicyInput, decide
    from tether.shadow import ShadowCase, ShadowInput, ShadowReport
    from tether.tools import ProposalInvalid


def _label(decision: Decision) -> str:
    return f"{decision.action.value}/{decision.mode.value}"


def _human(outcome: Outcome) -> str | None:
    if outcome.edits:
        return "edited"
    verdicts = [r.verdict for r in outcome.reviews if r.verdict in ("approve", "reject")]
    return verdicts[-1] if verdicts else None


@workflow.defn
class ShadowEvaluationWorkflow:
    @workflow.run
    async def run(self, inp: ShadowInput) -> ShadowReport:
        dataset = await workflow.execute_activity_method(
            RecordActivities.load_dataset,
            inp.dataset,
            start_to_close_timeout=inp.timeouts.record,
            retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=["NoDataset"]),
        )
        # Outcomes recorded before they carried their request cannot be replayed: skipped.
        cases = [
            await self._replay(inp, case.outcome)
            for case in dataset.cases
            if case.outcome.request is not None
        ]
        return ShadowReport(
            dataset=dataset.name,
            version=dataset.version,
            candidate=inp.candidate.name,
            cases=cases,
        )

    async def _replay(self, inp: ShadowInput, recorded: Outcome) -> ShadowCase:
        timeouts, candidate = inp.timeouts, inp.candidate
        request = recorded.request
        assert request is not None  # filtered in run()
        evidence = recorded.evidence
        if candidate.retrieve_again or evidence is None:
            evidence = await workflow.execute_activity_method(
                RetrievalActivities.retrieve_evidence,
                RetrievalQuery(text=request.text, request_id=recorded.request_id),
                start_to_close_timeout=timeouts.retrieval,
            )
        proposal, verification, failure = await self._propose(inp, recorded, request, evidence)
        mode = Mode.NORMAL if proposal is not None else Mode.RETRIEVAL_ONLY
        if failure is not None and failure.code == "invalid_model_output":
            mode = Mode.HUMAN_DRAFT
        decision = decide(
            PolicyInput(
                request=request,
                mode=mode,
                proposal=proposal,
                verification=verification,
                order=recorded.order,
                freshness=evidence.freshness,
                now=recorded.started_at,  # judged as of the original moment
                model_failure=failure
                if failure and failure.code != "invalid_model_output"
                else None,
            ),
            candidate.policy or inp.policy,
            REGISTRY,
        )
        return ShadowCase(
            request_id=recorded.request_id,
            recorded=_label(recorded.decision),
            candidate=_label(decision),
            recorded_reasons=recorded.decision.codes(),
            candidate_reasons=decision.codes(),
            human=_human(recorded),
            grounding_recorded=recorded.verification.grounding if recorded.verification else None,
            grounding_candidate=verification.grounding if verification else None,
            changed=_label(decision) != _label(recorded.decision),
        )

    async def _propose(
        self, inp: ShadowInput, recorded: Outcome, request: Request, evidence: Evidence
    ) -> tuple[Proposal | None, Verification | None, Reason | None]:
        timeouts = inp.timeouts
        try:
            raw = await workflow.execute_activity_method(
                ModelActivities.propose_resolution,
                ProposeInput(
                    request=request,
                    evidence=evidence,
                    order=recorded.order,
                    tool_catalogue=REGISTRY.catalogue(),
                    intents=list(INTENTS),
                ),
                task_queue=inp.candidate.model_queue or inp.model_queue,
                schedule_to_start_timeout=timeouts.model_schedule_to_start,
                start_to_close_timeout=timeouts.model_start_to_close,
            )
        except ActivityError as err:
            return None, None, Reason(code="model_unavailable", detail=str(err.cause)[:300])
        try:
            proposal = REGISTRY.validate_proposal(raw.content, intents=INTENTS)
        except ProposalInvalid as invalid:
            return None, None, Reason(code="invalid_model_output", detail=str(invalid)[:300])
        verification = await workflow.execute_activity_method(
            VerificationActivities.verify_proposal,
            VerifyInput(
                request=request,
                evidence=evidence,
                order=recorded.order,
                proposal=proposal,
            ),
            start_to_close_timeout=timeouts.verification,
        )
        return proposal, verification, None
