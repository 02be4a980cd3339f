"""Self-protection against the real dev server, workers, local model and shop, in a deployment
of the test's own (its store and shop: an overlay here reaches no other test). Complaints burn
the resolution budget fast; one evaluation run switches the domain to the conservative
overlay; the next requests that would write on their own wait for a person (each history
holds the overlay's read), nothing is written without one; the overlay goes off after the
recovery window once the burn is low, and at once when a person clears it. A decision takes
its overlay from the policy's pin while the pin is fresh, else reads it again."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from tests.conftest import replay_and_keep, ticket
from tests.deployments import Deployment, own_deployment
from tests.integration.test_resolution import LEAD, wait_pending
from tests.processes import tether_cli
from tether.client import Tether
from tether.config import Settings
from tether.contracts import DecisionAction, Mode, Outcome
from tether.embeddings import Embedder
from tether.evaluation import EvaluationConfig, EvaluationInput, EvaluationReport
from tether.overlay import CODE, TETHER

pytestmark = pytest.mark.integration

# (text, subject)
# (text, subject); every support answer sends a reply: each is automatic with a write.
STATUS = ("Where is my order ORD-1001? It has not arrived yet.", "C-100")
SHIPPING = ("How long does standard shipping take to Ohio?", "C-101")
SMALL = ("Please refund $40 for the headlamp on ORD-1005, it is too dim.", "C-100")
RECOVERY = timedelta(seconds=45)
CONFIG = EvaluationConfig(sample_rate=1.0, overlay_recovery=RECOVERY)
REPORTER = "agent@northwind.example"  # in the tests' support directory: vouches for feedback


async def evaluate(tether: Tether, since: datetime) -> EvaluationReport:
    """One evaluation run over the outcomes finished since ``since`` (a moment: a length
    would be measured from whenever the activity runs, late on a busy machine)."""
    return await tether.evaluate(EvaluationInput(domain="support", since=since, config=CONFIG))


def writes(deployed: Deployment) -> tuple[int, int]:
    shop = deployed.business.db
    return len(shop.rows("messages")), len(shop.rows("refunds"))


async def approved_by_lead(tether: Tether, request: dict[str, str]) -> Outcome:
    handle = await tether.submit(request)
    await wait_pending(tether, request["request_id"])
    await tether.approve(request["request_id"], approver=LEAD, reason="checked")
    return await handle.result()


async def local_activities(tether: Tether, request_id: str) -> list[str]:
    """The local activities a run's history records (markers), by activity type."""
    history = await tether.handle(request_id).fetch_history()
    found = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_local_activity":
            data = json.loads(marker.details["data"].payloads[0].data)
            found.append(data["activity_type"])
    return found


