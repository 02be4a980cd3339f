"""Starting a live candidate's own run (LiveShadowWorkflow) beside a live request, from the
live run's worker: an activity, not a child workflow, so that the live run takes no workflow
task for the child's start (on a small machine that task competed with the live request's
own work). The run started is independent: the live run never waits for it or hears of it.

Before it starts the run, it writes down a digest of the input it gives it (the store's
shadow starts): the candidate's run records its decision only on that input
(RecordActivities.record_shadow), so a run started by hand under the candidate's id, before
or after, with facts of its own, records nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.common import Priority, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from tether import names
from tether.candidates import input_digest
from tether.contracts import ShadowStart
from tether.store import Store


class ShadowStarts:
    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn
    async def start_shadow(self, inp: ShadowStart) -> bool:
        """Start the candidate's run; False when it was started already (an earlier attempt,
        or someone else: then its decision is not kept, the digest being another's)."""
        shadow = inp.input
        self._store.expect_shadow(
            shadow.facts.request.request_id,
            shadow.candidate.name,
            input_digest(shadow),
            datetime.now(UTC),
        )
        try:
            await activity.client().start_workflow(
                names.LIVE_SHADOW,
                shadow,
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
