"""Latency by stage of a resolution run, read off the run's own activities: a stage spans from
its first activity's start to its last one's result, in workflow time (what the history
records), and is recorded when the outcome is. The approval wait is the gate's own
(workflows/approval.py), under the same histogram.

A worker interceptor, so the workflow's code and its commands stay as they are; it records
through the workflow's meter, which records nothing on replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from tether import metrics, names
from tether.contracts import ResolutionInput, ToolInvocation

# The runtime's own activities by stage; a pack's tool is one by its key (``stage_of``).
ACTIVITY_STAGES = {
    "retrieve_evidence": "retrieval",
    names.PROPOSE: "proposal",
    "model_queue_state": "proposal",  # asked while the proposal waits in line
    "verify_proposal": "verification",
}
RECORD = "record_outcome"


def stage_of(activity: str, args: Sequence[Any]) -> str | None:
    """The stage an activity belongs to; None for bookkeeping (policy, tallies, records)."""
    if activity in ACTIVITY_STAGES:
        return ACTIVITY_STAGES[activity]
    invocation = args[0] if args else None
    if isinstance(invocation, ToolInvocation):
        # The runtime's reads gather facts beside retrieval; every other call acts (or undoes).
        return "retrieval" if "/read/" in invocation.idempotency_key else "acting"
    return None


@dataclass
class Span:
    start: datetime
    end: datetime | None = None


class StageClock:
    """One run's stages. A stage once left is not entered again: the records read again after
    an approval belong to the approval, not to retrieval."""

    def __init__(self) -> None:
        self.domain = "unknown"
        self.spans: dict[str, Span] = {}
        self._current: str | None = None

    def started(self, stage: str, handle: Any) -> None:
        if stage != self._current and stage in self.spans:
            return
        self._current = stage
        span = self.spans.setdefault(stage, Span(workflow.now()))

        def done(_: object) -> None:
            span.end = workflow.now()

        handle.add_done_callback(done)

    def record(self) -> None:
        histogram = workflow.metric_meter().create_histogram_float(
            metrics.STAGE_LATENCY, "Time a resolution run spent in each stage", "s"
        )
        for stage, span in self.spans.items():
            if span.end is not None:
                seconds = (span.end - span.start).total_seconds()
                histogram.record(seconds, {"domain": self.domain, "stage": stage})
        self.spans.clear()


class _Outbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, clock: StageClock) -> None:
        super().__init__(next)
        self._clock = clock

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        return self._timed(input.activity, input.args, super().start_activity(input))

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        return self._timed(input.activity, input.args, super().start_local_activity(input))

    def _timed(
        self, activity: str, args: Sequence[Any], handle: workflow.ActivityHandle[Any]
    ) -> workflow.ActivityHandle[Any]:
        if activity == RECORD:
            self._clock.record()
        elif (stage := stage_of(activity, args)) is not None:
            self._clock.started(stage, handle)
        return handle


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        self._clock: StageClock | None = None
        if outbound.info().workflow_type == names.RESOLUTION:  # not a shadow run's steps
            self._clock = StageClock()
            outbound = _Outbound(outbound, self._clock)
        super().init(outbound)

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        given = input.args[0] if input.args else None
        if self._clock is not None and isinstance(given, ResolutionInput):
            self._clock.domain = given.domain
        return await super().execute_workflow(input)


class StageLatency(Interceptor):
    """For the resolution worker: ``Worker(..., interceptors=[StageLatency()])``."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Inbound
