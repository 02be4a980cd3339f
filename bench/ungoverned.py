"""The baselines: the same request with no governance (retrieve -> propose -> act), and a bare
workflow that runs as many activities as a governed request does, each doing nothing."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from tether import names, packs
    from tether.activities.retrieval import RetrievalActivities
    from tether.contracts import (
        Proposal,
        ProposeInput,
        RawProposal,
        ResolutionInput,
        RetrievalQuery,
        ToolInvocation,
        ToolResult,
    )

TIMEOUT = timedelta(seconds=60)


class BaselineInput(BaseModel):
    resolution: ResolutionInput
    tool_queue: str  # where the pack's tools run (the workflow role's queue)
    compute_queue: str | None = None  # where retrieval runs
    # Tools as local activities, as governed runs first try them since steps.LOCAL_TOOLS: the
    # same mechanism on both sides, for a comparison of governance alone (--local-act).
    local_act: bool = False


@workflow.defn
class UngovernedWorkflow:
    """What a demo does: trust the model's output and run its tool calls."""

    @workflow.run
    async def run(self, inp: BaselineInput) -> list[ToolResult]:
        request, pack = inp.resolution.request, packs.get(inp.resolution.domain)
        domain = inp.resolution.domain
        evidence = await workflow.execute_activity_method(
            RetrievalActivities.retrieve_evidence,
            RetrievalQuery(domain=domain, text=request.text, request_id=request.request_id),
            task_queue=inp.compute_queue or inp.tool_queue,
            start_to_close_timeout=TIMEOUT,
        )
        raw = await workflow.execute_activity(
            names.PROPOSE,
            ProposeInput(
                domain=domain,
                request=request,
                evidence=evidence,
                tool_catalogue=pack.tools.catalogue(),
                intents=list(pack.intents),
            ),
            result_type=RawProposal,
            task_queue=inp.resolution.model_queue,
            start_to_close_timeout=TIMEOUT,
        )
        proposal = Proposal.model_validate_json(raw.content)
        results = []
        for step, call in enumerate(proposal.tool_calls, start=1):
            invocation = ToolInvocation(
                domain=domain,
                tool=call.tool,
                arguments=call.arguments,
                idempotency_key=f"{workflow.info().workflow_id}/{step}",
                request_id=request.request_id,
                granted=[pack.tools.get(call.tool).permission],  # no gate: all granted
            )
            activity_name = names.tool_activity(domain, call.tool)
            if inp.local_act:  # the worker that runs this workflow serves the tools
                act = workflow.execute_local_activity(
                    activity_name,
                    invocation,
                    result_type=ToolResult,
                    start_to_close_timeout=TIMEOUT,
                )
            else:
                act = workflow.execute_activity(
                    activity_name,
                    invocation,
                    result_type=ToolResult,
                    task_queue=inp.tool_queue,
                    start_to_close_timeout=TIMEOUT,
                )
            results.append(await act)
        return results


@activity.defn(name="bench_noop")
async def noop() -> None:
    """Nothing: what an activity costs Temporal and the worker, and no more."""


@workflow.defn
class BareWorkflow:
    """``activities`` activities in a row, each doing nothing."""

    @workflow.run
    async def run(self, activities: int) -> None:
        for _ in range(activities):
            await workflow.execute_activity(noop, start_to_close_timeout=TIMEOUT)
