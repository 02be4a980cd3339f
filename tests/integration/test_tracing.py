"""OpenTelemetry: one trace from the client's submit through the workflow and its activities."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id
from tether.client import Tether, connect
from tether.config import Settings
from tether.workers.main import Resources, model_worker, resolution_worker

pytestmark = pytest.mark.integration


async def test_a_request_is_one_trace_across_client_workflow_and_activities(
    temporal_env: WorkflowEnvironment, settings: Settings, resources: Resources, workers: None
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)  # what an operator's OTel setup does, in-memory here
    queue = new_id("traced")
    local = settings.model_copy(
        update={
            "temporal_address": temporal_env.client.service_client.config.target_host,
            "tracing": True,
            "task_queue": queue,
            "model_queue": f"{queue}-model",
        }
    )
    client = await connect(local)
    async with (
        resolution_worker(client, resources, task_queue=queue),
        model_worker(client, resources, task_queue=f"{queue}-model"),
    ):
        await Tether(client, local).resolve(
            {
                "request_id": new_id("t"),
                "subject": "C-100",
                "requester": "C-100",
                "text": "Where is ORD-1001?",
            }
        )
    finished = spans.get_finished_spans()
    names = {s.name for s in finished}
    for expected in (
        "StartWorkflow:ResolutionWorkflow",
        "RunWorkflow:ResolutionWorkflow",
        "RunActivity:retrieve_evidence",
        "RunActivity:propose_resolution",
        "RunActivity:support.send_reply",
        "RunActivity:record_outcome",
    ):
        assert expected in names, sorted(names)
    root = next(s for s in finished if s.name == "StartWorkflow:ResolutionWorkflow")
    assert {s.context.trace_id for s in finished if s.name.startswith("RunActivity")} == {
        root.context.trace_id
    }
