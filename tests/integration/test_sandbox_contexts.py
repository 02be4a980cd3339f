"""tether.sandbox.LeanSandboxRunner reads a payload's serialization context from the sandboxed
instance directly instead of through Temporal's compile-and-exec path. A codec that uses the
context (one that binds a payload to its activity, say) must see exactly what it sees under the
stock sandbox, for every payload of an activity, a local activity and a child workflow."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from tests.integration.probes import Probe, ProbeChild, echo
from tether import sandbox
from tether.sandbox import LeanSandboxRunner, workflow_runner

pytestmark = pytest.mark.integration


class Recording(PayloadCodec, WithSerializationContext):
    """Passes payloads through, writing down the context it was given for each pass."""

    def __init__(self, seen: list[str], run: str = "", context: object = None) -> None:
        self.seen, self.run, self.context = seen, run, context

    def with_context(self, context: SerializationContext) -> Recording:
        return Recording(self.seen, self.run, context)

    def _note(self, way: str, payloads: Sequence[Payload]) -> None:
        context = self.context
        if isinstance(context, ActivitySerializationContext):
            what = f"activity {context.activity_type} local={context.is_local}"
            what += f" of {context.workflow_type} {context.workflow_id}"
        elif isinstance(context, WorkflowSerializationContext):
            what = f"workflow {context.workflow_id}"
        else:
            what = repr(context)
        for payload in payloads:  # which payload was given which context
            self.seen.append(f"{way} {what} {payload.data[:60]!r}".replace(self.run, "RUN"))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self._note("encode", payloads)
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self._note("decode", payloads)
        return list(payloads)


async def contexts_seen(env: WorkflowEnvironment, runner: SandboxedWorkflowRunner) -> set[str]:
    seen: list[str] = []
    run = f"probe-{uuid.uuid4().hex[:8]}"
    codec = Recording(seen, run)
    config = env.client.config()
    config["data_converter"] = dataclasses.replace(config["data_converter"], payload_codec=codec)
    client = Client(**config)
    async with Worker(
        client,
        task_queue=run,
        workflows=[Probe, ProbeChild],
        activities=[echo],
        workflow_runner=runner,
        max_cached_workflows=0,  # every activation replays: the contexts of replayed commands too
    ):
        assert (
            await client.execute_workflow(Probe.run, "hi", id=run, task_queue=run)
            == "hi remote local child?"
        )
    return set(seen)


async def test_the_lean_sandbox_gives_a_codec_the_contexts_the_stock_one_does(
    temporal_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean = workflow_runner()
    assert isinstance(lean, LeanSandboxRunner)
    stock = SandboxedWorkflowRunner(restrictions=lean.restrictions)
    expected = await contexts_seen(temporal_env, stock)

    # The lean lookup is the one the SDK asks (an SDK that stopped asking it would leave the
    # comparison below passing with nothing lean in play), and the snippets are compiled once.
    asked: list[object] = []
    looked_up = sandbox._LeanInstance.get_serialization_context

    def counted(self: sandbox._LeanInstance, command_info: object) -> object:
        asked.append(command_info)
        return looked_up(self, command_info)

    monkeypatch.setattr(sandbox._LeanInstance, "get_serialization_context", counted)
    hits = sandbox._compiled.cache_info().hits
    seen = await contexts_seen(temporal_env, lean)
    assert asked and sandbox._compiled.cache_info().hits > hits

    # The same contexts. (Not counted: how many passes a run takes follows how the server
    # batched its events into tasks, which a busy machine may change.)
    assert seen == expected, seen ^ expected
    # The probe reached the contexts that matter: the activity's own, remote and local.
    assert any("activity echo local=False of Probe" in line for line in expected)
    assert any("activity echo local=True of Probe" in line for line in expected)
    assert any("workflow RUN-child" in line for line in expected)
