"""Starting a live candidate's own run (LiveShadowWorkflow) beside a live request, from the
live run's worker: an activity, not a child workflow, so that the live run takes no workflow
task for the child's start (on a small machine that task competed with the live request's
own work). The run started is independent: the live run never waits for it or hears of it.

Before it starts the run, it writes down a digest of the input it gives it (the store's
shadow starts): the candidate's run records its decision only on that input
(RecordActivities.record_shadow), so a run started by hand under the candidate's id, before
or after, with facts of its own, records nothing; one started before is replaced."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from tether import names
from tether.candidates import input_digest
from tether.contracts import LiveShadowInput, ShadowStart
from tether.store import Store


class ShadowStarts:
    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn
    async def start_shadow(self, inp: ShadowStart) -> bool:
        """Start the candidate's run; False when an earlier attempt started it. A run of
        someone else's that holds the id (started by hand, before the live run, on an input
        of its own) can record nothing: it is put aside and the candidate's run started in
        its place, so that no one can keep a request from being shadowed by taking its id."""
        shadow = inp.input
        request_id, candidate = shadow.facts.request.request_id, shadow.candidate.name
        digest = input_digest(shadow)
        self._store.expect_shadow(request_id, candidate, digest, datetime.now(UTC))
        try:
            # One run per (candidate, request): a retried start finds it.
            await self._start(inp, WorkflowIDReusePolicy.REJECT_DUPLICATE)
        except WorkflowAlreadyStartedError:
            # Only the input first written down is ever recorded: an attempt that would give
            # another (the live run reset, its facts gathered again) replaces nothing.
            expected = self._store.expected_shadow(request_id, candidate)
            if expected != digest or await self._holds(inp) == expected:
                return False
            activity.logger.warning(
                "%s was held by a run on another input: replaced by the candidate's own run",
                inp.workflow_id,
            )
            await self._start(
                inp,
                WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                WorkflowIDConflictPolicy.TERMINATE_EXISTING,
            )
        return True

    async def _start(
        self,
        inp: ShadowStart,
        reuse: WorkflowIDReusePolicy,
        conflict: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.UNSPECIFIED,
    ) -> None:
        await activity.client().start_workflow(
            names.LIVE_SHADOW,
            inp.input,
            id=inp.workflow_id,
            task_queue=inp.task_queue,
            id_reuse_policy=reuse,
            id_conflict_policy=conflict,
            priority=Priority(priority_key=inp.priority),
            static_summary=inp.summary,
        )

    @staticmethod
    async def _holds(inp: ShadowStart) -> str | None:
        """The digest of the input of the run now holding the id, if it is a candidate's run
        as this worker starts one (its type, on its queue); None for anything else. A payload
        the codec cannot decrypt (a key this worker lacks) fails the attempt, to be retried:
        it may be the live run's own."""
        client = activity.client()
        async for event in client.get_workflow_handle(inp.workflow_id).fetch_history_events():
            started = event.workflow_execution_started_event_attributes
            if (started.workflow_type.name, started.task_queue.name) != (
                names.LIVE_SHADOW,
                inp.task_queue,
            ):
                return None
            payloads: Sequence[Payload] = started.input.payloads
            if len(payloads) != 1:
                return None
            codec = client.data_converter.payload_codec
            if codec is not None:
                payloads = await codec.decode(payloads)
            try:
                [given] = client.data_converter.payload_converter.from_payloads(
                    payloads, [LiveShadowInput]
                )
            except (ValueError, TypeError, KeyError, RuntimeError):  # conversion's own errors
                return None
            return input_digest(given) if isinstance(given, LiveShadowInput) else None
        return None
