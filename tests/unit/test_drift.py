"""Drift: a window of outcomes against a baseline, by PSI, with a model fingerprint change as
an event of its own; outcomes read back from the store by window (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.webhook import webhook
from tether.contracts import (
    Decision,
    DecisionAction,
    FreshnessReport,
    Mode,
    ModelIdentity,
    Outcome,
    Proposal,
    Verification,
)
from tether.drift import DriftConfig, alert, detect, psi, shares
from tether.store import Store

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def outcome(
    i: int,
    *,
    grounding: float,
    confidence: float = 0.8,
    intent: str = "order_status",
    fingerprint: str = "fp-1",
    at: datetime = NOW,
) -> Outcome:
    return Outcome(
        domain="support",
        request_id=f"r-{i}-{fingerprint}-{at.timestamp()}",
        workflow_id=f"resolution-r-{i}",
        intent=intent,
        decision=Decision(
            action=DecisionAction.AUTO, mode=Mode.NORMAL, reasons=[], policy_version="p"
        ),
        mode=Mode.NORMAL,
        answer="a",
        citations=[],
        proposal=Proposal(intent=intent, answer="a", citations=[], confidence=confidence),
        verification=Verification(grounding=grounding, sentences=1),
        freshness=FreshnessReport(index_refreshed_at=at, index_age_seconds=1, stale_index=False),
        actions=[],
        reviews=[],
        followup_required=False,
        model=ModelIdentity(provider="openai-compatible", model="m", fingerprint=fingerprint),
        top_score=0.7,
        started_at=at,
        finished_at=at,
    )


def traffic(
    n: int, *, grounding: tuple[float, float], fingerprint: str = "fp-1", seed: int = 1
) -> list[Outcome]:
    rng = random.Random(seed)
    intents = ["order_status", "refund_request", "shipping_question"]
    return [
        outcome(
            i, grounding=rng.uniform(*grounding), intent=intents[i % 3], fingerprint=fingerprint
        )
        for i in range(n)
    ]


def test_psi_is_zero_for_the_same_mix_and_grows_with_the_shift() -> None:
    base = shares(["a"] * 50 + ["b"] * 50)
    assert psi(base, base) == 0
    assert psi(base, shares(["a"] * 60 + ["b"] * 40)) < 0.1
    assert psi(base, shares(["a"] * 95 + ["b"] * 5)) > 0.25
    assert psi(base, shares(["c"] * 100)) > 1  # a category the baseline never had


def test_a_stable_window_fires_nothing() -> None:
    report = detect(
        traffic(200, grounding=(0.85, 1.0), seed=1),
        traffic(200, grounding=(0.85, 1.0), seed=2),
        DriftConfig(),
    )
    assert report.fired == [] and not report.insufficient


def test_worse_grounding_and_a_new_fingerprint_fire() -> None:
    """The injected regression: a candidate that grounds worse, served by a new model build."""
    report = detect(
        traffic(200, grounding=(0.85, 1.0)),
        traffic(200, grounding=(0.4, 0.75), fingerprint="fp-2"),
        DriftConfig(),
    )
    assert report.fired == ["grounding", "model_fingerprint"]
    assert report.fingerprints_new == ["fp-2"]
    grounding = next(m for m in report.metrics if m.name == "grounding")
    assert grounding.psi > 1


def test_too_few_outcomes_say_nothing_but_a_new_fingerprint_still_does() -> None:
    report = detect(
        traffic(10, grounding=(0.9, 1.0)),
        traffic(10, grounding=(0.1, 0.2), fingerprint="fp-9"),
        DriftConfig(),
    )
    assert report.insufficient and report.metrics == [] and report.fired == ["model_fingerprint"]


def test_the_store_returns_outcomes_by_window(database_url: str) -> None:
    store = Store(database_url)
    try:
        for hours in (30, 10, 1):
            store.record_outcome(outcome(hours, grounding=0.9, at=NOW - timedelta(hours=hours)))
        window = store.outcomes_between(NOW - timedelta(hours=24), NOW)
        assert [o.workflow_id for o in window] == ["resolution-r-10", "resolution-r-1"]
    finally:
        store.close()


def test_a_fired_signal_reaches_the_log_and_the_webhook(caplog: pytest.LogCaptureFixture) -> None:
    report = detect(
        traffic(100, grounding=(0.85, 1.0)),
        traffic(100, grounding=(0.4, 0.75), fingerprint="fp-2"),
        DriftConfig(),
    )
    with webhook() as (url, received), caplog.at_level(logging.WARNING, logger="tether.drift"):
        alert(report, url)
    assert "drift: grounding shifted" in caplog.text
    assert received and received[0]["fingerprints_new"] == ["fp-2"]
