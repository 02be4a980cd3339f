"""Calibrated routing: labels from what people did, and per-intent thresholds fitted on a
synthetic history whose answer is known (goodness depends on confidence and grounding with a
known cut), the refusals, and hostile intent names in what is printed."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tether import calibration
from tether.calibration import Calibration, IntentFit, TooFewLabels, calibrate, label, wilson
from tether.cli.calibration import describe
from tether.config import IntentThresholds
from tether.contracts import (
    Decision,
    DecisionAction,
    EditRecord,
    FreshnessReport,
    LaterFeedback,
    Mode,
    Outcome,
    Proposal,
    Reason,
    ReviewRecord,
    ToolCall,
    ToolResult,
    Verification,
)
from tether.domains.support import PACK

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
POLICY = PACK.policy  # confidence 0.55, grounding 0.75
INTENTS = PACK.intents
REPLY = ToolCall(tool="send_reply", arguments={"customer_id": "C-1", "body": "hello"})


def outcome(
    rid: str,
    intent: str,
    confidence: float,
    grounding: float,
    action: DecisionAction,
    codes: Sequence[str] = (),
    *,
    finished: datetime = NOW - timedelta(days=10),
    **changes: Any,
) -> Outcome:
    """One recorded outcome of a proposal of ``intent``, decided with reasons ``codes``."""
    proposal = Proposal(
        intent=intent, answer="a", citations=["p"], tool_calls=[REPLY], confidence=confidence
    )
    made = Outcome(
        domain="support",
        request_id=rid,
        workflow_id=f"w-{rid}",
        intent=intent,
        decision=Decision(
            action=action,
            mode=Mode.NORMAL,
            reasons=[Reason(code=c, detail=c) for c in codes],
            tier=0 if action is DecisionAction.APPROVAL else None,
            policy_version=POLICY.version,
        ),
        mode=Mode.NORMAL,
        answer="a",
        citations=["p"],
        proposal=proposal,
        verification=Verification(grounding=grounding, sentences=1),
        freshness=FreshnessReport(index_refreshed_at=NOW, index_age_seconds=1, stale_index=False),
        actions=[],
        reviews=[],
        followup_required=False,
        model=None,
        started_at=finished - timedelta(seconds=2),
        finished_at=finished,
    )
    return made.model_copy(update=changes)


def review(verdict: str, at: datetime = NOW) -> ReviewRecord:
    fields = {"approver": "lead", "verdict": verdict, "reason": "", "tier": 0, "at": at}
    return ReviewRecord.model_validate(fields)


def edit(of: Outcome) -> EditRecord:
    assert of.proposal is not None
    edited = of.proposal.model_copy(update={"answer": "better"})
    return EditRecord(
        approver="lead", reason="r", tier=0, original=of.proposal, edited=edited, at=NOW
    )


def history(
    intent: str,
    n: int,
    *,
    seed: int,
    cut: tuple[float, float],
    good_above: float,
    good_below: float,
    now: datetime = NOW,
    days: float = 20,
    current: tuple[float, float] = (POLICY.min_auto_confidence, POLICY.min_grounding),
) -> tuple[list[Outcome], list[LaterFeedback]]:
    """``n`` outcomes of ``intent`` over ``days`` before ``now``, as the current thresholds
    decided them, with what people did. Confidence is uniform on [0, 1], grounding on
    [0.5, 1]; a proposal is good with probability ``good_above`` at or over ``cut`` (both),
    ``good_below`` elsewhere. One in ten also needed a person for a rule (whatever the
    thresholds), one in twenty-five was refused. A good automatic outcome hears nothing; a bad
    one, a complaint, a reversal or a correction, or its saga was undone. A person approves a
    good one, rejects or edits a bad one."""
    rnd = random.Random(seed)
    outcomes: list[Outcome] = []
    feedback: list[LaterFeedback] = []
    for i in range(n):
        rid = f"{intent[:20]}-{seed}-{i}"
        c, g = round(rnd.random(), 3), round(0.5 + rnd.random() / 2, 3)
        above = c >= cut[0] and g >= cut[1]
        good = rnd.random() < (good_above if above else good_below)
        finished = now - timedelta(days=days * (i + 0.5) / n)
        codes = ["low_confidence"] * (c < current[0]) + ["weak_grounding"] * (g < current[1])
        if i % 25 == 1:
            refused = outcome(rid, intent, c, g, DecisionAction.REJECT, ["rule"], finished=finished)
            outcomes.append(refused)
            continue
        if i % 10 == 0:
            codes.append("amount_above_auto_limit")
        if not codes:
            made = outcome(rid, intent, c, g, DecisionAction.AUTO, ["grounded"], finished=finished)
            if not good and i % 4 == 0:
                undone = ToolResult(tool="send_reply", idempotency_key="k", arguments={}, ok=True)
                made = made.model_copy(update={"compensations": [undone]})
            elif not good:
                kind = ("complaint", "reversal", "correction")[i % 3]
                at = finished + timedelta(hours=1)
                feedback.append(LaterFeedback(request_id=rid, kind=kind, detail="x", at=at))
            outcomes.append(made)
            continue
        made = outcome(rid, intent, c, g, DecisionAction.APPROVAL, codes, finished=finished)
        if good:
            made = made.model_copy(update={"reviews": [review("approve", finished)]})
        elif i % 2:
            made = made.model_copy(update={"reviews": [review("reject", finished)]})
        else:
            changed = {"reviews": [review("approve", finished)], "edits": [edit(made)]}
            made = made.model_copy(update=changed)
        outcomes.append(made)
    return outcomes, feedback


def heard(feedback: Sequence[LaterFeedback]) -> Callable[[str], list[dict[str, Any]]]:
    """Later feedback as the store hands it out: rows by request id."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in feedback:
        rows[item.request_id].append(item.model_dump())
    return lambda rid: rows.get(rid, [])


