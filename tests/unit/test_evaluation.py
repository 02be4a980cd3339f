"""Live evaluation: business scorers over outcomes and later feedback; quality budgets burn."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.test_drift import NOW, outcome
from tether.contracts import (
    DecisionAction,
    ReviewRecord,
    ToolCall,
    ToolResult,
)
from tether.evaluation import EvaluationConfig, burn, evaluate, sampled, score

CONFIG = EvaluationConfig(sample_rate=1.0)
REPLY = ToolCall(tool="send_reply", arguments={"customer_id": "C-1", "body": "hi"})


def with_action(*, proposed: bool = True, ok: bool = True) -> object:
    base = outcome(1, grounding=0.9)
    action = ToolResult(tool="send_reply", idempotency_key="k", arguments=REPLY.arguments, ok=ok)
    proposal = base.proposal.model_copy(update={"tool_calls": [REPLY] if proposed else []})  # type: ignore[union-attr]
    return base.model_copy(update={"actions": [action], "proposal": proposal})


def test_scores_say_what_went_right_and_wrong() -> None:
    good = score(with_action(), [], CONFIG)  # type: ignore[arg-type]
    assert good == {
        "schema_valid": 1.0,
        "grounded": 1.0,
        "policy_compliant": 1.0,
        "resolved_without_reversal": 1.0,
        "latency_within_slo": 1.0,
    }  # no person acted: agreement does not apply
    assert score(with_action(proposed=False), [], CONFIG)["policy_compliant"] == 0.0  # type: ignore[arg-type]
    complained = score(with_action(), [{"kind": "complaint"}], CONFIG)  # type: ignore[arg-type]
    assert complained["resolved_without_reversal"] == 0.0
    slow = outcome(2, grounding=0.5).model_copy(update={"started_at": NOW - timedelta(seconds=9)})
    assert score(slow, [], CONFIG)["latency_within_slo"] == 0.0
    assert score(slow, [], CONFIG)["grounded"] == 0.0


def test_agreement_with_the_person_who_acted() -> None:
    approved = outcome(3, grounding=0.9).model_copy(
        update={
            "decision": outcome(3, grounding=0.9).decision.model_copy(
                update={"action": DecisionAction.APPROVAL}
            ),
            "reviews": [
                ReviewRecord(approver="lead", verdict="reject", reason="no", tier=0, at=NOW)
            ],
        }
    )
    assert score(approved, [], CONFIG)["human_agreement"] == 0.0


def test_sampling_is_stable_and_near_its_rate() -> None:
    ids = [f"r-{i}" for i in range(2_000)]
    picked = [i for i in ids if sampled(i, 0.2)]
    assert picked == [i for i in ids if sampled(i, 0.2)]  # the same requests every run
    assert 0.17 < len(picked) / len(ids) < 0.23


def test_a_budget_burns_when_the_bad_share_outruns_it() -> None:
    good = [{"grounded": 1.0}] * 95 + [{"grounded": 0.0}] * 5  # 5% bad against a 10% allowance
    [status] = [b for b in burn(good, CONFIG) if b.scorer == "grounded"]
    assert status.burn_rate == 0.5 and not status.fired
    bad = [{"grounded": 1.0}] * 70 + [{"grounded": 0.0}] * 30  # 30% bad: 3x the allowance
    [status] = [b for b in burn(bad, CONFIG) if b.scorer == "grounded"]
    assert status.burn_rate == 3.0 and status.fired


def test_a_window_is_scored_and_summarised() -> None:
    window = [outcome(i, grounding=0.9 if i % 4 else 0.3) for i in range(40)]
    scores, report = evaluate(window, lambda _: [], CONFIG)
    assert report.sampled == len(scores) == 40
    assert report.means["grounded"] == 0.75
    assert [b.scorer for b in report.budgets if b.fired] == ["grounded"]  # 25% bad vs 10%
