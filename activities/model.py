"""The model activity: asks the configured provider for a proposal (model task queue); and
the question a workflow asks when its proposal waited too long for a model worker: is the
model queue busy, or is nobody serving it?"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from tether import names
from tether.contracts import ProposeInput, RawProposal
from tether.providers import ModelProvider


class ModelActivities:
    def __init__(self, provider: ModelProvider) -> None:
        self._provider = provider

    @activity.defn(name=names.PROPOSE)
    async def propose_resolution(self, inp: ProposeInput) -> RawProposal:
        return await self._provider.propose(inp)


class QueueCheck(BaseModel):
    task_queue: str
    # A worker polls again as soon as a slot frees; one whose every slot is held by a call
    # polls again within the call's start-to-close at the latest.
    within: timedelta


class QueueState(BaseModel):
    pollers: int  # workers seen polling within ``within``
    served: bool


class QueueActivities:
    """Runs beside the workflows: where this deployment's queues are, and who serves them."""

    def __init__(self, compute_queue: str | None = None) -> None:
        self._compute_queue = compute_queue

    @activity.defn
    def compute_queue(self) -> str | None:
        """Settings.compute_queue of the workers: a caller never chooses where work runs."""
        return self._compute_queue

    @activity.defn
    async def model_queue_state(self, check: QueueCheck) -> QueueState:
        """Who polls the model queue: a backlog on a served queue is a line to wait in, an
        unpolled queue is an outage."""
        client = activity.client()
        described = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(
                    name=check.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL
                ),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            )
        )
        now = datetime.now(UTC)
        recent = [
            p
            for p in described.pollers
            if now - p.last_access_time.ToDatetime(tzinfo=UTC) <= check.within
        ]
        return QueueState(pollers=len(recent), served=bool(recent))
