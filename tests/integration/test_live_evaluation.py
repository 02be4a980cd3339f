"""LiveEvaluationWorkflow on the dev server: recent outcomes scored, later feedback counted."""

from __future__ import annotations

import pytest

from tests.conftest import new_id
from tether.client import Tether
from tether.evaluation import EvaluationConfig, EvaluationInput
from tether.workers.main import Resources

pytestmark = pytest.mark.integration

AGENT = "agent@northwind.example"  # a reporter in the tests' support directory


async def test_recent_outcomes_are_scored_with_their_later_feedback(
    tether: Tether, resources: Resources
) -> None:
    rids = [new_id("eval"), new_id("eval"), new_id("eval")]
    for rid in rids:
        await tether.resolve(
            {
                "request_id": rid,
                "subject": "C-100",
                "requester": "C-100",
                "text": "Where is ORD-1001?",
            }
        )
    await tether.feedback(rids[1], kind="complaint", detail="the answer was wrong", reporter=AGENT)
    # Anyone's word, unsigned: kept on the record, counted by nothing that learns.
    await tether.feedback(rids[2], kind="complaint", detail="the answer was wrong")
    report = await tether.evaluate(
        EvaluationInput(since_hours=1, config=EvaluationConfig(sample_rate=1.0))
    )
    assert report.sampled >= 2 and report.outcomes >= 2
    fine, complained, unheard = (resources.store.scores(r) for r in rids)
    assert fine is not None and complained is not None and unheard is not None
    assert fine["resolved_without_reversal"] == 1.0 and fine["policy_compliant"] == 1.0
    assert complained["resolved_without_reversal"] == 0.0
    assert unheard["resolved_without_reversal"] == 1.0
    assert {b.scorer for b in report.budgets} >= {"grounded", "policy_compliant"}
    assert report.drift is not None  # judged against the window before (empty here: too few)
    assert report.datasets.keys() == {"escalations", "reversals", "edits", "complaints", "slow"}
