"""Determinism: histories recorded from the integration tests replay against today's code.

Re-record after an intended, versioned change with
``TETHER_RECORD_HISTORIES=1 pytest tests/integration`` and commit tests/histories/.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.conftest import DOMAINS, HISTORY_IDS
from tether import packs
from tether.contracts import Outcome, ResolutionInput, RetrievalQuery
from tether.sandbox import workflow_runner
from tether.workers.main import WORKFLOWS

RECORDED = sorted(p for p in HISTORY_IDS.parent.glob("*.json") if p != HISTORY_IDS)
packs.load(DOMAINS)  # the workflows decide with the packs' rules, on replay as live


def load(path: Path) -> WorkflowHistory:
    """A recorded history under its workflow's own id (signed reviews are bound to it)."""
    ids = json.loads(HISTORY_IDS.read_text())
    return WorkflowHistory.from_json(ids.get(path.stem, f"replay-{path.stem}"), path.read_text())


def test_every_path_has_a_recorded_history() -> None:
    names = {p.stem for p in RECORDED}
    assert {
        "auto_order_status",
        "auto_small_refund",
        "approval_approved",
        "approval_by_signal",
        "rejected_by_policy",
        "degraded_retrieval_only",
        "sla_safe_default",
        "sla_escalated_then_approved",
        "approval_then_recheck_rejects",
        "saga_compensated",
        "saga_four_steps_reply_refused",
        "saga_answer_lost_reconciled",
        "approval_edited",  # an approver's edit, by Update
        "rooms_auto_booking",  # a pack from the test tree, on the same workflow
        "overlay_approval_approved",  # a write held by the conservative overlay, approved
        "shadow_in_run_auto",  # a policy candidate decided inside the live run
        "shadow_started_beside",  # a model candidate's run started by a local activity
        "shadow_own_run",  # that run: proposed, verified, decided, recorded
        "latest_auto_order_status",  # under LATEST: one patch marker for today's changes
        "latest_approval_approved",
        "pinread_auto_order_status",  # the pin beside the reads, the overlay with the pin
        "pinread_overlay_approval_approved",
        "reviewed_auto_order_status",  # people's text checked at the door, edits carried
        "reviewed_approval_edited",
        "reviewed_answer_carried",  # an edit of the answer alone, sent as the reply's body
        "signed_approval_approved",  # a verdict signed over the proposal's hash
        "signed_approval_by_signal",
        "signed_approval_edited",
        "planned_auto_small_refund",  # an intent's thresholds only for writes its plan names
        "planned_approval_approved",
        "planned_approval_edited",
        "intent_auto_order_status",  # an intent's thresholds only where the verifier reads it
        "intent_auto_small_refund",
        "intent_approval_approved",
        "intent_approval_by_signal",
        "intent_approval_edited",
        "intent_overlay_on_the_intent_read",  # an overlay on the intent the verifier reads
        "tools_auto_order_status",  # the plan's tool calls as local activities
        "tools_auto_small_refund",
        "tools_approval_approved",
        "tools_approval_by_signal",
        "tools_approval_edited",
        "tools_approval_then_recheck_rejects",
        "tools_saga_compensated",  # undone by scheduled compensations, as before
        "tools_saga_four_steps_reply_refused",
        "tools_saga_answer_lost_reconciled",  # the retry dispatched, then reconciled
        "tools_read_retried",  # a read's first attempt failed beside the workflow, retried
    } <= names


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    await replayer.replay_workflow(load(path))


@workflow.defn(name="ResolutionWorkflow", sandboxed=False)
class ReorderedResolution:
    """What a careless edit looks like: the same workflow type, its first step changed."""

    @workflow.run
    async def run(self, inp: ResolutionInput) -> Outcome:
        await workflow.execute_activity(
            "verify_proposal",
            RetrievalQuery(
                domain=inp.domain, text=inp.request.text, request_id=inp.request.request_id
            ),
            start_to_close_timeout=timedelta(seconds=5),
        )
        raise AssertionError("replay must fail before getting here")


async def test_a_change_that_breaks_determinism_fails_replay() -> None:
    replayer = Replayer(workflows=[ReorderedResolution], data_converter=pydantic_data_converter)
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(RECORDED[0]))
