"""Governance nobody can bypass (issue 14), on the real dev server: the workers' pinned policy
decides whatever a client carries, and a review counts only signed by a live key of its
approver, whichever way it arrives: Update, signal, the `tether` CLI, the official `temporal`
CLI, the console."""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id
from tests.integration.test_console import serve_console
from tests.integration.test_edits import pending as pending_at_dollars
from tests.integration.test_edits import update_by_temporal_cli
from tests.processes import tether_cli
from tether import names
from tether.client import Tether
from tether.config import ConsoleConfig, Settings
from tether.contracts import DecisionAction, Edit, Review, ToolCall
from tether.domains.support.business import BusinessServer
from tether.errors import ReviewRejected
from tether.names import workflow_id_for
from tether.signing import SigningKey, directory_for, proposal_digest
from tether.stack import temporal_binary
from tether.workers.main import Resources

pytestmark = pytest.mark.integration

LEAD = "lead@northwind.example"
MANAGER = "manager@northwind.example"
ROTATED = "rotated@northwind.example"  # a manager whose first key was revoked


@pytest.fixture(scope="module")
def rotation(
    resources: Resources, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path]]:
    """A support policy version whose directory adds ROTATED with a revoked key and a new
    one, active while this module runs (then the one before it again)."""
    keys = tmp_path_factory.mktemp("rotation")
    old, new = SigningKey.new(ROTATED), SigningKey.new(ROTATED)
    old.save(keys / "old.key")
    new.save(keys / "new.key")
    store = resources.policies
    before = store.active("support")
    assert before is not None
    directory = {k: v.model_dump(mode="json") for k, v in before.policy.approvers.items()}
    directory[ROTATED] = {
        "roles": ["support_manager"],
        "keys": [
            {"public_key": old.public_key, "revoked_at": "2026-01-01T00:00:00Z"},
            {"public_key": new.public_key},
        ],
    }
    rotated = before.policy.merged({"version": f"rotation-{new_id()}", "approvers": directory})
    store.add("support", rotated, by="test")
    store.activate("support", rotated.version, by="test", reason="key rotation drill")
    yield {"old": keys / "old.key", "new": keys / "new.key"}
    store.activate("support", before.version, by="test", reason="drill over")


async def pending(tether: Tether, customer: str, order: str) -> str:
    """A $120 refund, waiting for a person."""
    return await pending_at_dollars(tether, customer, order, 120)


async def bad_messages(tether: Tether, rid: str, other: str, old: Path) -> list[tuple[str, object]]:
    """One message per refusal code, each signed as an attacker could."""
    lead = tether.keys()[LEAD]
    review = Review(approver=MANAGER, verdict="approve", reason="ok")
    edit = Edit(
        approver=MANAGER,
        reason="less",
        tool_calls=[
            ToolCall(
                tool="issue_refund",
                arguments={"order_id": "ORD-1022", "amount_cents": 5_000, "reason": "edited"},
            )
        ],
    )
    signed_edit = await tether.sign(rid, edit)
    more = [
        c.model_copy(update={"arguments": {**c.arguments, "amount_cents": 99_000}})
        for c in edit.tool_calls or []
    ]
    long_ago = datetime.now(UTC) - timedelta(minutes=30)
    seen = (await tether.status(other)).pending
    assert seen is not None
    # Signed after seeing another proposal at the same version (as under a run started again
    # with this id): the signature holds, the proposal it names is not the one pending.
    elsewhere = review.model_copy(update={"proposal_sha256": proposal_digest(seen.proposal)})
    # Signed over the version alone, as before 2026-12-07: a version another run reuses.
    bare = review.model_copy(update={"proposal_version": 1})
    manager = tether.keys()[MANAGER]
    return [
        ("stale_proposal", await tether.sign(rid, elsewhere)),
        (
            "unsigned_proposal",
            bare.model_copy(
                update={"signature": manager.sign(bare, workflow_id_for(rid), datetime.now(UTC))}
            ),
        ),
        ("unsigned", (await tether.sign(rid, review)).model_copy(update={"signature": None})),
        ("unknown_key", await tether.sign(rid, review, SigningKey(MANAGER, lead.private))),
        ("bad_signature", signed_edit.model_copy(update={"tool_calls": more})),
        (
            "bad_signature",
            (await tether.sign(other, review)).model_copy(update={"proposal_version": 1}),
        ),
        ("expired", await tether.sign(rid, review, now=long_ago)),
        (
            "revoked_key",
            await tether.sign(
                rid, review.model_copy(update={"approver": ROTATED}), SigningKey.load(old)
            ),
        ),
    ]