def fit(report: Calibration, intent: str) -> IntentFit:
    return next(f for f in report.intents if f.intent == intent)


# --- labels ------------------------------------------------------------------------------

OLD = NOW - timedelta(days=10)
BASE = outcome("r", "refund_request", 0.9, 0.9, DecisionAction.AUTO, finished=OLD)
ASKED = outcome("r", "refund_request", 0.4, 0.9, DecisionAction.APPROVAL, ["low_confidence"])
UNDONE = ToolResult(tool="send_reply", idempotency_key="k", arguments={}, ok=True)
LABELS = [
    # (name, outcome, later feedback kinds, label)
    ("acted alone, settled, nothing heard", BASE, [], "good"),
    ("acted alone, too recent to tell", BASE.model_copy(update={"finished_at": NOW}), [], None),
    ("acted alone, confirmed at once", BASE.model_copy(update={"finished_at": NOW}),
     ["confirmation"], "good"),
    ("acted alone, complained about", BASE, ["complaint"], "bad"),
    ("acted alone, reversed", BASE, ["reversal"], "bad"),
    ("acted alone, clawed back", BASE, ["clawback"], "bad"),
    ("acted alone, corrected", BASE, ["correction"], "bad"),
    ("acted alone, its saga undone", BASE.model_copy(update={"compensations": [UNDONE]}), [],
     "bad"),
    ("a person approved it", ASKED.model_copy(update={"reviews": [review("approve")]}), [],
     "good"),
    ("a person rejected it", ASKED.model_copy(update={"reviews": [review("reject")]}), [], "bad"),
    ("a person edited it", ASKED.model_copy(
        update={"reviews": [review("approve")], "edits": [edit(ASKED)]}), [], "bad"),
    ("approved, then complained about", ASKED.model_copy(update={"reviews": [review("approve")]}),
     ["complaint"], "bad"),
    ("nobody decided in time", ASKED.model_copy(update={"reviews": [review("expired")]}), [],
     None),
    ("refused by a rule", outcome("r", "refund_request", 0.9, 0.9, DecisionAction.REJECT,
     ["pack_rule"], finished=OLD), [], None),
]  # fmt: skip


