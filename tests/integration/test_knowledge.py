"""Knowledge refresh on a Temporal Schedule, against the real dev server and workers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import ScheduleActionExecutionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from tether.client import Tether
from tether.config import Settings
from workflows.knowledge import KnowledgeRefreshWorkflow

pytestmark = pytest.mark.integration


async def test_sources_are_refreshed_on_a_schedule(
    tether: Tether, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    kb = tether.source(str(settings.kb_path), source="kb")
    schedule_id = await tether.schedule_refresh([kb], timedelta(seconds=2))
    schedule = temporal_env.client.get_schedule_handle(schedule_id)
    try:
        for _ in range(100):
            recent = (await schedule.describe()).info.recent_actions
            if recent:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the schedule never started a refresh")
        started = recent[0].action
        assert isinstance(started, ScheduleActionExecutionStartWorkflow)
        handle = temporal_env.client.get_workflow_handle_for(
            KnowledgeRefreshWorkflow.run, started.workflow_id
        )
        reports = await handle.result()
        [report] = reports
        assert report.source == "kb" and report.error is None
        assert report.embedded == 0 and report.documents > 0  # unchanged: nothing re-embedded
        # Scheduling again updates the same schedule rather than adding another.
        assert await tether.schedule_refresh([kb], timedelta(hours=1)) == schedule_id
        spec = (await schedule.describe()).schedule.spec
        assert [i.every for i in spec.intervals] == [timedelta(hours=1)]
    finally:
        await schedule.delete()
