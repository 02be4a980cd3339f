"""Approvers' edits and the official `temporal` CLI, on the real dev server: an edit is held
to the same contracts and policy as the model, and to the editor's own limit."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.conftest import new_id, replay_and_keep
from tests.processes import tether_cli
from tether.client import Tether
from tether.config import Settings
from tether.contracts import DecisionAction, Mode, ModelIdentity, ProposeInput, RawProposal, Stage
from tether.domains.support.business import BusinessServer
from tether.errors import InvalidRequest, ReviewRejected
from tether.names import workflow_id_for
from tether.stack import temporal_binary

pytestmark = pytest.mark.integration

LEAD = "lead@northwind.example"  # may approve up to $200
MANAGER = "manager@northwind.example"


async def pending(tether: Tether, customer: str, order: str, dollars: int) -> str:
    rid = new_id("edit")
    await tether.submit(
        {
            "request_id": rid,
            "subject": customer,
            "requester": customer,
            "text": f"Please refund ${dollars}.00 on {order}, the tent pole snapped on the first night.",
        }
    )
    deadline = time.monotonic() + 60  # a clock, not a count of polls: a busy machine is slow
    while time.monotonic() < deadline:
        status = await tether.status(rid)
        if status.pending is not None:
            assert status.stage is Stage.AWAITING_APPROVAL
            return rid
        await asyncio.sleep(0.05)
    raise AssertionError("never pending")


def refund(order: str, cents: int) -> dict[str, object]:
    return {
        "tool": "issue_refund",
        "arguments": {"order_id": order, "amount_cents": cents, "reason": "edited by lead"},
    }


async def test_an_edit_within_limits_is_executed_and_kept_as_feedback(
    tether: Tether, business: BusinessServer, resources: object
) -> None:
    rid = await pending(tether, "C-111", "ORD-1014", 120)
    status = await tether.status(rid)
    assert status.pending is not None
    reply = status.pending.proposal.tool_calls[-1]
    receipt = await tether.edit(
        rid,
        approver=LEAD,
        reason="half the kit was returned; refund the pole only",
        answer="We have refunded $100.00 for the broken pole.",
        tool_calls=[refund("ORD-1014", 10_000), reply.model_dump()],
        proposal_version=status.pending.proposal_version,
    )
    assert receipt.accepted
    outcome = await tether.handle(rid).result()
    assert outcome.decision.action is DecisionAction.APPROVAL
    assert outcome.answer == "We have refunded $100.00 for the broken pole."
    assert [(a.tool, a.ok) for a in outcome.actions] == [
        ("issue_refund", True),
        ("send_reply", True),
    ]
    assert outcome.actions[0].arguments["amount_cents"] == 10_000
    [edit] = outcome.edits
    assert edit.original.tool_calls[0].arguments["amount_cents"] == 12_000
    assert edit.edited.tool_calls[0].arguments["amount_cents"] == 10_000
    # The reply was copied from the draft, where it said the model's answer: it carries the
    # lead's instead, and the receipt says so.
    assert reply.arguments["body"] == edit.original.answer
    assert outcome.actions[1].arguments["body"] == outcome.answer
    assert receipt.detail.endswith("the new answer is sent as send_reply.body")
    assert [(r.approver, r.verdict) for r in outcome.reviews] == [(LEAD, "approve")]
    refunds = [
        r
        for r in business.db.rows("refunds")
        if str(r["idempotency_key"]).startswith(workflow_id_for(rid))
    ]
    assert [r["amount_cents"] for r in refunds] == [10_000]
    [row] = resources.store.feedback(rid)  # type: ignore[attr-defined]
    assert json.loads(row["edited"])["answer"] == outcome.answer
    assert json.loads(row["original"])["tool_calls"][0]["arguments"]["amount_cents"] == 12_000
    await replay_and_keep(tether.handle(rid), "reviewed_approval_edited")


async def test_an_edited_answer_is_the_one_sent(tether: Tether, business: BusinessServer) -> None:
    """An edit of the answer alone: the reply that held the model's answer sends the
    approver's, on the business system too, not only on the record."""
    rid = await pending(tether, "C-111", "ORD-1014", 130)
    status = await tether.status(rid)
    assert status.pending is not None
    said = "We have refunded $130.00 for the pole; a replacement is on its way."
    receipt = await tether.edit(
        rid,
        approver=MANAGER,  # the customer's refunds in this session may have outgrown a lead's
        reason="promise the replacement too",
        answer=said,
        proposal_version=status.pending.proposal_version,
    )
    assert "send_reply.body" in receipt.detail
    outcome = await tether.handle(rid).result()
    assert outcome.answer == said
    [reply] = [a for a in outcome.actions if a.tool == "send_reply"]
    assert reply.ok and reply.arguments["body"] == said
    sent = [
        m
        for m in business.db.rows("messages")
        if str(m["idempotency_key"]).startswith(workflow_id_for(rid))
    ]
    assert [m["body"] for m in sent] == [said]
    await replay_and_keep(tether.handle(rid), "reviewed_answer_carried")


