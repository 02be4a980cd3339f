"""Small workflows the integration tests run on workers of their own: Probe's payloads cross
an activity, a local activity and a child workflow (test_sandbox_contexts.py runs it under
both sandboxes); ChangeProbe asks tether.domain.changed from its run and from a query
(test_pack_changes.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from tests.integration.probe_switch import SWITCH
    from tether.domain import changed

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
        # Each hop's payload its own, so a codec can tell which context each was given.
        remote = await workflow.execute_activity(
            echo, f"{text} remote", start_to_close_timeout=TIMEOUT
        )
        local = await workflow.execute_local_activity(
            echo, f"{remote} local", start_to_close_timeout=TIMEOUT
        )
        return await workflow.execute_child_workflow(
            ProbeChild.run, f"{local} child", id=f"{workflow.info().workflow_id}-child"
        )


@workflow.defn
class ChangeProbe:
    """Meets the change "probe/first" at its start (when the switch says the code does), then
    waits; its query asks changed() about any change."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> list[bool]:
        met = [changed("probe/first")] if SWITCH.meets_change else []
        await workflow.wait_condition(lambda: self.done)
        return met

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.query
    def asks(self, change: str) -> bool:
        return changed(change)