@pytest.mark.parametrize("row", LABELS, ids=[r[0] for r in LABELS])
def test_an_outcome_is_labelled_by_what_people_did(row: tuple[Any, ...]) -> None:
    _, made, kinds, expected = row
    later = [{"kind": k} for k in kinds]
    assert label(made, later, now=NOW, settle=timedelta(hours=72)) == expected


def test_wilson_intervals() -> None:
    """Against published values (Newcombe 1998: 81 of 263, 95%: 0.2553 to 0.3662)."""
    interval = wilson(81, 263, 0.95)
    assert round(interval.low, 4) == 0.2553 and round(interval.high, 4) == 0.3662
    assert wilson(10, 10, 0.95).high == 1.0 and wilson(0, 10, 0.95).low == 0.0
    assert wilson(0, 0, 0.95).low == 0.0 and wilson(0, 0, 0.95).high == 1.0
    # All good, n labelled: the least n that can show 0.98 at 95% is 189.
    assert calibration.needed(0.98, 0.95) == 189
    assert wilson(189, 189, 0.95).low >= 0.98 > wilson(188, 188, 0.95).low


# --- fitting ----------------------------------------------------------------------------

CUT = (0.70, 0.80)


@pytest.fixture(scope="module")
def known() -> tuple[list[Outcome], list[LaterFeedback], Calibration]:
    """8,000 requests of refund_request with a known cut; 3,000 of order_status that are
    good four times in five wherever they fall; 40 of damaged_item."""
    outcomes, feedback = history(
        "refund_request", 8_000, seed=1, cut=CUT, good_above=0.995, good_below=0.6
    )
    flat, flat_feedback = history(
        "order_status", 3_000, seed=2, cut=(0, 0), good_above=0.8, good_below=0.8
    )
    few, few_feedback = history(
        "damaged_item", 40, seed=3, cut=(0, 0), good_above=1.0, good_below=1.0
    )
    every = [*outcomes, *flat, *few]
    said = [*feedback, *flat_feedback, *few_feedback]
    report = calibrate(every, heard(said), POLICY, domain="support", intents=INTENTS,
                       target=0.98, now=NOW)  # fmt: skip
    return every, said, report


def test_the_fitted_thresholds_recover_the_known_cut(known: Any) -> None:
    """The fit finds the cut within a hundredth on each axis. The true precision over the
    fitted thresholds (0.995 there) lies in the interval printed, whose lower end clears the
    target; the true automation rate lies in its interval too."""
    _, _, report = known
    found = fit(report, "refund_request")
    assert found.status == "proposed"
    assert abs(found.thresholds.confidence - CUT[0]) <= 0.01, found.thresholds
    assert abs(found.thresholds.grounding - CUT[1]) <= 0.01, found.thresholds
    assert found.precision is not None
    assert found.precision.low >= 0.98
    assert found.precision.low <= 0.995 <= found.precision.high
    # Automatic: neither refused (1 in 25) nor held for a rule (1 in 10, of the rest), and
    # over both thresholds (confidence uniform on [0, 1], grounding on [0.5, 1]).
    c, g = found.thresholds.confidence, found.thresholds.grounding
    share = (1 - 1 / 25) * (1 - 1 / 10) * (1 - c) * (1 - g) / 0.5
    assert found.automation.low <= share <= found.automation.high
    assert found.above >= 189 and found.labelled > found.above