async def test_a_fast_burn_holds_every_write_for_a_person_until_it_recovers(
    deployed: Deployment,
) -> None:
    tether, store = deployed.tether, deployed.resources.store

    # 1. Six automatic answers, each complained about: the resolution budget burns at 20x.
    bad: list[Outcome] = []
    for text, subject in [STATUS, SHIPPING] * 3:
        bad.append(await tether.resolve(ticket(text, subject)))
    assert all(o.decision.action is DecisionAction.AUTO for o in bad), [o.decision for o in bad]
    # Anyone's word first: unsigned complaints, five each, switch nothing.
    first = min(o.started_at for o in bad)
    for o in bad:
        for n in range(5):
            await tether.feedback(o.request_id, kind="complaint", detail=f"wrong ({n})")
    assert (await evaluate(tether, first)).overlays == []
    assert store.overlay_for("support", "order_status") is None
    for o in bad:  # vouched for by a reporter in the directory
        await tether.feedback(
            o.request_id, kind="complaint", detail="the answer was wrong", reporter=REPORTER
        )
    assert store.overlay_for("support", "order_status") is None
    server = tether.client.service_client.config.target_host
    operator = deployed.settings.model_copy(update={"temporal_address": server})
    run = await asyncio.to_thread(  # the workers run on this event loop: leave it free
        tether_cli,
        operator,
        *("eval", "run", "--domain", "support", "--since-hours", "1", "--sample-rate", "1"),
    )  # one evaluation run, as an operator (or the schedule) starts it; this deployment's
    # store holds only this test's outcomes
    print(run.stdout)
    assert run.returncode == 1, run.stderr  # a budget burns
    [overlay] = store.overlays("support")  # switched on within this one run
    assert (overlay.domain, overlay.intent, overlay.set_by) == ("support", None, TETHER)
    assert f"conservative overlay on: support: {overlay.reason}" in " ".join(run.stdout.split())
    [row] = [r for r in run.stdout.splitlines() if r.startswith("│ resolved_without_reversal")]
    assert row.count("20.0x (burning)") == 2  # slow and fast: 6 of 6 complained about
    assert overlay.evidence is not None
    assert [(b.scorer, b.burn_rate) for b in overlay.evidence.budgets] == [
        ("resolved_without_reversal", 20.0)
    ]
    assert store.overlay_for("support", "order_status") == overlay

    # 2. What would have written on its own now waits for a person; nothing is written alone.
    before = writes(deployed)
    reply = ticket(*STATUS)
    refund = ticket(*SMALL)
    replied = await tether.submit(reply)
    refunded = await tether.submit(refund)
    for request in (reply, refund):
        await wait_pending(tether, request["request_id"])
        pending = (await tether.status(request["request_id"])).pending
        assert pending is not None and pending.tier == 0 and pending.reasons[0].code == CODE
    assert writes(deployed) == before
    await tether.reject(refund["request_id"], approver=LEAD, reason="overlay: not now")
    await tether.approve(reply["request_id"], approver=LEAD, reason="reply checked")
    declined, approved = await refunded.result(), await replied.result()
    assert declined.actions == [] and writes(deployed) == (before[0] + 1, before[1])
    assert approved.decision.action is DecisionAction.APPROVAL and approved.mode is Mode.READ_ONLY
    assert approved.decision.codes()[0] == CODE and [a.tool for a in approved.actions] == [
        "send_reply"
    ]
    assert [r.verdict for r in approved.reviews] == ["approve"]  # the approval satisfied it
    # The overlay came with the pin (its marker, beside the order's read): no second read at
    # the decision, a second ago. The order is read again after the approval.
    markers = await local_activities(tether, reply["request_id"])
    assert sorted(markers[:2]) == ["pin_policy", "support.lookup_order"]  # at once: either first
    # The reply itself is a local activity too (steps.LOCAL_TOOLS), in the same task.
    assert markers[2:] == ["support.lookup_order", "support.send_reply", "record_outcome"]
    await replay_and_keep(replied, "overlay_approval_approved")

    # 3. Calm since a boundary: still on within the recovery window, off after it.
    calm_since = datetime.now(UTC)
    good = [await approved_by_lead(tether, ticket(*SHIPPING)) for _ in range(5)]
    assert all(CODE in o.decision.codes() and o.actions[0].ok for o in good)
    held = await evaluate(tether, calm_since)
    assert held.overlays == [] and store.overlay_for("support", None) is not None
    burned_last = store.overlays("support")[0].last_burning_at
    assert burned_last is not None
    wait = (burned_last + RECOVERY - datetime.now(UTC)).total_seconds()
    assert wait > 0, "the calm run came after the recovery window: nothing was shown held"
    await asyncio.sleep(wait + 0.5)
    recovered = await evaluate(tether, calm_since)
    [off] = recovered.overlays
    assert not off.on and off.overlay.cleared_by == TETHER and off.overlay.id == overlay.id
    assert off.overlay.clear_reason and "below the fast rate" in off.overlay.clear_reason
    assert store.overlay_for("support", None) is None
    again = await tether.resolve(ticket(*STATUS))
    assert again.decision.action is DecisionAction.AUTO and again.actions[0].ok

    # 4. A new burn switches it on again; a person clears it from the command line.
    for o in good:
        await tether.feedback(
            o.request_id, kind="complaint", detail="wrong again", reporter=REPORTER
        )
    [on_again] = (await evaluate(tether, calm_since)).overlays
    assert on_again.on and on_again.overlay.id != overlay.id
    shown = tether_cli(deployed.settings, "overlay", "status", "--json")
    assert shown.returncode == 1 and [o["id"] for o in json.loads(shown.stdout)] == [
        on_again.overlay.id
    ]
    cleared = tether_cli(
        deployed.settings,
        "overlay",
        "clear",
        "--domain",
        "support",
        "--by",
        "ops@example",
        "--reason",
        "complaints were about the courier, not the answers",
    )
    assert cleared.returncode == 0, cleared.stderr
    [record] = [o for o in store.overlays(active=False) if o.id == on_again.overlay.id]
    assert (record.cleared_by, record.clear_reason) == (
        "ops@example",
        "complaints were about the courier, not the answers",
    )
    assert (await tether.resolve(ticket(*STATUS))).decision.action is DecisionAction.AUTO
    print(tether_cli(deployed.settings, "overlay", "status", "--all").stdout)
    print(
        f"switched on by {overlay.reason!r}; held 2 writes for a person; off after "
        f"{RECOVERY}: {off.overlay.clear_reason!r}"
    )


async def test_a_decision_long_after_its_pin_reads_the_overlay_again(
    tmp_path: Path, temporal_env: WorkflowEnvironment, settings: Settings, embedder: Embedder
) -> None:
    """With ``overlay_pinned_for`` 0 every pin is too old by the decision: the decision reads
    the overlay itself (a marker of its own), and a person's overlay set after the pin holds
    the write all the same."""
    async with own_deployment(
        tmp_path, temporal_env, settings, embedder, {"overlay_pinned_for": 0}
    ) as deployed:
        tether, store = deployed.tether, deployed.resources.store
        set_by_person = store.set_overlay(
            "support", None, by="ops@example", reason="incident 12", at=datetime.now(UTC)
        )
        assert set_by_person is not None
        before = writes(deployed)
        request = ticket(*STATUS)
        handle = await tether.submit(request)
        await wait_pending(tether, request["request_id"])
        pending = (await tether.status(request["request_id"])).pending
        assert pending is not None and pending.reasons[0].code == CODE
        assert "incident 12" in pending.reasons[0].detail
        await tether.reject(request["request_id"], approver=LEAD, reason="not now")
        declined = await handle.result()
        assert declined.actions == [] and writes(deployed) == before
        markers = await local_activities(tether, request["request_id"])
        assert sorted(markers[:2]) == ["pin_policy", "support.lookup_order"]
        assert markers[2:] == ["active_overlay", "record_outcome"]
