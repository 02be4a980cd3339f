"""`tether replay`: recent histories fetched from the server replay against today's code, and
a change that breaks determinism is reported, not deployed."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id
from tests.test_replay import ReorderedResolution
from tether.client import Tether
from tether.replay import replay_recent
from tether.workers.main import WORKFLOWS

pytestmark = pytest.mark.integration

QUERY = "WorkflowType = 'ResolutionWorkflow' AND ExecutionStatus = 'Completed'"


async def test_recent_histories_replay_and_a_breaking_change_is_caught(
    tether: Tether, temporal_env: WorkflowEnvironment
) -> None:
    rid = new_id("replay")
    await tether.resolve(
        {
            "request_id": rid,
            "subject": "C-100",
            "requester": "C-100",
            "text": "Where is ORD-1001?",
        }
    )
    client = temporal_env.client
    for _ in range(100):  # visibility is eventually consistent
        ours = [
            e.id
            async for e in client.list_workflows(f"{QUERY} AND WorkflowId = 'resolution-{rid}'")
        ]
        if ours:
            break
        await asyncio.sleep(0.1)
    today = await replay_recent(client, WORKFLOWS, query=QUERY, limit=20)
    assert today.replayed >= 1 and today.failures == {}
    broken = await replay_recent(client, [ReorderedResolution], query=QUERY, limit=20)
    assert broken.replayed == today.replayed and len(broken.failures) == broken.replayed
    assert all("Nondeterminism" in why for why in broken.failures.values())
