"""`tether report`: outcomes over time as charts, computed from what was recorded."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.test_drift import NOW, outcome
from tether.contracts import DecisionAction
from tether.report import render


def test_the_report_charts_outcomes_over_days() -> None:
    outcomes = []
    for day in range(3):
        for i in range(4):
            o = outcome(day * 10 + i, grounding=0.9 - 0.2 * day, at=NOW + timedelta(days=day))
            if i == 0:  # one in four escalated
                o = o.model_copy(
                    update={
                        "decision": o.decision.model_copy(
                            update={"action": DecisionAction.APPROVAL}
                        )
                    }
                )
            outcomes.append(o)
    scores = {
        o.request_id: {"grounded": 1.0 if o.verification.grounding >= 0.75 else 0.0}
        for o in outcomes
    }  # type: ignore[union-attr]
    html = render(outcomes, scores, generated=NOW)
    assert html.count("<figure>") == 6  # decisions, modes, escalation, quality, latency, scores
    assert "12 outcomes" in html and "9 auto, 3 approval" in html
    assert html.count("<rect") == 3 * 2 + 3  # decisions: 2 kinds a day; modes: 1 a day
    assert "11-25" in html and "11-27" in html  # one bucket per day
    assert "<polyline" in html and "<script" not in html


def test_an_empty_window_says_so() -> None:
    assert "No outcomes" in render([], {}, generated=NOW)
