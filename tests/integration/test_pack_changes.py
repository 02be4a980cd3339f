"""A pack's rule runs inside the workflow, so changing it is changing workflow code: a run
recorded before the change must replay the path it took. tether.domain.changed gates a pack's
change the way workflow.patched gates the core's: old histories replay on the old rule, new
runs take the new one and say so in their history. Without the gate the same change breaks
replay of what was recorded before it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from tests.conftest import ticket
from tests.integration.probe_switch import SWITCH
from tests.integration.probes import ChangeProbe
from tests.integration.test_domain_pack import MANAGER, pending_at
from tests.packs.rooms import PACK, RoomRules, room_rules
from tether import packs
from tether.client import Tether
from tether.contracts import DecisionAction, Facts
from tether.domain import CHANGE_MARKER, changed
from tether.policy import Allow, Escalate, Verdict
from tether.sandbox import workflow_runner
from tether.workers.main import WORKFLOWS

pytestmark = pytest.mark.integration

CHANGE = "rooms/four-is-large"


def four_is_large(facts: Facts, rules: RoomRules, now: datetime) -> Iterator[Verdict]:
    """The pack's rule, changed: a booking for more than three needs the manager."""
    for verdict in room_rules(facts, rules, now):
        if isinstance(verdict, Allow) and verdict.code == "small_booking":
            people = int(verdict.detail.split()[0])
            if people > 3:
                yield Escalate("large_booking", verdict.detail, tier="facilities")
                continue
        yield verdict


def gated(facts: Facts, rules: RoomRules, now: datetime) -> Iterator[Verdict]:
    """The same change as a pack should ship it."""
    if changed(CHANGE):
        yield from four_is_large(facts, rules, now)
    else:
        yield from room_rules(facts, rules, now)


def with_rule(monkeypatch: pytest.MonkeyPatch, rule: object) -> None:
    pack = packs.get("rooms")
    assert pack is PACK  # the registry's pack is the one the workers and the replayer use
    monkeypatch.setitem(pack.__dict__, "rules", (rule,))  # a frozen dataclass, deployed anew


async def replays(history: WorkflowHistory) -> bool:
    result = await Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    ).replay_workflow(history, raise_on_replay_failure=False)
    return result.replay_failure is None


def markers(history: WorkflowHistory) -> list[str]:
    """The patches a run took, by id (the SDK writes them as plain JSON)."""
    return [
        json.loads(event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)[
            "id"
        ]
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and "patch-data" in event.marker_recorded_event_attributes.details
    ]


async def first_task_done(handle: WorkflowHandle[Any, Any]) -> None:
    """Once the run's first task is in its history (a query before it is not answered)."""
    for _ in range(300):
        history = await handle.fetch_history()
        if any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in history.events
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id}: no workflow task completed")


async def test_a_packs_gated_change_replays_old_runs_and_steers_new_ones(
    tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = ticket("Please book RM-101 for 4 people for our design review.", "E-104")
    handle = await tether.submit(before, domain="rooms")
    outcome = await handle.result()
    assert outcome.decision.action is DecisionAction.AUTO, outcome.decision
    recorded = await handle.fetch_history()
    assert await replays(recorded)
    assert not any(m.startswith(CHANGE_MARKER) for m in markers(recorded))

    # Shipped bare, the change decides the recorded request differently: its history no
    # longer replays (a worker would fail the run's next task the same way).
    with_rule(monkeypatch, four_is_large)
    assert not await replays(recorded)

    # Gated, the recorded run replays the rule it met ...
    with_rule(monkeypatch, gated)
    assert await replays(recorded)

    # ... and a new run takes the change, and its history says so.
    after = ticket("Please book RM-101 for 4 people for our design review.", "E-105")
    rid = after["request_id"]
    handle = await tether.submit(after, domain="rooms")
    await pending_at(tether, rid, "facilities")
    status = await tether.status(rid)
    assert status.pending is not None
    assert "large_booking" in [r.code for r in status.pending.reasons]
    await tether.reject(rid, approver=MANAGER, reason="the change under test")
    outcome = await handle.result()
    assert outcome.decision.action is DecisionAction.APPROVAL
    taken = await handle.fetch_history()
    assert CHANGE_MARKER + CHANGE in markers(taken)
    assert await replays(taken) and await replays(recorded)


def test_outside_a_workflow_a_change_is_taken_and_its_name_is_checked() -> None:
    assert changed(CHANGE)
    assert changed("it-desk/two-approvers")  # any name a domain may have
    for bad in ["", "four-is-large", "rooms/", "Rooms/x", "rooms/with space", "rooms/x\n"]:
        with pytest.raises(ValueError, match="<pack>/<what changed>"):
            changed(bad)


async def test_a_query_answers_as_the_run_decided(temporal_env: WorkflowEnvironment) -> None:
    """A query (or an edit's validator, which runs the pack's rules) writes no history, so it
    cannot ask Temporal; it answers what the run decided. Here a run recorded before the
    change replays on a worker whose code meets it: the run keeps the old path, and the
    query says so. A change the run has not met is one it will take."""
    queue = f"change-probe-{uuid.uuid4().hex[:8]}"
    client = temporal_env.client
    # No cache: every task replays the run from its history, as after a deploy.
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ChangeProbe],
        workflow_runner=workflow_runner(),
        max_cached_workflows=0,
    ):
        try:
            SWITCH.meets_change = False  # the code the run starts on
            before = await client.start_workflow(ChangeProbe.run, id=f"{queue}-a", task_queue=queue)
            await first_task_done(before)
            assert await before.query(ChangeProbe.asks, "probe/first") is True  # not met yet
            SWITCH.meets_change = True  # the code deployed under it
            assert await before.query(ChangeProbe.asks, "probe/first") is False
            assert await before.query(ChangeProbe.asks, "probe/other") is True
            await before.signal(ChangeProbe.finish)
            assert await before.result() == [False]
            assert not any(
                m.startswith(CHANGE_MARKER) for m in markers(await before.fetch_history())
            )

            after = await client.start_workflow(ChangeProbe.run, id=f"{queue}-b", task_queue=queue)
            await first_task_done(after)
            assert await after.query(ChangeProbe.asks, "probe/first") is True
            await after.signal(ChangeProbe.finish)
            assert await after.result() == [True]
            assert CHANGE_MARKER + "probe/first" in markers(await after.fetch_history())
        finally:
            SWITCH.meets_change = True
