"""Hostile traffic against the real workers: another subject's ids and data, reused request
ids, outbound text the model wrote, amounts in every spelling, split refunds, text that looks
like markup, and a model server that answers by function call. Each case failed once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.conftest import new_id, replay_and_keep, ticket
from tests.integration.test_resolution import LEAD, MANAGER, effects, wait_pending
from tests.processes import tether_cli
from tether import names
from tether.client import Tether, parse_request
from tether.config import Settings
from tether.contracts import (
    DecisionAction,
    ModelIdentity,
    ProposeInput,
    RawProposal,
    ResolutionInput,
)
from tether.domains.support.business import BusinessServer
from tether.errors import RequestConflict
from tether.names import workflow_id_for
from tether.overlay import CODE
from tether.workers.main import Resources

pytestmark = pytest.mark.integration


def scripted(plan: Callable[[ProposeInput], dict[str, object]]) -> object:
    """A stand-in model (the local one never writes these) answering ``plan(input)``."""

    @activity.defn(name="propose_resolution")
    async def propose(inp: ProposeInput) -> RawProposal:
        return RawProposal(
            content=json.dumps(plan(inp)),
            model=ModelIdentity(provider="test", model="hostile", fingerprint="0"),
        )

    return propose


async def with_model(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    model: object,
    request: dict[str, str],
) -> object:
    queue = new_id("hostile")
    tether = Tether(temporal_env.client, settings.model_copy(update={"model_queue": queue}))
    async with Worker(temporal_env.client, task_queue=queue, activities=[model]):  # type: ignore[list-item]
        return await tether.resolve(request)


def grounded(inp: ProposeInput) -> tuple[str, list[str]]:
    """An answer copied from the best passage, as the local model writes them."""
    best = inp.evidence.passages[0]
    return best.text.split(". ")[0] + ".", [best.passage_id]


# --- data of one subject reaching another -----------------------------------------------


async def test_a_reused_request_id_is_a_conflict_not_someone_elses_outcome(
    tether: Tether, settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    first = ticket("Where is my order ORD-1001? It has not arrived yet.", "C-100")
    outcome = await tether.resolve(first)
    assert await tether.resolve(first) == outcome  # the same request again: the same outcome

    for change in ({"subject": "C-101", "requester": "C-101"}, {"text": "Where is ORD-1005?"}):
        with pytest.raises(RequestConflict):
            await tether.submit({**first, **change})
    with pytest.raises(RequestConflict):
        await tether.submit(first, domain="rooms")  # the same words for another business

    cli = settings.model_copy(
        update={"temporal_address": temporal_env.client.service_client.config.target_host}
    )
    done = await asyncio.to_thread(
        tether_cli, cli, "ask", first["text"], "--subject", "C-101", "--request-id",
        first["request_id"], "--json",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout
    assert done.stdout == "" and "already names a different request" in done.stderr


async def test_a_run_started_again_under_a_resolved_request_id_refuses_to_act(
    tether: Tether,
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    resources: Resources,
    business: BusinessServer,
) -> None:
    """Whoever can start workflows in the namespace starts a second run under a resolved
    request's id (the Tether client never would). Its tools' keys are the first run's: it
    would replay those effects as its own, then undo them if a later step failed (with other
    words, at once). It refuses before acting; the first outcome and its refund stand."""
    # An order of its own: the session's business system outlives each test.
    first = ticket("Please refund $3 for the headlamp strap on ORD-1025, it broke.", "C-122")
    outcome = await tether.resolve(first)
    assert outcome.decision.action is DecisionAction.AUTO, outcome.decision
    rid = first["request_id"]
    ledger = resources.ledger.entries(rid)
    pack = tether.pack(None)
    for again in (first, {**first, "text": first["text"].replace("$3", "$4")}):
        handle = await temporal_env.client.start_workflow(
            names.RESOLUTION,
            ResolutionInput(
                domain=pack.name, request=parse_request(again, pack), timeouts=settings.timeouts
            ),
            id=workflow_id_for(rid),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        assert isinstance(failed.value.cause, ApplicationError)
        assert failed.value.cause.type == "AlreadyResolved"
        assert failed.value.cause.non_retryable
        assert f"request {rid} was resolved at " in failed.value.cause.message
        kinds = [e.event_type async for e in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in kinds  # nothing dispatched
    [refund] = effects(business, "refunds", rid)
    assert refund["amount_cents"] == 300 and effects(business, "reversals", rid) == []
    assert resources.ledger.entries(rid) == ledger
    assert resources.store.outcome(rid) == outcome


async def test_a_record_of_another_subject_is_never_read_into_the_request(
    tether: Tether, settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    """C-100 asks about C-101's order: nothing of it is read, shown to the model, or kept."""
    req = ticket("Where is my order ORD-1002? Any news?", "C-100")
    outcome = await tether.resolve(req)
    assert outcome.decision.action is DecisionAction.REJECT
    assert outcome.decision.codes() == ["not_subjects_record"]
    assert outcome.withheld == ["order:ORD-1002"] and outcome.context == []
    assert outcome.proposal is None  # the model was never asked
    assert "C-101" not in outcome.model_dump_json()
    # The audit says why nothing was attempted, not an empty table.
    cli = settings.model_copy(
        update={"temporal_address": temporal_env.client.service_client.config.target_host}
    )
    audited = await asyncio.to_thread(tether_cli, cli, "audit", req["request_id"])
    assert audited.returncode == 0, audited.stderr
    assert audited.stdout.splitlines() == [
        "withheld (another subject's): order:ORD-1002",
        "no side effect attempted: decision reject (not_subjects_record), mode normal",
    ]


