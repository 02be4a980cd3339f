"""Prometheus: Tether's own metrics and the Temporal runtime's, on one endpoint of the worker."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id
from tether.client import Tether, connect
from tether.config import Settings
from tether.stack import free_port
from tether.workers.main import Resources, model_worker, resolution_worker

pytestmark = pytest.mark.integration


async def test_the_worker_serves_tethers_and_temporals_metrics(
    temporal_env: WorkflowEnvironment, settings: Settings, resources: Resources, workers: None
) -> None:
    address = f"127.0.0.1:{free_port()}"
    queue = new_id("metrics")
    local = settings.model_copy(
        update={
            "temporal_address": temporal_env.client.service_client.config.target_host,
            "metrics_address": address,
            "task_queue": queue,
            "model_queue": f"{queue}-model",
        }
    )
    client = await connect(local, serve_metrics=True)
    tether = Tether(client, local)
    async with (
        resolution_worker(client, resources, task_queue=queue),
        model_worker(client, resources, task_queue=f"{queue}-model"),
    ):
        await tether.resolve(
            {
                "request_id": new_id("m"),
                "subject": "C-100",
                "requester": "C-100",
                "text": "Where is ORD-1001?",
            }
        )
        text = ""
        for _ in range(50):  # the exporter publishes on its own schedule
            text = httpx.get(f"http://{address}/metrics").text
            if "tether_decisions" in text:
                break
            await asyncio.sleep(0.1)
    decisions = [line for line in text.splitlines() if line.startswith("tether_decisions")]
    assert any('action="auto"' in line and 'intent="order_status"' in line for line in decisions), (
        text[:2000]
    )
    assert any(
        line.startswith("tether_tool_calls") and 'tool="send_reply"' in line
        for line in text.splitlines()
    )
    assert "tether_request_latency" in text and "tether_grounding" in text
    assert "temporal_workflow_completed" in text  # the runtime's own, on the same endpoint
