"""Starting a live candidate's own run (LiveShadowWorkflow) beside a live request, from the
live run's worker: an activity, not a child workflow, so that the live run takes no workflow
task for the child's start (on a small machine that task competed with the live request's
own work). The run started is independent: the live run never waits for it or hears of it."""

from __future__ import annotations

from temporalio import activity
from temporalio.common import Priority, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from tether import names
from tether.contracts import ShadowStart


@activity.defn
async def start_shadow(inp: ShadowStart) -> bool:
    """Start the candidate's run; False when an earlier attempt started it already."""
    try:
        await activity.client().start_workflow(
            names.LIVE_SHADOW,
            inp.input,
            id=inp.workflow_id,
            task_queue=inp.task_queue,
            # One run per (candidate, request), ever: a retried start finds it.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            priority=Priority(priority_key=inp.priority),
            static_summary=inp.summary,
        )
    except WorkflowAlreadyStartedError:
        return False
    return True