async def test_a_client_cannot_choose_the_policy_or_the_approvers(
    tether: Tether, business: BusinessServer, tmp_path: Path
) -> None:
    """A client whose own settings carry a lenient policy and an approver of its own making:
    the workflow decides by the workers' pinned version, and that approver counts for nothing."""
    me = "me@attacker.example"
    lenient = tether.settings.model_copy(
        update={
            "policies": {
                "support": {
                    "min_auto_confidence": 0.0,
                    "rules": {"auto_limit_cents": 10_000_000},
                    "approvers": directory_for({me: ["support_manager"]}, tmp_path),
                }
            },
            "keyring": tmp_path,
        }
    )
    sly = Tether(tether.client, lenient)
    rid = await pending(sly, "C-119", "ORD-1022")
    status = await sly.status(rid)
    assert status.decision is not None and status.decision.action is DecisionAction.APPROVAL
    assert "amount_above_auto_limit" in status.decision.codes()
    with pytest.raises(ReviewRejected) as refused:
        await sly.approve(rid, approver=me)
    assert refused.value.code == "unknown_approver"
    await tether.reject(rid, approver=MANAGER, reason="test over")
    outcome = await tether.outcome(rid)
    assert outcome.actions == [] and outcome.policy_sha256
    assert outcome.decision.policy_version == (await asyncio.to_thread(_active_version, tether))


async def test_a_client_cannot_choose_who_answers_for_the_model(
    tether: Tether, business: BusinessServer
) -> None:
    """A caller whose settings name a model queue of its own (one it could serve itself):
    the request is answered on the workers' model queue, pinned with their policy."""
    sly = Tether(tether.client, tether.settings.model_copy(update={"model_queue": "mine"}))
    rid = f"queue-{new_id()}"
    ticket = "Where is my order ORD-1002? Has it shipped yet?"
    handle = await sly.submit(
        {"request_id": rid, "subject": "C-101", "requester": "C-101", "text": ticket}
    )
    outcome = await asyncio.wait_for(handle.result(), 120)
    assert outcome.mode.value == "normal" and outcome.model is not None, outcome
    history = [e async for e in handle.fetch_history_events()]
    queues = {
        e.activity_task_scheduled_event_attributes.task_queue.name
        for e in history
        if e.activity_task_scheduled_event_attributes.activity_type.name == names.PROPOSE
    }
    assert queues == {tether.settings.model_queue}, queues


def _active_version(tether: Tether) -> str:
    from tether.policystore import PolicyStore

    store = PolicyStore(tether.settings.resolved_store_url())
    try:
        active = store.active("support")
        assert active is not None
        return active.version
    finally:
        store.close()


