"""The baseline: the same request with no governance (retrieve -> propose -> act)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

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

TIMEOUT = timedelta(seconds=30)


@workflow.defn
class UngovernedWorkflow:
    """What a demo does: trust the model's output and run its tool calls."""

    @workflow.run
    async def run(self, inp: ResolutionInput) -> list[ToolResult]:
        request, pack = inp.request, packs.get(inp.domain)
        evidence = await workflow.execute_activity_method(
            RetrievalActivities.retrieve_evidence,
            RetrievalQuery(domain=inp.domain, text=request.text, request_id=request.request_id),
            start_to_close_timeout=TIMEOUT,
        )
        raw = await workflow.execute_activity(
            names.PROPOSE,
            ProposeInput(
                domain=inp.domain,
                request=request,
                evidence=evidence,
                tool_catalogue=pack.tools.catalogue(),
            ),
            result_type=RawProposal,
            task_queue=inp.model_queue,
            start_to_close_timeout=TIMEOUT,
        )
        proposal = Proposal.model_validate_json(raw.content)
        results = []
        for step, call in enumerate(proposal.tool_calls, start=1):
            results.append(
                await workflow.execute_activity(
                    names.tool_activity(inp.domain, call.tool),
                    ToolInvocation(
                        domain=inp.domain,
                        tool=call.tool,
                        arguments=call.arguments,
                        idempotency_key=f"{workflow.info().workflow_id}/{step}",
                        request_id=request.request_id,
                        granted=[pack.tools.get(call.tool).permission],  # no gate: all granted
                    ),
                    result_type=ToolResult,
                    start_to_close_timeout=TIMEOUT,
                )
            )
        return results