def test_the_numbers_are_counts_of_the_history(known: Any) -> None:
    """Automation and escalations are what the recorded traffic would have done at the
    thresholds: counted, not modelled."""
    outcomes, _, report = known
    found = fit(report, "refund_request")
    mine = [o for o in outcomes if o.intent == "refund_request"]
    c, g = found.thresholds.confidence, found.thresholds.grounding

    def alone(o: Outcome) -> bool:
        held = set(o.decision.codes()) - {"low_confidence", "weak_grounding"}
        return o.decision.action is DecisionAction.AUTO or (
            o.decision.action is DecisionAction.APPROVAL and not held
        )

    def over(o: Outcome) -> bool:
        assert o.proposal is not None and o.verification is not None
        return o.proposal.confidence >= c and o.verification.grounding >= g

    automatic = [o for o in mine if alone(o) and over(o)]
    refused = [o for o in mine if o.decision.action is DecisionAction.REJECT]
    to_people = len(mine) - len(automatic) - len(refused)
    assert found.traffic == len(mine)
    assert found.automation.estimate == len(automatic) / len(mine)
    assert report.days == pytest.approx(20, abs=0.01)  # from the first outcome to now
    assert found.escalations.estimate == pytest.approx(to_people / report.days)
    assert found.escalations.low <= found.escalations.estimate <= found.escalations.high
    # ... and today: at 0.55 and 0.75 more goes through alone.
    assert found.automation_now > found.automation.estimate
    assert found.escalations_now < found.escalations.estimate


def test_outcomes_the_verifier_read_as_another_intent_are_fitted_under_none(
    known: Any,
) -> None:
    """2,000 bad proposals named refund_request whose requests the verifier read as
    order_status: the gate gave them neither intent's thresholds, so they move neither fit;
    read as refund_request, the same outcomes pull its thresholds up."""
    outcomes, said, report = known

    def rejected(i: int, read_as: str | None) -> Outcome:
        return outcome(
            f"d-{i:04}", "refund_request", 0.95, 0.95, DecisionAction.APPROVAL,
            ["low_confidence"], reviews=[review("reject")],
            verification=Verification(
                grounding=0.95, sentences=1, intent=read_as, intent_read=True
            ),
        )  # fmt: skip

    def again(extra: list[Outcome]) -> Calibration:
        return calibrate([*outcomes, *extra], heard(said), POLICY, domain="support",
                         intents=INTENTS, target=0.98, now=NOW)  # fmt: skip

    disputed = again([rejected(i, "order_status") for i in range(2_000)])
    assert disputed.disputed == 2_000 and report.disputed == 0
    assert disputed.intents == report.intents
    assert disputed.outcomes == report.outcomes + 2_000
    assert "  2,000 outcomes fitted under no intent: the verifier read their request as " in (
        "\n".join(describe(disputed))
    )
    agreed = again([rejected(i, "refund_request") for i in range(2_000)])
    assert agreed.disputed == 0
    assert fit(agreed, "refund_request") != fit(report, "refund_request")
    # Not read (a pack without examples): the gate gave them no intent's thresholds either.
    unread = again([rejected(i, None) for i in range(2_000)])
    assert unread.disputed == 2_000 and unread.intents == report.intents
    # Verified before the verifier read intents (the rest of this history): as named.
    assert all(not o.verification.intent_read for o in outcomes)


def test_an_intent_no_thresholds_can_make_precise_keeps_its_own(known: Any) -> None:
    _, _, report = known
    flat = fit(report, "order_status")
    assert flat.status == "unreachable"
    assert flat.thresholds == flat.current
    assert flat.precision is not None and flat.precision.high < 0.98
    assert "no thresholds reach" in flat.note and "0.98" in flat.note
    few = fit(report, "damaged_item")
    assert few.status == "too_few" and few.thresholds == few.current
    assert "189" in few.note


def test_the_proposal_changes_only_the_fitted_intents(known: Any) -> None:
    _, _, report = known
    policy = POLICY.merged(
        {"intent_thresholds": {"complaint": {"min_grounding": 0.9}}}
    )  # another intent's own thresholds are kept
    proposed = calibration.proposal(policy, report)
    assert proposed is not None
    found = fit(report, "refund_request").thresholds
    assert proposed.intent_thresholds == {
        "complaint": IntentThresholds(min_grounding=0.9),
        "refund_request": IntentThresholds(
            min_auto_confidence=found.confidence, min_grounding=found.grounding
        ),
    }
    assert proposed.version != policy.version and len(proposed.version) <= 64
    assert PACK.policy_problems(proposed) == []
    # The same data, the same proposal: a name from its content.
    assert calibration.proposal(policy, report) == proposed
    # Under the proposal itself, the same fit changes nothing.
    assert calibration.proposal(proposed, report) is None


