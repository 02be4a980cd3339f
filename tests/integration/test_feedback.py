"""Feedback that arrives after the outcome is attached to it by request id, once; what the
learning loop counts of it is what a reporter in the domain's directory signed."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from tests.conftest import new_id, replay_and_keep
from tests.processes import tether_cli
from tether import errors, names
from tether.client import Tether
from tether.contracts import LaterFeedback
from tether.errors import FeedbackRefused, InvalidRequest
from tether.signing import SigningKey, key_file
from tether.workers.main import Resources

pytestmark = pytest.mark.integration

AGENT = "agent@northwind.example"  # in the tests' support directory, with a key in the keyring


async def resolved(tether: Tether) -> str:
    rid = new_id("fb")
    await tether.resolve(
        {"request_id": rid, "subject": "C-100", "requester": "C-100", "text": "Where is ORD-1001?"}
    )
    return rid


async def feedback_run(tether: Tether, rid: str) -> WorkflowHandle[object, object]:
    """The one feedback run of ``rid``, once visibility lists it."""
    query = f"WorkflowType = '{names.FEEDBACK}' AND WorkflowId STARTS_WITH 'feedback-{rid}-'"
    for _ in range(100):
        found = [w.id async for w in tether.client.list_workflows(query)]
        if found:
            [wid] = found
            return tether.client.get_workflow_handle(wid)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no feedback run of {rid} listed")


async def test_later_feedback_is_attached_to_its_outcome(
    tether: Tether, resources: Resources
) -> None:
    rid = await resolved(tether)
    said = await tether.feedback(rid, kind="complaint", detail="the parcel never came")
    await tether.feedback(rid, kind="complaint", detail="the parcel never came")  # sent twice
    [item] = resources.store.later(rid)
    assert (item["kind"], item["detail"], item["source"], item["vouched_by"]) == (
        "complaint",
        "the parcel never came",
        "api",
        None,
    )
    assert said is None and resources.store.heard(rid) == []  # anyone's word: not counted

    with pytest.raises(InvalidRequest, match="no outcome for request"):
        await tether.feedback(new_id("nobody"), kind="complaint", detail="x")
    with pytest.raises(InvalidRequest, match="kind"):
        await tether.feedback(rid, kind="rumour", detail="x")


async def test_signed_feedback_is_heard_and_forged_feedback_kept_out(
    tether: Tether, resources: Resources
) -> None:
    rid = await resolved(tether)
    vouched = await tether.feedback(rid, kind="complaint", detail="late", reporter=AGENT)
    assert vouched == AGENT
    await replay_and_keep(await feedback_run(tether, rid), "feedback_vouched")
    [heard] = resources.store.heard(rid)
    assert (heard["kind"], heard["vouched_by"]) == ("complaint", AGENT)

    # A key of the reporter's name that the directory does not hold; a signature moved to
    # another request; a reporter with no key held here: refused, nothing kept.
    with pytest.raises(FeedbackRefused) as stranger:
        await tether.feedback(
            rid, kind="confirmation", detail="fine", reporter=AGENT, key=SigningKey.new(AGENT)
        )
    assert stranger.value.code == "unknown_key"
    # A signature moved to another customer's request (by a caller starting the workflow
    # itself, past the client): refused by the worker.
    other = await resolved(tether)
    item = LaterFeedback(request_id=rid, kind="confirmation", detail="all fine")
    signed = tether.keys()[AGENT].vouch(item, datetime.now(UTC))
    moved = signed.model_copy(update={"request_id": other})
    with pytest.raises(WorkflowFailureError) as forged:
        await tether.client.execute_workflow(
            names.FEEDBACK, moved, id=new_id("forged"), task_queue=tether.settings.task_queue
        )
    cause = forged.value.cause.cause
    assert isinstance(cause, ApplicationError) and cause.type == errors.FEEDBACK_REFUSED
    assert cause.details == ("bad_signature",)
    with pytest.raises(InvalidRequest, match="no key of nobody@"):
        await tether.feedback(rid, kind="complaint", detail="x", reporter="nobody@example.com")
    assert [f["kind"] for f in resources.store.later(rid)] == ["complaint"]
    assert resources.store.later(other) == []


async def test_the_command_says_whether_it_was_vouched_for(
    tether: Tether, resources: Resources, tmp_path: Path
) -> None:
    rid = await resolved(tether)
    server = tether.client.service_client.config.target_host
    operator = tether.settings.model_copy(update={"temporal_address": server})

    def feedback(*args: str) -> subprocess.CompletedProcess[str]:
        return tether_cli(operator, "feedback", rid, "--kind", "complaint", *args)

    # The workers serve on this event loop: the commands run beside it, not in its way.
    plain = await asyncio.to_thread(feedback, "--detail", "late")
    assert plain.returncode == 0, plain.stderr
    assert "unverified: kept on the record, counted by nothing that learns" in plain.stdout
    vouched = await asyncio.to_thread(feedback, "--detail", "late", "--reporter", AGENT)
    assert vouched.returncode == 0, vouched.stderr
    assert f"complaint attached to {rid}, vouched for by {AGENT}" in vouched.stdout
    # Another person's key file: refused before anything connects, in one line.
    lead = tmp_path / "lead.key"
    SigningKey.new("lead@northwind.example").save(lead)
    wrong = await asyncio.to_thread(
        feedback, "--detail", "x", "--reporter", AGENT, "--key", str(lead)
    )
    assert wrong.returncode == 2 and wrong.stderr.strip().count("\n") == 0
    assert "signs for lead@northwind.example, not agent@northwind.example" in wrong.stderr
    # A key of the reporter's name the directory does not hold: refused by the worker.
    made = tmp_path / "agent.key"
    SigningKey.new(AGENT).save(made)
    stranger = await asyncio.to_thread(
        feedback, "--detail", "x", "--reporter", AGENT, "--key", str(made)
    )
    assert stranger.returncode == 1, stranger.stderr
    assert "feedback refused (unknown_key)" in stranger.stderr
    # A key alone (as TETHER_APPROVER_KEY gives an approver's) vouches as its holder.
    assert tether.settings.keyring is not None
    theirs = key_file(tether.settings.keyring, "lead@northwind.example")
    held = await asyncio.to_thread(
        feedback, "--detail", "late, said by the lead", "--key", str(theirs)
    )
    assert held.returncode == 0, held.stderr
    assert "vouched for by lead@northwind.example" in held.stdout
    assert [f["vouched_by"] for f in resources.store.later(rid)] == [
        None,
        AGENT,
        "lead@northwind.example",
    ]
