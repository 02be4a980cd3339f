"""A workflow whose payloads cross an activity, a local activity and a child workflow: what
tests/integration/test_sandbox_contexts.py runs under both sandboxes."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

TIMEOUT = timedelta(seconds=30)


@activity.defn
async def echo(text: str) -> str:
    return text


@workflow.defn
class ProbeChild:
    @workflow.run
    async def run(self, text: str) -> str:
        return text + "?"


@workflow.defn
class Probe:
    @workflow.run
    async def run(self, text: str) -> str:
        remote = await workflow.execute_activity(echo, text, start_to_close_timeout=TIMEOUT)
        local = await workflow.execute_local_activity(echo, remote, start_to_close_timeout=TIMEOUT)
        return await workflow.execute_child_workflow(
            ProbeChild.run, local, id=f"{workflow.info().workflow_id}-child"
        )