def test_the_fit_is_a_function_of_the_data(known: Any) -> None:
    outcomes, feedback, report = known
    shuffled = list(reversed(outcomes))
    again = calibrate(shuffled, heard(feedback), POLICY, domain="support", intents=INTENTS,
                      target=0.98, now=NOW)  # fmt: skip
    assert again == report


def test_too_few_labels_are_refused_in_one_line() -> None:
    outcomes, feedback = history(
        "refund_request", 150, seed=4, cut=(0, 0), good_above=1.0, good_below=1.0
    )
    with pytest.raises(TooFewLabels) as refused:
        calibrate(outcomes, heard(feedback), POLICY, domain="support", intents=INTENTS,
                  target=0.98, now=NOW)  # fmt: skip
    message = str(refused.value)
    assert "\n" not in message
    assert "too few labelled outcomes" in message and "189" in message
    with pytest.raises(TooFewLabels, match="0 labelled"):
        calibrate([], heard([]), POLICY, domain="support", intents=INTENTS, target=0.98, now=NOW)
    # A lower target needs fewer: 150 all good show 0.95.
    fitted = calibrate(outcomes, heard(feedback), POLICY, domain="support", intents=INTENTS,
                       target=0.95, now=NOW)  # fmt: skip
    assert fit(fitted, "refund_request").status == "proposed"


@pytest.mark.parametrize("target", [0, 1, 1.5, -0.1, float("nan")])
def test_a_target_outside_0_to_1_is_refused(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        calibrate([], heard([]), POLICY, domain="support", intents=INTENTS, target=target,
                  now=NOW)  # fmt: skip


HOSTILE = "[bold red]x[/]\x1b[2J\u202eevil\r\n\u200b\x00"


def test_hostile_intent_names_are_shown_as_text_and_never_proposed(known: Any) -> None:
    """An intent the pack does not have (a renamed one, or whatever a model wrote) is listed,
    escaped, and gets no thresholds: the pack would refuse a policy that named it."""
    outcomes, feedback, _ = known
    odd = [
        outcome(f"odd-{i}", HOSTILE, 0.9, 0.9, DecisionAction.AUTO, finished=OLD)
        for i in range(300)
    ]
    report = calibrate([*outcomes, *odd], heard(feedback), POLICY, domain="support",
                       intents=INTENTS, target=0.98, now=NOW)  # fmt: skip
    strange = fit(report, HOSTILE)
    assert strange.status == "unknown"
    proposed = calibration.proposal(POLICY, report)
    assert proposed is not None and HOSTILE not in proposed.intent_thresholds
    lines = describe(report)
    text = "\n".join(lines)
    assert all(ch.isprintable() for line in lines for ch in line)
    assert "[bold red]x[/]\\x1b[2J\\u202eevil\\r\\n\\u200b\\x00" in text
    assert "not one of support's intents" in text


def test_a_mass_of_good_outcomes_above_today_does_not_loosen_it() -> None:
    """Good outcomes are easy to come by (an automatic one settles as good): 5,000 of them
    above today's thresholds must not carry the band below, good three times in five, into
    automation. Newly automated outcomes must clear the target on their own."""
    honest, said = history(
        "refund_request",
        4_000,
        seed=7,
        cut=(POLICY.min_auto_confidence, POLICY.min_grounding),
        good_above=0.995,
        good_below=0.6,
    )
    flood = [
        outcome(f"flood-{i}", "refund_request", 0.95, 0.95, DecisionAction.AUTO, finished=OLD)
        for i in range(5_000)
    ]
    report = calibrate([*honest, *flood], heard(said), POLICY, domain="support",
                       intents=INTENTS, target=0.98, now=NOW)  # fmt: skip
    found = fit(report, "refund_request")
    assert found.thresholds.confidence >= POLICY.min_auto_confidence, found
    assert found.thresholds.grounding >= POLICY.min_grounding, found
