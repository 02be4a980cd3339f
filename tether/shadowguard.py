"""Shadow runs cannot act, by the worker's hand and not by convention: for a workflow whose
type is a shadow (names.SHADOWS), the worker lets out only the activities a decision needs
(pin the policy, retrieve, propose, ask about the model queue, verify, record the shadow
decision) and refuses everything else it might ask for: any other activity (a pack's tool, on
any task queue, by any name), a child workflow, a signal to another workflow, a Nexus
operation. A refusal raises a non-retryable error in the shadow run, naming what it asked
for, and fails it; the live request never depends on its shadow.

Installed on every worker that runs workflows (workers/main.py)."""

from __future__ import annotations

from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ContinueAsNewInput,
    Interceptor,
    SignalChildWorkflowInput,
    SignalExternalWorkflowInput,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    StartNexusOperationInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from tether import names

SHADOW_REFUSED = "ShadowRefused"
# What deciding needs, and nothing that writes anywhere but Tether's own shadow records.
ALLOWED = frozenset(
    {
        "pin_policy",
        "load_dataset",
        "retrieve_evidence",
        names.PROPOSE,
        "model_queue_state",
        "verify_proposal",
        "record_shadow",
    }
)


def refuse(what: str) -> NoReturn:
    raise ApplicationError(
        f"a shadow run may not {what}: shadows decide, they never act",
        type=SHADOW_REFUSED,
        non_retryable=True,
    )


class _Outbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        if input.activity not in ALLOWED:
            refuse(f"call activity {input.activity!r}")
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        if input.activity not in ALLOWED:
            refuse(f"call activity {input.activity!r}")
        return super().start_local_activity(input)

    async def start_child_workflow(self, input: StartChildWorkflowInput) -> Any:
        refuse(f"start workflow {input.workflow!r}")

    async def signal_child_workflow(self, input: SignalChildWorkflowInput) -> None:
        refuse(f"signal {input.signal!r}")

    async def signal_external_workflow(self, input: SignalExternalWorkflowInput) -> None:
        refuse(f"signal {input.signal!r}")

    async def start_nexus_operation(self, input: StartNexusOperationInput[Any, Any]) -> Any:
        refuse(f"start Nexus operation {input.operation_name!r}")

    def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
        refuse("continue as new")


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        if outbound.info().workflow_type in names.SHADOWS:
            outbound = _Outbound(outbound)
        super().init(outbound)


class ShadowGuard(Interceptor):
    """For a worker: ``Worker(..., interceptors=[ShadowGuard()])``."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Inbound
