"""A domain pack that lives only in the test tree (tests/packs/rooms: a facilities desk
booking meeting rooms), served by the same workers as support, end to end: automatic,
approval, a reject by the pack's own rule, and retrieval-only when the model is away."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id, replay_and_keep, ticket
from tests.packs.rooms.system import RoomsServer
from tether import names
from tether.client import Tether
from tether.config import Settings, Timeouts
from tether.contracts import DecisionAction, Mode, Outcome, Request, ResolutionInput
from tether.errors import InvalidRequest, ReviewRejected
from tether.names import workflow_id_for

pytestmark = pytest.mark.integration

MANAGER = "fm@rooms.example"


async def pending_at(tether: Tether, request_id: str, tier: str) -> int:
    """The pending proposal's version, once it waits at ``tier``."""
    for _ in range(200):
        status = await tether.status(request_id)
        if status.pending is not None and status.pending.tier_name == tier:
            return status.pending.proposal_version
        await asyncio.sleep(0.05)
    raise AssertionError(f"never pending at {tier}")


def bookings(facilities: RoomsServer, request_id: str) -> list[dict[str, object]]:
    wid = workflow_id_for(request_id)
    return [
        r for r in facilities.db.rows("bookings") if str(r["idempotency_key"]).startswith(f"{wid}/")
    ]


async def test_a_small_booking_is_made_automatically(
    tether: Tether, facilities: RoomsServer
) -> None:
    req = ticket("Please book RM-101 for 4 people for our design review.", "E-100")
    handle = await tether.submit(req, domain="rooms")
    outcome = await handle.result()

    assert outcome.domain == "rooms" and outcome.intent == "book_room"
    assert outcome.decision.action is DecisionAction.AUTO, outcome.decision
    assert {"small_booking", "confidence_ok", "grounded"} <= set(outcome.decision.codes())
    assert [(a.tool, a.ok) for a in outcome.actions] == [
        ("book_room", True),
        ("notify_requester", True),
    ]
    [booking] = bookings(facilities, req["request_id"])
    assert (booking["room_id"], booking["people"], booking["employee_id"]) == ("RM-101", 4, "E-100")
    assert [r.citation_id for r in outcome.context] == ["room:RM-101"]
    assert "room:RM-101" in outcome.citations
    # Its own knowledge, none of support's.
    assert {p.source for p in outcome.evidence.passages} == {"facilities-handbook"}  # type: ignore[union-attr]
    entry = (await tether.audit(req["request_id"]))[0]
    assert entry.tool == "book_room" and "RM-101 is open" in (entry.precondition or "")
    await replay_and_keep(handle, "rooms_auto_booking")


async def test_a_large_booking_waits_for_the_facilities_manager(
    tether: Tether, facilities: RoomsServer
) -> None:
    req = ticket("I need RM-201 booked for 14 people for the quarterly planning.", "E-101")
    rid = req["request_id"]
    handle = await tether.submit(req, domain="rooms")
    for _ in range(200):
        status = await tether.status(rid)
        if status.pending is not None:
            break
        await asyncio.sleep(0.05)
    assert status.pending is not None and status.pending.tier_name == "facilities"
    assert status.domain == "rooms"
    assert "large_booking" in [r.code for r in status.pending.reasons]
    assert bookings(facilities, rid) == []

    with pytest.raises(ReviewRejected) as refused:
        await tether.approve(rid, approver="desk@rooms.example")
    assert refused.value.code == "insufficient_role"
    with pytest.raises(ReviewRejected) as support_lead:  # another pack's approver is nobody here
        await tether.approve(rid, approver="lead@northwind.example")
    assert support_lead.value.code == "unknown_approver"
    for _ in range(100):  # listed by domain through the search attribute
        if rid in [s.request_id for s in await tether.pending(domain="rooms")]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("not listed under TetherDomain = 'rooms'")
    assert rid not in [s.request_id for s in await tether.pending(domain="support")]

    await tether.approve(rid, approver=MANAGER, reason="catering booked")
    outcome = await handle.result()
    assert outcome.decision.action is DecisionAction.APPROVAL
    [booking] = bookings(facilities, rid)
    assert booking["people"] == 14


async def test_a_room_under_maintenance_is_refused_by_the_packs_rule(
    tether: Tether, facilities: RoomsServer
) -> None:
    req = ticket("Please put a booking on RM-301 for 3 people.", "E-102")
    outcome = await tether.resolve(req, domain="rooms")
    assert outcome.decision.action is DecisionAction.REJECT
    assert "room_under_maintenance" in outcome.decision.codes()
    assert outcome.actions == [] and bookings(facilities, req["request_id"]) == []