async def test_a_model_proposed_read_of_another_subjects_record_returns_nothing(
    temporal_env: WorkflowEnvironment, settings: Settings, workers: None
) -> None:
    def peek(inp: ProposeInput) -> dict[str, object]:
        answer, cited = grounded(inp)
        return {
            "intent": "order_status",
            "answer": answer,
            "citations": cited,
            "tool_calls": [{"tool": "lookup_order", "arguments": {"order_id": "ORD-1002"}}],
            "confidence": 0.95,
        }

    req = ticket("Where are my orders ORD-1005 and ORD-1002?", "C-100")
    outcome = await with_model(temporal_env, settings, scripted(peek), req)
    [read] = outcome.actions  # type: ignore[attr-defined]
    assert not read.ok and "NotSubjectsRecord" in (read.error or "") and read.output == {}
    assert "C-101" not in outcome.model_dump_json()  # type: ignore[attr-defined]


async def test_text_sent_to_the_customer_is_verified_like_the_answer(
    temporal_env: WorkflowEnvironment, settings: Settings, workers: None, business: BusinessServer
) -> None:
    def lie(inp: ProposeInput) -> dict[str, object]:
        answer, cited = grounded(inp)
        body = "Good news: a refund of $5,000.00 for ORD-1002 has been approved and sent."
        return {
            "intent": "shipping_question",
            "answer": answer,
            "citations": cited,
            "tool_calls": [
                {"tool": "send_reply", "arguments": {"customer_id": "C-100", "body": body}}
            ],
            "confidence": 0.95,
        }

    req = ticket("How long does standard shipping take?", "C-100")
    outcome = await with_model(temporal_env, settings, scripted(lie), req)
    assert outcome.decision.action is DecisionAction.REJECT  # type: ignore[attr-defined]
    codes = set(outcome.decision.codes())  # type: ignore[attr-defined]
    assert {
        "verifier:outbound_names_other_record",
        "verifier:reply_names_unplanned_amount",
        "verifier:reply_claims_unplanned_refund",
    } <= codes
    assert effects(business, "messages", req["request_id"]) == []


# --- amounts the system did not understand ----------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Please refund 5000 dollars on ORD-1020, the stove is broken.",
        "I want 2400 EUR back for ORD-1020, the stove is broken.",
        "Refund -500 on ORD-1020 please, the stove is broken.",
        "Refund 1e9 on ORD-1020, the stove is broken.",
        "Refund my order ORD-1020, the stove is broken.",  # no amount at all
    ],
    ids=["dollars in words", "euros", "negative", "exponent", "none"],
)
async def test_an_amount_nobody_named_in_dollars_never_moves_money_alone(
    tether: Tether, business: BusinessServer, text: str
) -> None:
    req = ticket(text, "C-117")
    handle = await tether.submit(req)
    while True:
        status = await tether.status(req["request_id"])
        described = await handle.describe()
        if status.pending is not None or described.close_time is not None:
            break
        await asyncio.sleep(0.05)
    if status.pending is not None:
        await tether.reject(req["request_id"], approver=MANAGER, reason="amount unclear")
    outcome = await handle.result()
    assert outcome.decision.action in (DecisionAction.APPROVAL, DecisionAction.REJECT)
    assert effects(business, "refunds", req["request_id"]) == []