async def test_text_a_terminal_would_obey_is_refused_at_the_door(
    tether: Tether, business: BusinessServer
) -> None:
    """The client's API reaches the workflow without the CLI's checks: the validator refuses a
    control or invisible character in a reason, an answer or an edited argument, and nothing
    of it enters the history."""
    rid = await pending(tether, "C-112", "ORD-1015", 140)
    screen = "\x1b[2J\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07"
    attempts = [
        lambda: tether.approve(rid, approver=LEAD, reason="fine" + screen),
        lambda: tether.reject(rid, approver=MANAGER, reason="no\u202eon"),
        lambda: tether.edit(rid, approver=LEAD, reason="ok", answer="Refunded." + screen),
        lambda: tether.edit(
            rid,
            approver=LEAD,
            reason="ok",
            tool_calls=[
                {
                    "tool": "issue_refund",
                    "arguments": {
                        "order_id": "ORD-1015",
                        "amount_cents": 14_000,
                        "reason": "pole\u200b",
                    },
                }
            ],
        ),
    ]
    for attempt in attempts:
        with pytest.raises(ReviewRejected) as refused:
            await attempt()
        assert refused.value.code == "hidden_characters", refused.value
    history = await tether.handle(rid).fetch_history()
    assert "\\u001b" not in history.to_json() and "\\u202e" not in history.to_json()
    # Declined: this customer's later refunds are another test's.
    await tether.reject(rid, approver=MANAGER, reason="tabs\tand\nnewlines are text")
    outcome = await tether.handle(rid).result()
    assert [r.reason for r in outcome.reviews] == ["tabs\tand\nnewlines are text"]


async def test_edits_are_refused_by_the_same_checks(
    tether: Tether, business: BusinessServer
) -> None:
    rid = await pending(tether, "C-112", "ORD-1015", 150)
    cases = [
        ({"tool_calls": [refund("ORD-1015", 25_000)]}, LEAD, "edit_exceeds_limit"),  # lead: $200
        (
            {"tool_calls": [refund("ORD-1015", 60_000)]},
            MANAGER,
            "edit_rejected_by_policy",
        ),  # > balance
        (
            {"tool_calls": [refund("ORD-1001", 1_000)]},
            LEAD,
            "edit_rejected_by_policy",
        ),  # other order
        ({"tool_calls": [{"tool": "wire_money", "arguments": {}}]}, LEAD, "edit_invalid"),
        ({"answer": "ok", "proposal_version": 7}, LEAD, "stale_proposal"),
        ({"answer": "ok"}, "C-105", "unknown_approver"),
        ({"answer": "ok"}, "agent@northwind.example", "insufficient_role"),
    ]
    for change, approver, code in cases:
        with pytest.raises(ReviewRejected) as refused:
            await tether.edit(rid, approver=approver, reason="try", **change)  # type: ignore[arg-type]
        assert refused.value.code == code, (change, refused.value)
    with pytest.raises(InvalidRequest, match="changes the answer"):
        await tether.edit(rid, approver=LEAD, reason="nothing changed")
    # A manager's larger edit is within *their* limit.
    await tether.edit(
        rid, approver=MANAGER, reason="goodwill", tool_calls=[refund("ORD-1015", 25_000)]
    )
    outcome = await tether.handle(rid).result()
    assert [a.arguments.get("amount_cents") for a in outcome.actions] == [25_000]
    assert outcome.mode is not Mode.SAFE_DEFAULT


