"""Shadow runs: decide without acting, through the same steps as production (retrieve, propose
with the bounded repair, verify, decide).

- ShadowEvaluationWorkflow replays a dataset against a candidate; the context is replayed as
  it was recorded.
- LiveShadowWorkflow runs a live candidate beside one live request (a child the request starts
  and does not wait for), on the live run's facts.

Neither has a path to any tool: the code calls none, and the worker refuses any tool, child
or signal a shadow run asks for (tether/shadowguard.py)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from tether import candidates, errors, names, packs
    from tether.activities.records import RecordActivities
    from tether.config import PolicyConfig
    from tether.contracts import Decision, Facts, LiveShadowInput, Outcome, ShadowDecision
    from tether.domain import DomainPack
    from tether.policy import decide
    from tether.shadow import ShadowCase, ShadowInput, ShadowReport

from tether.workflows import steps  # workflow code: sandboxed with this module


def _label(decision: Decision) -> str:
    return f"{decision.action.value}/{decision.mode.value}"


def _human(outcome: Outcome) -> str | None:
    if outcome.edits:
        return "edited"
    verdicts = [r.verdict for r in outcome.reviews if r.verdict in ("approve", "reject")]
    return verdicts[-1] if verdicts else None


@workflow.defn(name=names.SHADOW_EVALUATION)
class ShadowEvaluationWorkflow:
    _compute_queue: str | None = None  # the workers' (with the pinned policy)

    @workflow.run
    async def run(self, inp: ShadowInput) -> ShadowReport:
        try:
            pack = packs.get(inp.domain)
        except packs.UnknownDomain as err:
            raise ApplicationError(
                str(err), type=errors.UNKNOWN_DOMAIN, non_retryable=True
            ) from None
        dataset = await workflow.execute_activity_method(
            RecordActivities.load_dataset,
            inp.dataset,
            start_to_close_timeout=inp.timeouts.record,
            retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=["NoDataset"]),
        )
        # The candidate's version, from the workers' store: a caller names one, never sends one.
        pinned = await steps.pin_policy(pack.name, inp.timeouts, inp.candidate.policy_version)
        policy, self._compute_queue = pinned.policy, pinned.compute_queue
        # Outcomes recorded before they carried their request cannot be replayed: skipped.
        cases = [
            await self._replay(inp, pack, policy, case.outcome)
            for case in dataset.cases
            if case.outcome.request is not None and case.outcome.domain == inp.domain
        ]
        return ShadowReport(
            dataset=dataset.name,
            version=dataset.version,
            candidate=inp.candidate.name,
            policy_version=pinned.version,
            cases=cases,
        )

    async def _replay(
        self, inp: ShadowInput, pack: DomainPack, policy: PolicyConfig, recorded: Outcome
    ) -> ShadowCase:
        timeouts, candidate = inp.timeouts, inp.candidate
        assert recorded.request is not None  # filtered in run()
        evidence = recorded.evidence
        if candidate.retrieve_again or evidence is None:
            evidence = await steps.retrieve(
                pack.name, recorded.request, timeouts, self._compute_queue
            )
        facts = Facts(  # as recorded; a shadow holds nothing on anyone's totals
            domain=pack.name,
            request=recorded.request,
            evidence=evidence,
            context=recorded.context,
            withheld=recorded.withheld,
            tallies=recorded.tallies,
        )
        facts = await steps.propose(
            facts, pack, policy, timeouts, candidate.model_queue or inp.model_queue
        )
        facts = await steps.verify(facts, timeouts, self._compute_queue)
        decision = decide(facts, policy, pack, recorded.started_at)  # as of the original moment
        return ShadowCase(
            request_id=recorded.request_id,
            recorded=_label(recorded.decision),
            candidate=_label(decision),
            recorded_reasons=recorded.decision.codes(),
            candidate_reasons=decision.codes(),
            human=_human(recorded),
            grounding_recorded=recorded.verification.grounding if recorded.verification else None,
            grounding_candidate=facts.verification.grounding if facts.verification else None,
            changed=_label(decision) != _label(recorded.decision),
        )


@workflow.defn(name=names.LIVE_SHADOW)
class LiveShadowWorkflow:
    """The candidate proposes on the live run's facts (on its own model queue; one on the live
    model decides inside the live run instead: workflows/resolution.py), is verified, and
    decides under its own policy version (or the active one) as of the live decision's
    moment; the decision is recorded beside the live outcome."""

    @workflow.run
    async def run(self, inp: LiveShadowInput) -> ShadowDecision:
        try:
            pack = packs.get(inp.domain)
        except packs.UnknownDomain as err:
            raise ApplicationError(
                str(err), type=errors.UNKNOWN_DOMAIN, non_retryable=True
            ) from None
        candidate, timeouts = inp.candidate, inp.timeouts
        pinned = await steps.pin_policy(pack.name, timeouts, candidate.policy_version)
        facts = await steps.propose(
            inp.facts, pack, pinned.policy, timeouts, candidate.model_queue or inp.model_queue
        )
        facts = await steps.verify(facts, timeouts, pinned.compute_queue)
        decision = decide(
            facts, pinned.policy, pack, inp.decided_at, plans=inp.plans, read=inp.read
        )
        shadow = candidates.shadow_decision(
            facts,
            decision,
            candidate=candidate.name,
            policy_version=pinned.version,
            at=workflow.now(),
            on_live_proposal=False,
        ).model_copy(update={"input_sha256": candidates.input_digest(inp)})
        await workflow.execute_local_activity_method(
            RecordActivities.record_shadow,
            shadow,
            start_to_close_timeout=timeouts.record,
            retry_policy=timeouts.record_retry.policy(),
        )
        return shadow