async def test_a_refund_before_delivery_needs_a_person(
    tether: Tether, business: BusinessServer
) -> None:
    req = ticket("Please refund $20 on ORD-1001, I changed my mind.", "C-100")  # shipped
    handle = await tether.submit(req)
    await wait_pending(tether, req["request_id"])
    status = await tether.status(req["request_id"])
    assert status.pending is not None
    assert "not_delivered" in [r.code for r in status.pending.reasons]
    await tether.reject(req["request_id"], approver=LEAD, reason="wait for delivery")
    await handle.result()
    assert effects(business, "refunds", req["request_id"]) == []


async def test_refunds_split_across_tickets_escalate_like_one(
    tether: Tether, business: BusinessServer
) -> None:
    """Three tickets of $45 from one customer at once: one is paid alone, the others wait for
    a person, whichever order they arrive in."""
    reqs = [ticket(f"Please refund $45 on ORD-1021, item {i} broke.", "C-118") for i in range(3)]
    handles = await asyncio.gather(*(tether.submit(r) for r in reqs))

    async def settle(rid: str) -> None:
        for _ in range(400):
            if (await tether.status(rid)).pending is not None:
                await tether.reject(rid, approver=MANAGER, reason="one refund a day")
                return
            if (await tether.handle(rid).describe()).close_time is not None:
                return
            await asyncio.sleep(0.05)

    await asyncio.gather(*(settle(r["request_id"]) for r in reqs))
    outcomes = [await h.result() for h in handles]
    automatic = [o for o in outcomes if o.decision.action is DecisionAction.AUTO]
    assert len(automatic) == 1, [o.decision.codes() for o in outcomes]
    held = [o for o in outcomes if o.decision.action is DecisionAction.APPROVAL]
    assert all("customer_total_above_auto_limit" in o.decision.codes() for o in held)
    assert len([r for r in business.db.rows("refunds") if r["order_id"] == "ORD-1021"]) == 1


# --- the operator's tools ---------------------------------------------------------------


