"""Approval SLAs on the time-skipping test server: escalate a tier, then fall back safely."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id, replay_and_keep, ticket
from tests.integration.test_resolution import LEAD, MANAGER, effects
from tether import search
from tether.client import Tether
from tether.config import Settings
from tether.contracts import DecisionAction, Mode
from tether.domains.itops.systems import ItopsSystems
from tether.domains.support.business import BusinessServer
from tether.errors import ReviewRejected
from tether.stack import time_skipping_binary
from tether.workers.main import Resources, model_worker, resolution_worker

pytestmark = pytest.mark.integration


@dataclass
class Skipping:
    env: WorkflowEnvironment
    tether: Tether


@pytest.fixture(scope="module")
async def skipping(resources: Resources, settings: Settings) -> AsyncIterator[Skipping]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_binary(), data_converter=pydantic_data_converter
    )
    # The test server knows no custom search attributes until they are registered.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in search.ALL
            },
        )
    )
    queue = new_id("ts")
    local = settings.model_copy(update={"task_queue": queue, "model_queue": f"{queue}-model"})
    async with (
        resolution_worker(env.client, resources, task_queue=queue),
        model_worker(env.client, resources, task_queue=f"{queue}-model"),
    ):
        tether = Tether(env.client, local)
        for pack in resources.packs:
            await tether.ingest_pack(pack.name)
        # Approvers sign at the test server's time: its clock runs hours ahead of the wall's.
        yield Skipping(env, Tether(env.client, local, clock=env.get_current_time))
    await env.shutdown()


async def test_unanswered_approval_escalates_then_takes_the_safe_default(
    skipping: Skipping, business: BusinessServer
) -> None:
    # Undelivered orders: the test server's clock runs far ahead of real delivery dates.
    req = ticket("Please refund $60 on ORD-1012 for the camping stove.", "C-109")
    handle = await skipping.tether.submit(req)
    outcome = await handle.result()  # the server skips through both SLAs (4 h, then 8 h)

    assert outcome.decision.action is DecisionAction.APPROVAL
    assert outcome.mode is Mode.SAFE_DEFAULT
    assert [(r.approver, r.verdict, r.tier) for r in outcome.reviews] == [
        ("system", "expired", 0),
        ("system", "expired", 1),
    ]
    assert outcome.actions == [] and outcome.followup_required
    assert (outcome.finished_at - outcome.started_at) >= timedelta(hours=12)
    assert effects(business, "refunds", req["request_id"]) == []
    await replay_and_keep(handle, "sla_safe_default")


async def test_escalated_approval_needs_the_next_tier(
    skipping: Skipping, business: BusinessServer
) -> None:
    tether = skipping.tether
    req = ticket("I'd like a refund of $150 for ORD-1011, it is not what I expected.", "C-108")
    rid = req["request_id"]
    handle = await tether.submit(req)
    for _ in range(100):
        status = await tether.status(rid)
        if status.pending is not None:
            break
        await asyncio.sleep(0.05)
    assert status.pending is not None and status.pending.tier_name == "lead"

    await skipping.env.sleep(timedelta(hours=4, minutes=1))  # past the lead tier's SLA
    status = await tether.status(rid)
    assert status.pending is not None and status.pending.tier_name == "manager"

    with pytest.raises(ReviewRejected) as refused:
        await tether.approve(rid, approver=LEAD)  # the lead's window has passed
    assert refused.value.code == "insufficient_role"
    await tether.approve(rid, approver=MANAGER, reason="long-standing customer")
    outcome = await handle.result()
    assert [(r.verdict, r.tier) for r in outcome.reviews] == [("expired", 0), ("approve", 1)]
    [refund] = effects(business, "refunds", rid)
    assert refund["amount_cents"] == 15_000
    await replay_and_keep(handle, "sla_escalated_then_approved")


async def test_an_unanswered_production_change_makes_no_change(
    skipping: Skipping, itops: ItopsSystems
) -> None:
    """itops: the on-call SRE, then security, then the change board let their SLAs pass
    (30 min, 2 h, 8 h): nothing restarts, and a follow-up is queued."""
    before = itops.db.service("prod-web-02", "svc-checkout")
    req = ticket("Restart svc-checkout on prod-web-02, the pods are wedged.", "E-202")
    handle = await skipping.tether.submit(req, domain="itops")
    outcome = await handle.result()

    assert outcome.decision.action is DecisionAction.APPROVAL
    assert "production_host" in outcome.decision.codes()
    assert outcome.mode is Mode.SAFE_DEFAULT
    assert [(r.verdict, r.tier) for r in outcome.reviews] == [
        ("expired", 0),
        ("expired", 1),
        ("expired", 2),
    ]
    assert outcome.actions == [] and outcome.followup_required
    assert (outcome.finished_at - outcome.started_at) >= timedelta(hours=10, minutes=30)
    assert itops.db.service("prod-web-02", "svc-checkout") == before