async def test_without_a_model_the_pack_answers_from_its_passages(
    temporal_env: WorkflowEnvironment, settings: Settings, workers: None, facilities: RoomsServer
) -> None:
    degraded = settings.model_copy(
        update={
            "model_queue": new_id("no-model"),
            "timeouts": Timeouts(model_schedule_to_start=timedelta(seconds=1)),
        }
    )
    tether = Tether(temporal_env.client, degraded)
    req = ticket("How far ahead can I book a meeting room for five people?", "E-103")
    outcome = await tether.resolve(req, domain="rooms")
    assert outcome.decision.action is DecisionAction.DEGRADED
    assert outcome.mode is Mode.RETRIEVAL_ONLY and outcome.actions == []
    assert outcome.citations, outcome.freshness
    assert outcome.followup_required
    assert bookings(facilities, req["request_id"]) == []


async def test_requests_are_checked_against_their_pack(tether: Tether) -> None:
    with pytest.raises(InvalidRequest) as wrong_kind:  # rooms have no orders
        await tether.submit(
            {**ticket("Book it", "E-100"), "references": {"order": "ORD-1001"}}, domain="rooms"
        )
    assert "references.order: not a kind of record here" in str(wrong_kind.value)
    with pytest.raises(InvalidRequest) as unknown:
        await tether.submit(ticket("Book it", "E-100"), domain="payroll")
    assert "domain: 'payroll' is not one of ['itops', 'rooms', 'support']" in str(unknown.value)


async def test_an_approval_the_recheck_outgrows_goes_back_to_a_higher_tier(
    tether: Tether, facilities: RoomsServer
) -> None:
    """While the manager looks, the board takes the room: read again after the approval, the
    booking needs the director, so it waits for the director instead of acting."""
    req = ticket("Could you book the Ridge room RM-202 for 16 attendees?", "E-104")
    rid = req["request_id"]
    handle = await tether.submit(req, domain="rooms")
    assert await pending_at(tether, rid, "facilities") == 1
    facilities.db.restrict("RM-202")
    await tether.approve(rid, approver=MANAGER, reason="room is free")
    assert await pending_at(tether, rid, "director") == 2  # put to people again, a new version
    assert bookings(facilities, rid) == []
    with pytest.raises(ReviewRejected) as stale:  # a verdict on what the manager saw
        await tether.review(
            rid, approver="director@rooms.example", verdict="approve", proposal_version=1
        )
    assert stale.value.code == "stale_proposal"
    await tether.approve(rid, approver="director@rooms.example", reason="board agrees")
    outcome = await handle.result()
    assert [r.verdict for r in outcome.reviews] == ["approve", "reopened", "approve"]
    assert outcome.decision.action is DecisionAction.APPROVAL and outcome.decision.tier == 1
    assert "restricted_room" in outcome.decision.codes()
    [booking] = bookings(facilities, rid)
    assert booking["people"] == 16


async def test_a_start_around_the_client_meets_the_same_checks(
    tether: Tether, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    """`temporal workflow start` with a request the pack refuses: rejected, nothing read or
    proposed. With a domain no worker serves: the task fails (and is retried, in the UI)
    until a worker that serves it comes, and nothing runs."""
    client = temporal_env.client
    bad = Request(
        request_id=new_id("raw"),
        subject="E-100",
        requester="E-100",
        text="Book RM-101 for 2 people",
        references={"order": ["ORD-1001"]},
    )
    outcome = await client.execute_workflow(
        names.RESOLUTION,
        ResolutionInput(domain="rooms", request=bad),
        id=workflow_id_for(bad.request_id),
        task_queue=settings.task_queue,
        result_type=Outcome,
    )
    assert outcome.decision.action is DecisionAction.REJECT
    assert outcome.decision.codes() == ["invalid_request"]
    assert outcome.proposal is None and outcome.evidence and outcome.evidence.passages == []

    stray = bad.model_copy(update={"request_id": new_id("raw"), "references": {}})
    handle = await client.start_workflow(
        names.RESOLUTION,
        ResolutionInput(domain="payroll", request=stray),
        id=workflow_id_for(stray.request_id),
        task_queue=settings.task_queue,
    )
    try:
        for _ in range(100):
            failed = [
                e
                async for e in handle.fetch_history_events()
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            ]
            if failed:
                break
            await asyncio.sleep(0.1)
        assert failed, "the workflow task never failed"
        message = failed[0].workflow_task_failed_event_attributes.failure.message
        assert "no domain pack 'payroll'" in message
    finally:
        await handle.terminate("test done")