async def test_ticket_text_that_looks_like_markup_is_printed_as_written(
    tether: Tether, settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    """Markup in what people wrote (the ticket, an approver's reason) is printed as written,
    and `--json` is one valid document whatever the terminal's width."""
    cli = settings.model_copy(
        update={"temporal_address": temporal_env.client.service_client.config.target_host}
    )
    text = "hmm about the thing [/red] from before, you know [bold]what[/bold] I mean \\[x]"
    reason = "[/red] not [bold]now[/bold]"

    async def ask(*flags: str, linger: float = 0.0) -> tuple[str, str]:
        rid = new_id("markup")
        done = asyncio.create_task(
            asyncio.to_thread(
                tether_cli, cli, "ask", text, "--subject", "C-100", "--request-id", rid, *flags
            )
        )
        deadline = time.monotonic() + 120  # its own process starts it: a clock, not polls
        while time.monotonic() < deadline:
            with contextlib.suppress(RPCError):
                if (await tether.status(rid)).pending is not None:
                    break
            await asyncio.sleep(0.05)
        await asyncio.sleep(linger)  # the CLI looks once a second
        await tether.reject(rid, approver=LEAD, reason=reason)  # their words go in the reply
        result = await done
        assert result.returncode == 0, result.stderr
        return result.stdout, result.stderr

    human, errors = await ask(linger=3.0)
    assert reason in human  # not styled away, not a crash
    # The wait is not silent: who decides, by when, and where to look (on stderr).
    lines = errors.splitlines()
    assert len(lines) == 1, errors
    [hint] = lines
    assert hint.startswith("waiting for a person: tier lead (support_lead) decides by 20")
    assert "; tether approvals show markup-" in hint
    piped, _ = await ask("--json")
    outcome = json.loads(piped)
    assert outcome["request"]["text"] == text and reason in outcome["answer"]
    started = await asyncio.to_thread(
        tether_cli, cli, "ask", "Where is ORD-1001?", "--subject", "C-100", "--no-wait", "--json"
    )
    link = json.loads(started.stdout)  # at once: the id and where to follow it
    assert link["workflow_id"].startswith("resolution-") and link["ui"].startswith("http")
    assert link["started"] is True
    # The same request again: attached to, and said so (it is not started twice).
    again = await asyncio.to_thread(
        tether_cli, cli, "ask", "Where is ORD-1001?", "--subject", "C-100",
        "--request-id", link["request_id"], "--no-wait",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"attached to request {link['request_id']} (workflow ")


# --- an intent named to borrow thresholds -----------------------------------------------


def replying(intent: str, confidence: float) -> Callable[[ProposeInput], dict[str, object]]:
    """A grounded reply to the subject, under ``intent``, as sure as ``confidence``."""

    def plan(inp: ProposeInput) -> dict[str, object]:
        answer, cited = grounded(inp)
        reply = {"customer_id": inp.request.subject, "body": answer}
        return {
            "intent": intent,
            "answer": answer,
            "citations": cited,
            "tool_calls": [{"tool": "send_reply", "arguments": reply}],
            "confidence": confidence,
        }

    return plan


def serving(
    temporal_env: WorkflowEnvironment, queue: str, plan: Callable[[ProposeInput], dict[str, object]]
) -> Worker:
    """A stand-in model's worker on ``queue``, answering ``plan(input)``."""
    return Worker(temporal_env.client, task_queue=queue, activities=[scripted(plan)])  # type: ignore[list-item]


async def test_an_intent_the_model_names_moves_no_threshold_the_verifier_does_not_read(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    workers: None,
    business: BusinessServer,
    resources: Resources,
) -> None:
    """The policy lets warranty questions through at any confidence. A model unsure of an
    order-status answer labels it warranty_question: the verifier reads the request as
    order_status, so the policy's own threshold holds the reply for a person. Named
    order_status, with thresholds of its own as lax, the same reply goes out alone."""
    lax = {"min_auto_confidence": 0.1, "min_grounding": 0.0}
    store = resources.policies
    active = store.active("support")
    assert active is not None
    borrowed = active.policy.merged(
        {
            "version": f"support-lax-warranty-{new_id()}",
            "intent_thresholds": {"warranty_question": lax, "order_status": lax},
        }
    )
    store.add("support", borrowed, by="test")
    store.activate("support", borrowed.version, by="test", reason="intent drill")

    queue = new_id("hostile")
    tether = Tether(temporal_env.client, settings.model_copy(update={"model_queue": queue}))
    text = "Where is my order ORD-1001? It has not arrived yet."
    try:
        async with serving(temporal_env, queue, replying("warranty_question", 0.2)):
            req = ticket(text, "C-100")
            handle = await tether.submit(req)
            await wait_pending(tether, req["request_id"])
            pending = (await tether.status(req["request_id"])).pending
            assert pending is not None
            why = (
                "confidence 0.20 < 0.55 for warranty_question, read by the verifier as order_status"
            )
            assert why in [r.detail for r in pending.reasons]
            assert effects(business, "messages", req["request_id"]) == []
            await tether.reject(req["request_id"], approver=LEAD, reason="not a warranty claim")
            held = await handle.result()
        assert held.verification is not None and held.verification.intent == "order_status"
        assert "intent_disagrees" in [f.code for f in held.verification.findings]
        async with serving(temporal_env, queue, replying("order_status", 0.2)):
            named = await tether.resolve(ticket(text, "C-100"))
        assert named.decision.action is DecisionAction.AUTO, named.decision
        assert named.decision.policy_version == borrowed.version
    finally:
        store.activate("support", active.version, by="test", reason="drill over")


async def test_an_intent_the_model_names_escapes_no_overlay_on_the_one_the_verifier_reads(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    workers: None,
    business: BusinessServer,
    resources: Resources,
) -> None:
    """A person switched the conservative overlay on for order_status. A model names an
    order-status reply warranty_question, sure of it: the verifier reads order_status, so the
    overlay holds the reply for a person all the same."""
    store = resources.store
    overlay = store.set_overlay(
        "support", "order_status", by="ops@example", reason="drill 7", at=datetime.now(UTC)
    )
    assert overlay is not None
    queue = new_id("hostile")
    tether = Tether(temporal_env.client, settings.model_copy(update={"model_queue": queue}))
    req = ticket("Where is my order ORD-1001? It has not arrived yet.", "C-100")
    try:
        async with serving(temporal_env, queue, replying("warranty_question", 0.95)):
            handle = await tether.submit(req)
            await wait_pending(tether, req["request_id"])
            pending = (await tether.status(req["request_id"])).pending
            assert pending is not None
            assert pending.reasons[0].code == CODE, pending.reasons
            assert "drill 7" in pending.reasons[0].detail
            await tether.reject(req["request_id"], approver=LEAD, reason="overlay on")
            held = await handle.result()
        await replay_and_keep(handle, "intent_overlay_on_the_intent_read")
    finally:
        store.clear_overlay(overlay.id, by="ops@example", reason="drill over", at=datetime.now(UTC))
    assert held.verification is not None and held.verification.intent == "order_status"
    assert effects(business, "messages", req["request_id"]) == []