def temporal_cli(env: WorkflowEnvironment, *args: str) -> subprocess.CompletedProcess[str]:
    address = env.client.service_client.config.target_host
    return subprocess.run(
        [temporal_binary(), "workflow", *args, "--address", address, "--namespace", "default"],
        capture_output=True,
        text=True,
        timeout=30,
    )


async def update_by_temporal_cli(env: WorkflowEnvironment, rid: str, message: str) -> str:
    """`temporal workflow update execute --name review`: what it said, and it failed or not."""
    done = await asyncio.to_thread(
        temporal_cli,
        env,
        "update",
        "execute",
        "--workflow-id",
        workflow_id_for(rid),
        "--name",
        "review",
        "--input",
        message,
    )
    return ("ok " if done.returncode == 0 else "failed ") + done.stderr + done.stdout


def cli_for(env: WorkflowEnvironment, settings: Settings) -> Settings:
    return settings.model_copy(
        update={"temporal_address": env.client.service_client.config.target_host}
    )


async def signed_by_cli(settings: Settings, rid: str, approver: str, *extra: str) -> str:
    """`tether approvals sign`: the JSON an operator pastes into the official CLI."""
    done = await asyncio.to_thread(
        tether_cli, settings, "approvals", "sign", rid, "--as", approver, *extra
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_the_official_temporal_cli_approves_only_signed_reviews(
    tether: Tether, temporal_env: WorkflowEnvironment
) -> None:
    cli = cli_for(temporal_env, tether.settings)
    rid = await pending(tether, "C-113", "ORD-1016", 120)
    unsigned = json.dumps({"approver": LEAD, "verdict": "approve", "proposal_version": 1})
    said = await update_by_temporal_cli(temporal_env, rid, unsigned)
    assert said.startswith("failed") and "unsigned" in said and "retryable: false" in said
    agent = await signed_by_cli(cli, rid, "agent@northwind.example")
    said = await update_by_temporal_cli(temporal_env, rid, agent)
    assert said.startswith("failed") and "insufficient_role" in said
    extra = json.dumps({**json.loads(agent), "colour": "red"})
    said = await update_by_temporal_cli(temporal_env, rid, extra)
    assert said.startswith("failed") and "invalid_message" in said and "colour" in said
    assert "retryable: false" in said  # the same message is refused again: not worth retrying
    # A lead's signed approval of *another* request, replayed here.
    other = await pending(tether, "C-113", "ORD-1016", 110)
    elsewhere = await signed_by_cli(cli, other, LEAD, "--reason", "photo of the pole")
    said = await update_by_temporal_cli(temporal_env, rid, elsewhere)
    assert said.startswith("failed") and "bad_signature" in said
    # Its reason changed after signing: the signature no longer matches.
    lead = await signed_by_cli(cli, rid, LEAD, "--reason", "photo of the pole")
    tampered = json.dumps({**json.loads(lead), "reason": "manager said so"})
    said = await update_by_temporal_cli(temporal_env, rid, tampered)
    assert said.startswith("failed") and "bad_signature" in said
    said = await update_by_temporal_cli(temporal_env, rid, lead)
    assert said.startswith("ok"), said
    outcome = await tether.handle(rid).result()
    assert [(r.approver, r.verdict) for r in outcome.reviews] == [(LEAD, "approve")]
    assert all(a.ok for a in outcome.actions) and outcome.actions
    await tether.reject(other, approver=MANAGER, reason="duplicate of the first")


async def test_the_official_temporal_cli_signals_a_signed_rejection(
    tether: Tether, temporal_env: WorkflowEnvironment
) -> None:
    cli = cli_for(temporal_env, tether.settings)
    rid = await pending(tether, "C-114", "ORD-1017", 150)
    reject = await signed_by_cli(
        cli, rid, MANAGER, "--verdict", "reject", "--reason", "duplicate claim"
    )
    sent = await asyncio.to_thread(
        temporal_cli,
        temporal_env,
        "signal",
        "--workflow-id",
        workflow_id_for(rid),
        "--name",
        "review_signal",
        "--input",
        reject,
    )
    assert sent.returncode == 0, sent.stderr
    outcome = await tether.handle(rid).result()
    assert outcome.actions == [] and outcome.answer.startswith("Declined by " + MANAGER)


@activity.defn(name="propose_resolution")
async def unsure_reply(inp: ProposeInput) -> RawProposal:
    """Stand-in model: a reply only, and unsure of itself, so a person gets it as a draft."""
    best = inp.evidence.passages[0]
    reply = {"customer_id": inp.request.subject, "body": "We are looking into it."}
    content = json.dumps(
        {
            "intent": "complaint",
            "answer": best.text.split(". ")[0] + ".",
            "citations": [best.passage_id],
            "tool_calls": [{"tool": "send_reply", "arguments": reply}],
            "confidence": 0.2,
        }
    )
    return RawProposal(
        content=content, model=ModelIdentity(provider="test", model="unsure", fingerprint="0")
    )


async def test_an_answer_the_reply_does_not_say_is_edited_with_it(
    temporal_env: WorkflowEnvironment, settings: Settings, workers: None, business: BusinessServer
) -> None:
    """The draft's reply says something other than its answer: an edit of the answer alone
    would leave the reply the model's, so it is refused; with the reply edited too, it runs."""
    queue = new_id("unsure")
    tether = Tether(temporal_env.client, settings.model_copy(update={"model_queue": queue}))
    async with Worker(temporal_env.client, task_queue=queue, activities=[unsure_reply]):
        rid = await pending(tether, "C-113", "ORD-1016", 10)
        status = await tether.status(rid)
        assert status.pending is not None
        with pytest.raises(ReviewRejected) as refused:
            await tether.edit(rid, approver=LEAD, reason="kinder", answer="We are on it.")
        assert refused.value.code == "edit_misses_outbound"
        assert "send_reply.body also reaches the customer" in str(refused.value)
        reply = {"customer_id": "C-113", "body": "We are on it, and will write by Friday."}
        await tether.edit(
            rid,
            approver=LEAD,
            reason="kinder",
            answer="We are on it.",
            tool_calls=[{"tool": "send_reply", "arguments": reply}],
        )
        outcome = await tether.handle(rid).result()
    assert outcome.answer == "We are on it."
    assert [a.arguments["body"] for a in outcome.actions] == [reply["body"]]


async def test_an_edit_may_add_an_action_the_draft_lacked(
    temporal_env: WorkflowEnvironment, settings: Settings, workers: None, business: BusinessServer
) -> None:
    """The draft only replies; the lead adds a goodwill refund. The approval grants what the
    edited calls need, so the refund runs."""
    queue = new_id("unsure")
    client = temporal_env.client
    tether = Tether(client, settings.model_copy(update={"model_queue": queue}))
    async with Worker(client, task_queue=queue, activities=[unsure_reply]):
        rid = await pending(tether, "C-113", "ORD-1016", 10)
        status = await tether.status(rid)
        assert status.pending is not None
        draft = [c.model_dump() for c in status.pending.proposal.tool_calls]
        assert [c["tool"] for c in draft] == ["send_reply"]
        await tether.edit(
            rid,
            approver=LEAD,
            reason="goodwill for the trouble",
            tool_calls=[refund("ORD-1016", 1_000), *draft],
        )
        outcome = await tether.handle(rid).result()
    assert [(a.tool, a.ok) for a in outcome.actions] == [
        ("issue_refund", True),
        ("send_reply", True),
    ]
    assert outcome.decision.permissions == ["messages:send", "refunds:issue"]