async def test_a_raw_start_carrying_a_policy_runs_nothing(
    tether: Tether, temporal_env: WorkflowEnvironment, business: BusinessServer
) -> None:
    """`temporal workflow start` with a policy in the input (the attack of the issue): the
    input is refused by its contract, so the workflow never runs a step."""
    rid = new_id("raw")
    inp = {
        "domain": "support",
        "request": {
            "request_id": rid,
            "subject": "C-110",
            "requester": "C-110",
            "text": "Please refund $120.00 on ORD-1013, the pole snapped.",
        },
        "policy": {
            "version": "mine",
            "tiers": [{"name": "lead", "role": "x", "sla": "PT1H"}],
            "rules": {"auto_limit_cents": 10_000_000},
        },
    }
    address = temporal_env.client.service_client.config.target_host
    started = await asyncio.create_subprocess_exec(
        temporal_binary(),
        "workflow",
        "start",
        "--type",
        names.RESOLUTION,
        "--task-queue",
        tether.settings.task_queue,
        "--workflow-id",
        workflow_id_for(rid),
        "--input",
        json.dumps(inp),
        "--address",
        address,
    )
    assert await started.wait() == 0
    handle = tether.handle(rid)
    deadline = time.monotonic() + 60
    failed = []
    while not failed and time.monotonic() < deadline:
        failed = [
            e
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
        await asyncio.sleep(0.2)
    assert failed, "the input was accepted"
    assert "policy" in str(failed[0].workflow_task_failed_event_attributes.failure.message) + str(
        failed[0].workflow_task_failed_event_attributes.failure
    )
    scheduled = [
        e
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == []  # nothing ran: no read, no model, no tool
    await handle.terminate("test over")


async def test_refusals_by_update(tether: Tether, rotation: dict[str, Path]) -> None:
    rid = await pending(tether, "C-119", "ORD-1022")
    other = await pending(tether, "C-120", "ORD-1023")
    for code, message in await bad_messages(tether, rid, other, rotation["old"]):
        update = names.EDIT if isinstance(message, Edit) else names.REVIEW
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await tether.handle(rid).execute_update(update, message)
        assert code in str(failed.value.cause), (code, failed.value.cause)
    # The rotated approver's new key counts.
    await tether.review(
        rid,
        approver=ROTATED,
        verdict="reject",
        reason="drill",
        key=SigningKey.load(rotation["new"]),
    )
    outcome = await tether.outcome(rid)
    assert [(r.approver, r.verdict) for r in outcome.reviews] == [(ROTATED, "reject")]
    assert outcome.reviews[0].key_id == SigningKey.load(rotation["new"]).id
    await tether.reject(other, approver=MANAGER, reason="test over")


async def test_refusals_by_signal(tether: Tether, rotation: dict[str, Path]) -> None:
    rid = await pending(tether, "C-119", "ORD-1022")
    other = await pending(tether, "C-120", "ORD-1023")
    expected = []
    handle = tether.handle(rid)
    for code, message in await bad_messages(tether, rid, other, rotation["old"]):
        signal = names.EDIT_SIGNAL if isinstance(message, Edit) else names.REVIEW_SIGNAL
        await handle.signal(signal, message)
        expected.append(code)
    # A name no check has read yet is kept as its escapes, never as what a terminal obeys.
    await handle.signal(names.REVIEW_SIGNAL, {"approver": "x\x1b[2J", "verdict": "approve"})
    await handle.signal(names.REVIEW_SIGNAL, {"approver": "y", "verdict": "approve", "\x1b]8;": 1})
    expected += ["invalid_message", "invalid_message"]
    await handle.signal(
        names.REVIEW_SIGNAL,
        await tether.sign(rid, Review(approver=MANAGER, verdict="reject", reason="drill")),
    )
    outcome = await handle.result()
    refused = [r.reason.split(":")[0] for r in outcome.reviews if r.verdict == "refused"]
    assert refused == expected
    assert "x\\x1b[2J" in [r.approver for r in outcome.reviews]
    assert not any("\x1b" in r.approver + r.reason for r in outcome.reviews)
    assert outcome.reviews[-1].verdict == "reject" and outcome.actions == []
    await tether.reject(other, approver=MANAGER, reason="test over")


async def test_refusals_by_the_tether_cli(
    tether: Tether, temporal_env: WorkflowEnvironment, rotation: dict[str, Path], tmp_path: Path
) -> None:
    cli = tether.settings.model_copy(
        update={"temporal_address": temporal_env.client.service_client.config.target_host}
    )
    rid = await pending(tether, "C-119", "ORD-1022")
    other = await pending(tether, "C-120", "ORD-1023")
    # A page of one, and the next: the hint printed is a command that runs, filters kept.
    deadline = time.monotonic() + 60  # the list is read through visibility, a moment behind
    while True:
        page = await asyncio.to_thread(
            tether_cli, cli, "approvals", "list", "--domain", "support", "--limit", "1", "--json"
        )
        assert page.returncode == 0, page.stderr
        if json.loads(page.stdout)["next_page"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    listed = await asyncio.to_thread(
        tether_cli, cli, "approvals", "list", "--domain", "support", "--limit", "1"
    )
    [hint] = [line for line in listed.stdout.splitlines() if line.startswith("more: ")]
    assert hint.startswith("more: tether approvals list --domain support --limit 1 --after ")
    following = await asyncio.to_thread(tether_cli, cli, *shlex.split(hint)[2:])
    assert following.returncode == 0, following.stderr
    first_page = {w["request_id"] for w in json.loads(page.stdout)["approvals"]}
    assert not any(rid_ in following.stdout for rid_ in first_page)
    await tether.reject(other, approver=MANAGER, reason="test over")
    # A filter that finds nothing says what it looked for, TETHER_DEFAULT_DOMAIN's domain
    # too (the one every command means when it names none); a mode or a domain that is none
    # is refused.
    none = await asyncio.to_thread(tether_cli, cli, "approvals", "list", "--intent", "no_such")
    assert none.returncode == 0
    assert none.stdout == "nothing waiting for --intent no_such --domain support\n"
    typo = await asyncio.to_thread(tether_cli, cli, "approvals", "list", "--mode", "humandraft")
    assert typo.returncode == 2 and "mode: 'humandraft' is not one of normal" in typo.stderr
    typo = await asyncio.to_thread(tether_cli, cli, "approvals", "list", "--domain", "nosuch")
    assert typo.returncode == 2 and "domain: 'nosuch' is not one of" in typo.stderr
    # What is not there yet, or not at all: one line, never a wait or a traceback.
    waiting = await asyncio.to_thread(tether_cli, cli, "audit", rid)
    assert waiting.returncode == 1, waiting.stderr
    assert waiting.stderr.strip() == f"{rid} is awaiting_approval: nothing to audit yet"
    for command in (["audit", "no-such-request"], ["approvals", "show", "no-such-request"]):
        missing = await asyncio.to_thread(tether_cli, cli, *command)
        assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr
        assert "not found" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    lead_as_manager = tmp_path / "forged.key"
    SigningKey(MANAGER, tether.keys()[LEAD].private).save(lead_as_manager)
    for approver, key, code in [
        (MANAGER, lead_as_manager, "unknown_key"),
        (ROTATED, rotation["old"], "revoked_key"),
    ]:
        done = await asyncio.to_thread(
            tether_cli, cli, "approvals", "approve", rid, "--as", approver, "--key", str(key)
        )
        assert done.returncode == 1 and code in done.stderr, (code, done.stderr)
    # What `show` printed is what is signed: a hash of another proposal is refused here.
    shown = await asyncio.to_thread(tether_cli, cli, "approvals", "show", rid, "--json")
    digest = json.loads(shown.stdout)["proposal_sha256"]
    tier = json.loads(shown.stdout)["pending"]["tier_name"]
    assert len(digest) == 64 and digest == proposal_digest(
        (await tether.status(rid)).pending.proposal
    )  # type: ignore[union-attr]
    # For a person: the same in a few lines, and the command that approves this proposal.
    read = await asyncio.to_thread(tether_cli, cli, "approvals", "show", rid)
    assert read.returncode == 0, read.stderr
    lines = read.stdout.splitlines()
    version = json.loads(shown.stdout)["pending"]["proposal_version"]
    assert any(line.startswith("waiting for") and f"tier {tier}" in line for line in lines)
    assert f"version {version}, sha256 {digest}" in read.stdout
    assert any(line.startswith("ticket") and "ORD-1022" in line for line in lines), lines
    assert lines[-1] == (
        f"tether approvals approve {rid} --as YOU --reason '…' --version {version} "
        f"--proposal {digest[:16]}"
    )
    for said, exit_code, line in [
        ("0" * 12, 1, "stale_proposal: the proposal pending"),
        ("zz", 2, "--proposal 'zz': 12 to 64 hex digits"),
    ]:
        done = await asyncio.to_thread(
            tether_cli, cli, "approvals", "approve", rid, "--as", MANAGER, "--proposal", said
        )
        assert done.returncode == exit_code and line in done.stderr, done.stderr
    done = await asyncio.to_thread(
        tether_cli,
        cli,
        "approvals",
        "reject",
        rid,
        "--as",
        ROTATED,
        "--key",
        str(rotation["new"]),
        "--reason",
        "drill",
        "--proposal",
        digest[:12],
        "--version",
        "1",
    )
    assert done.returncode == 0, done.stderr
    assert f"reject accepted at tier {tier}: reject recorded" in done.stdout  # by its name
    assert (await tether.outcome(rid)).reviews[-1].approver == ROTATED
    # The audit says who stopped it and why, not only that nothing was attempted.
    audited = await asyncio.to_thread(tether_cli, cli, "audit", rid)
    assert audited.returncode == 0, audited.stderr
    key_id = SigningKey.load(rotation["new"]).id
    assert f"review: reject by {ROTATED} (tier " in audited.stdout
    assert f", key {key_id}) at " in audited.stdout and ": drill\n" in audited.stdout
    assert "no side effect attempted: decision approval (" in audited.stdout
    assert audited.stdout.rstrip().endswith(f"; rejected by {ROTATED}: drill")


async def test_refusals_by_the_official_temporal_cli(
    tether: Tether, temporal_env: WorkflowEnvironment, rotation: dict[str, Path]
) -> None:
    rid = await pending(tether, "C-119", "ORD-1022")
    other = await pending(tether, "C-120", "ORD-1023")
    for code, message in await bad_messages(tether, rid, other, rotation["old"]):
        if isinstance(message, Edit):
            continue  # the update named review takes reviews; edits are covered above
        said = await update_by_temporal_cli(temporal_env, rid, message.model_dump_json())
        assert said.startswith("failed") and code in said, (code, said)
    assert (await tether.status(rid)).pending is not None  # none of them counted
    await tether.reject(rid, approver=MANAGER, reason="test over")
    await tether.reject(other, approver=MANAGER, reason="test over")


async def test_refusals_by_the_console(
    tether: Tether, temporal_env: WorkflowEnvironment, rotation: dict[str, Path], tmp_path: Path
) -> None:
    """The console signs with the key it holds for the operator it signed in: a revoked key,
    or a key that is not the operator's, is refused; the operator's live key approves."""
    held = tmp_path / "console-keys"
    held.mkdir()
    (held / f"{ROTATED}.key").write_bytes(rotation["old"].read_bytes())
    SigningKey(MANAGER, tether.keys()[LEAD].private).save(held / f"{MANAGER}.key")  # not theirs
    (held / f"{LEAD}.key").write_bytes((tether.settings.keyring / f"{LEAD}.key").read_bytes())  # type: ignore[operator]
    configured = tether.settings.model_copy(
        update={
            "temporal_address": temporal_env.client.service_client.config.target_host,
            "console": ConsoleConfig(identity_header="X-Test-User", keyring=held),
        }
    )
    rid = await pending(tether, "C-119", "ORD-1022")

    async def reject(http: httpx.AsyncClient, operator: str) -> httpx.Response:
        who = {"X-Test-User": operator}
        page = await http.get(f"/requests/{rid}", headers=who)
        csrf = page.text.split("name='csrf' value='")[1].split("'")[0]
        return await http.post(
            f"/requests/{rid}/reject",
            data={"csrf": csrf, "version": "1", "reason": "console drill"},
            headers=who,
        )

    with serve_console(configured) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            revoked = await reject(http, ROTATED)
            forged = await reject(http, MANAGER)
            assert (await tether.status(rid)).pending is not None  # neither counted
            signed = await reject(http, LEAD)
    assert revoked.status_code == 409 and "revoked_key" in revoked.text
    assert forged.status_code == 409 and "unknown_key" in forged.text
    assert signed.status_code in (200, 303), signed.text
    outcome = await tether.outcome(rid)
    assert [(r.approver, r.verdict) for r in outcome.reviews] == [(LEAD, "reject")]
    assert outcome.reviews[0].key_id == tether.keys()[LEAD].id


@pytest.mark.parametrize("offboarded", ["revoked", "removed"])
async def test_a_key_revoked_after_the_request_began_approves_nothing(
    tether: Tether, resources: Resources, business: BusinessServer, offboarded: str
) -> None:
    """The workflow pinned a directory in which the manager's key was live; it is revoked
    while the request waits, or the manager is taken out of the directory. The validator
    (pinned) lets the review in; the workflow then reads the key's status from the workers'
    active directory and puts the request to people again, and a live key decides it."""
    rid = await pending(tether, "C-121", "ORD-1024")
    store = resources.policies
    before = store.active("support")
    assert before is not None
    directory = {k: v.model_dump(mode="json") for k, v in before.policy.approvers.items()}
    if offboarded == "removed":
        del directory[MANAGER]
    else:
        directory[MANAGER]["keys"] = [
            {**k, "revoked_at": datetime.now(UTC).isoformat()} for k in directory[MANAGER]["keys"]
        ]
    revoked = before.policy.merged({"version": f"revoked-{new_id()}", "approvers": directory})
    store.add("support", revoked, by="test")
    store.activate("support", revoked.version, by="test", reason="manager's laptop stolen")
    try:
        await tether.approve(rid, approver=MANAGER, reason="looks fine")  # the validator: pinned
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = await tether.status(rid)
            if status.pending is not None and status.pending.proposal_version == 2:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the request was not put to people again")
        # The approval queue (read from the memo) lists it as it is now: version 2.
        while True:
            listed = [s for s in await tether.pending() if s.request_id == rid]
            if listed and listed[0].pending and listed[0].pending.proposal_version == 2:
                break
            assert time.monotonic() < deadline, f"the queue still lists {listed}"
            await asyncio.sleep(0.2)
        await tether.reject(rid, approver=LEAD, reason="a live key decides")
    finally:
        store.activate("support", before.version, by="test", reason="drill over")
    outcome = await tether.outcome(rid)
    assert [(r.approver, r.verdict) for r in outcome.reviews] == [
        (MANAGER, "approve"),
        ("system", "reopened"),
        (LEAD, "reject"),
    ]
    assert outcome.reviews[1].reason.startswith("revoked_key")
    assert outcome.actions == []


async def test_without_an_approver_directory_nothing_waits_for_nobody(
    tether: Tether, resources: Resources, business: BusinessServer
) -> None:
    """The packs ship no approvers. A version without a directory refuses a request that
    needs a person, saying why, instead of holding it until every SLA has run out."""
    store = resources.policies
    before = store.active("support")
    assert before is not None
    bare = before.policy.merged({"version": f"bare-{new_id()}", "approvers": {}})
    store.add("support", bare, by="test")
    store.activate("support", bare.version, by="test", reason="no directory")
    try:
        req = {
            "request_id": new_id("bare"),
            "subject": "C-120",
            "requester": "C-120",
            "text": "Please refund $120.00 on ORD-1023, the tent pole snapped on the first night.",
        }
        outcome = await tether.resolve(req)
        small = {**req, "request_id": new_id("bare"), "text": "Where is my order ORD-1023?"}
        answered = await tether.resolve(small)
    finally:
        store.activate("support", before.version, by="test", reason="drill over")
    assert outcome.decision.action is DecisionAction.REJECT and outcome.actions == []
    [why] = [r for r in outcome.decision.reasons if r.code == "no_approver"]
    assert bare.version in why.detail and "approver directory" in why.detail
    assert "amount_above_auto_limit" in outcome.decision.codes()  # what needed a person
    assert answered.decision.action is DecisionAction.AUTO  # nothing needed one: unaffected


async def test_a_verdict_nobody_takes_is_answered_in_bounded_time(tether: Tether) -> None:
    """No worker serves the run (its task queue has no poller): the verdict does not wait for
    one forever. It is refused as no_answer, with what to do, once ``decide_within`` ran out."""
    rid = f"unserved-{new_id()}"
    handle = await tether.submit(
        {"request_id": rid, "subject": "C-101", "requester": "C-101", "text": "Where is ORD-1001?"},
        task_queue=f"nobody-serves-{rid}",
    )
    tether.decide_within = timedelta(seconds=3)
    began = time.monotonic()
    try:
        with pytest.raises(ReviewRejected) as refused:
            await tether.approve(rid, approver=MANAGER, reason="ok")
    finally:
        tether.decide_within = timedelta(seconds=30)
        await handle.terminate("test over")
    assert refused.value.code == "no_answer", refused.value
    assert f"tether approvals show {rid}" in refused.value.detail
    assert time.monotonic() - began < 20
