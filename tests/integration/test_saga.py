"""Sagas: a failure injected at step k of an n-step plan leaves the business system as it was
before the plan, the completed steps are undone in reverse, and the audit says so."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.conftest import new_id, replay_and_keep
from tether.client import Tether
from tether.config import Settings, Timeouts
from tether.contracts import DecisionAction, ModelIdentity, Outcome, ProposeInput, RawProposal
from tether.domains.support.business import BusinessServer

pytestmark = pytest.mark.integration

ORDER, CUSTOMER = "ORD-1019", "C-116"  # delivered: refunds before delivery need a person
PARTS = [400, 500, 600]  # three partial refunds, $15.00 in all: within the auto limit
TEXT = f"Please refund $4 for the strap, $5 for the buckle and $6 for the case on {ORDER}."
STEPS = len(PARTS) + 1  # the refunds, then the reply (irreversible, so it runs last)


@activity.defn(name="propose_resolution")
async def plan_of_four(inp: ProposeInput) -> RawProposal:
    """Stand-in model: the local model plans one refund per ticket; this one plans three,
    and lists the reply first to show the runtime puts the irreversible step last."""
    best = inp.evidence.passages[0]
    answer = best.text.split(". ")[0] + "."
    refunds = [
        {
            "tool": "issue_refund",
            "arguments": {"order_id": ORDER, "amount_cents": cents, "reason": f"part {i}"},
        }
        for i, cents in enumerate(PARTS, start=1)
    ]
    reply = {
        "tool": "send_reply",
        "arguments": {
            "customer_id": CUSTOMER,
            "order_id": ORDER,
            "body": answer,  # what the customer reads is the verified answer
        },
    }
    content = json.dumps(
        {
            "intent": "refund_request",
            "answer": answer,
            "citations": [best.passage_id],
            "tool_calls": [reply, *refunds],
            "confidence": 0.9,
        }
    )
    return RawProposal(
        content=content, model=ModelIdentity(provider="test", model="planner", fingerprint="0")
    )


async def resolve_planned(
    client: Client, settings: Settings, prefix: str, timeouts: Timeouts | None = None
) -> tuple[Tether, WorkflowHandle[Any, Outcome], Outcome]:
    """TEXT resolved with ``plan_of_four`` as the model (and ``timeouts``, if given)."""
    queue = new_id("planner")
    update: dict[str, Any] = {"model_queue": queue}
    if timeouts is not None:
        update["timeouts"] = timeouts
    tether = Tether(client, settings.model_copy(update=update))
    request = {
        "request_id": new_id(prefix),
        "subject": CUSTOMER,
        "requester": CUSTOMER,
        "text": TEXT,
    }
    async with Worker(client, task_queue=queue, activities=[plan_of_four]):
        handle = await tether.submit(request)
        return tether, handle, await asyncio.wait_for(handle.result(), 120)


@pytest.mark.parametrize("k", range(1, STEPS + 1))
async def test_failure_at_step_k_restores_the_business_system(
    k: int,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    workers: None,
    business: BusinessServer,
) -> None:
    db = business.db
    before = (db.order(ORDER), len(db.rows("refunds")), len(db.rows("messages")))
    # Steps before k act normally (0), step k is refused for good (422).
    if k < STEPS:
        db.faults["/refunds"] = [0] * (k - 1) + [422]
    else:
        db.faults["/messages"] = [422]
    db.faults["/reversals"] = [503]  # and one compensation meets a transient outage: retried
    try:
        tether, handle, outcome = await resolve_planned(temporal_env.client, settings, "saga")
    finally:
        faults_left = {path: q for path, q in db.faults.items() if q}
        db.faults.clear()

    assert outcome.decision.action is DecisionAction.AUTO, outcome.decision.reasons
    plan = ["issue_refund"] * len(PARTS) + ["send_reply"]
    assert [(a.tool, a.ok) for a in outcome.actions] == [
        (tool, step < k) for step, tool in enumerate(plan[:k], start=1)
    ]
    assert "UpstreamRejected" in (outcome.actions[-1].error or "")
    # Completed refunds undone newest first; each undo recorded and successful.
    undone = [a.output["refund_id"] for a in reversed(outcome.actions[: k - 1])]
    assert [c.arguments["refund_id"] for c in outcome.compensations] == undone
    assert all(c.ok and c.tool == "reverse_refund" for c in outcome.compensations)
    # The business system is as it was before the plan: balance, no reply sent.
    after = (db.order(ORDER), len(db.rows("refunds")), len(db.rows("messages")))
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1] == before[1] + k - 1  # refund rows stay, each with its reversal
    assert faults_left == ({"/reversals": [503]} if k == 1 else {})

    entries = await tether.audit(outcome.request_id)
    assert [(e.step, e.ok, e.compensates) for e in entries] == [
        *((step, step < k, None) for step in range(1, k + 1)),
        *((k + i, True, step) for i, step in enumerate(range(k - 1, 0, -1), start=1)),
    ]
    paid = before[0]["refunded_cents"] + sum(PARTS[: k - 1])  # type: ignore[index]
    for entry in entries[k:]:
        cents = PARTS[entry.compensates - 1]  # type: ignore[operator]
        assert entry.changed == {"refunded_cents": {"before": paid, "after": paid - cents}}
        assert entry.allowed_because == [
            f"saga: step {k} failed for good, so step {entry.compensates} is undone"
        ]
        paid -= cents
    if k == STEPS:
        await replay_and_keep(handle, "saga_four_steps_reply_refused")


async def test_an_effect_whose_answer_was_lost_is_found_and_undone(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    workers: None,
    business: BusinessServer,
) -> None:
    """Step 2's refund happens, but every answer to it is lost on the way back: past its time
    budget the workflow asks the business system by key, finds the refund, and undoes it
    along with step 1. Nothing is left half-done and nothing is reported wrongly."""
    db = business.db
    before = db.order(ORDER)
    db.lost_answers["/refunds"] = [0] + [1] * 100
    tight = Timeouts(tool_budget=timedelta(seconds=3))
    try:
        tether, handle, outcome = await resolve_planned(
            temporal_env.client, settings, "lost", tight
        )
    finally:
        db.lost_answers.clear()

    first, second = outcome.actions
    assert first.ok and not second.ok and second.unconfirmed_effect
    assert "UpstreamUnavailable" in (second.error or "") and second.output["refund_id"]
    assert [c.arguments["refund_id"] for c in outcome.compensations] == [
        second.output["refund_id"],
        first.output["refund_id"],
    ]
    assert all(c.ok for c in outcome.compensations)
    assert db.order(ORDER) == before and outcome.followup_required
    entries = await tether.audit(outcome.request_id)
    assert [(e.step, e.ok, e.unconfirmed_effect, e.compensates) for e in entries] == [
        (1, True, False, None),
        (2, False, True, None),
        (3, True, False, 2),
        (4, True, False, 1),
    ]
    await replay_and_keep(handle, "saga_answer_lost_reconciled")


@pytest.mark.parametrize(
    ("failures", "budget"),
    [(1, 3), (1000, 3), (1, 0)],
    ids=["a blip", "for good", "a blip with no budget (0: no limit)"],
)
async def test_a_read_that_fails_is_tried_again_off_the_workflow_task(
    failures: int,
    budget: int,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    workers: None,
    business: BusinessServer,
) -> None:
    """The runtime's read of the order meets 503s. Its first attempt runs beside the
    workflow; the rest of the step's budget is a dispatched activity, so a target that keeps
    failing holds no workflow task (Temporal's core retried a local activity past its
    schedule-to-close). A blip: the order is read on the retry and the plan acts. For good:
    the read is given up when the budget is spent, and nothing names an unread order."""
    db = business.db
    db.faults[f"/orders/{ORDER}"] = [503] * failures
    tight = Timeouts(tool_budget=timedelta(seconds=budget))
    try:
        _, handle, outcome = await resolve_planned(temporal_env.client, settings, "read", tight)
    finally:
        db.faults.clear()

    dispatched = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert "support.lookup_order" in dispatched  # the retry, after the local attempt
    if failures == 1:
        if budget:
            await replay_and_keep(handle, "tools_read_retried")
        assert [c.kind for c in outcome.context] == ["order"]
        assert outcome.decision.action is DecisionAction.AUTO, outcome.decision.reasons
        assert all(a.ok for a in outcome.actions) and len(outcome.actions) == STEPS
    else:
        assert outcome.context == [] and outcome.actions == []
        assert "reference_unknown" in outcome.decision.codes()
