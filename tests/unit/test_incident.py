"""The incident timeline without a server: assembly from its sources, sorted by time; mode
switches and fingerprint changes derived from consecutive outcomes; the lines it prints,
whatever the text; --since; the events the store keeps and the worker writes off the call
path. With a real worker and circuit: tests/integration/test_incident.py."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.processes import tether_cli
from tests.unit.test_drift import NOW, outcome
from tether import metrics
from tether.breaker import CircuitBreaker, State
from tether.config import Settings
from tether.contracts import DecisionAction, Mode, Outcome, Reason
from tether.drift import DriftConfig, DriftReport, Metric
from tether.evaluation import BudgetStatus, EvaluationInput, EvaluationReport
from tether.eventlog import EventWriter, watch_circuit
from tether.incident import (
    Event,
    changes,
    circuit_event,
    evaluation_events,
    line,
    moment,
    timeline,
)
from tether.policystore import Activation
from tether.stack import free_port
from tether.store import Store

MIN = timedelta(minutes=1)


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def run(
    minute: float,
    *,
    domain: str = "support",
    mode: Mode = Mode.NORMAL,
    fingerprint: str | None = "fp-1",
) -> Outcome:
    """An outcome finished at NOW + ``minute``; retrieval-only ones had no model answer."""
    o = outcome(int(minute * 10), grounding=0.9, at=at(minute), fingerprint=fingerprint or "x")
    update: dict[str, object] = {"domain": domain, "mode": mode}
    if mode is Mode.RETRIEVAL_ONLY:
        reason = Reason(code="circuit_open", detail="model circuit open")
        update["decision"] = o.decision.model_copy(
            update={"action": DecisionAction.DEGRADED, "reasons": [reason]}
        )
    if fingerprint is None:
        update["model"] = None
    return o.model_copy(update=update)


def circuit(minute: float, old: State, new: State) -> Event:
    return circuit_event(old, new, at=at(minute), source="worker w:1", endpoint="m at host")


def activation(minute: float, domain: str = "support") -> Activation:
    return Activation(
        domain=domain,
        version="v2",
        sha256="0" * 64,
        previous="v1",
        at=at(minute),
        by="ops",
        reason="tighter",
    )


def test_the_sources_become_one_timeline_sorted_by_time() -> None:
    outcomes = [
        run(0),
        run(1, domain="itops"),
        run(2, mode=Mode.RETRIEVAL_ONLY, fingerprint=None),  # the circuit opened at 2
        run(3, mode=Mode.RETRIEVAL_ONLY, fingerprint=None),
        run(5, fingerprint="fp-2"),  # back, on another build of the model
    ]
    recorded = [circuit(4.5, "half_open", "closed"), circuit(2, "closed", "open")]
    events = timeline(
        list(reversed(outcomes)),  # the sources' own sequence does not matter
        since=NOW,
        until=at(10),
        recorded=recorded,
        activations=[activation(0.5)],
    )
    assert [(e.at, e.kind, e.domain) for e in events] == [
        (at(0), "outcome", "support"),
        (at(0.5), "policy_activation", "support"),
        (at(1), "outcome", "itops"),
        (at(2), "circuit", None),  # at one instant: the cause, the switch, then the outcome
        (at(2), "mode_switch", "support"),
        (at(2), "outcome", "support"),
        (at(3), "outcome", "support"),
        (at(4.5), "circuit", None),
        (at(5), "mode_switch", "support"),
        (at(5), "model_fingerprint", "support"),
        (at(5), "outcome", "support"),
    ]
    texts = [e.summary for e in events]
    assert texts[3] == "model circuit closed -> open (m at host)"
    assert texts[4].startswith("mode normal -> retrieval_only (from r-20-")
    assert texts[5].endswith("degraded (retrieval_only): circuit_open, 0 ms")
    assert texts[9].startswith("model fingerprint fp-1 -> fp-2 (m at openai-compatible; from")
    assert texts[1] == "policy v2 activated by ops, replacing v1: tighter"


def test_a_windows_first_outcome_is_compared_with_the_one_before_it() -> None:
    before = [run(-30), run(-20, domain="itops", mode=Mode.READ_ONLY)]
    window = [run(1, mode=Mode.RETRIEVAL_ONLY, fingerprint=None), run(2, domain="itops")]
    events = timeline(window, since=NOW, until=at(10), before=before, kinds={"mode_switch"})
    assert [(e.domain, e.detail["from"], e.detail["to"]) for e in events] == [
        ("support", "normal", "retrieval_only"),
        ("itops", "read_only", "normal"),
    ]
    alone = timeline(window, since=NOW, until=at(10), kinds={"mode_switch"})
    assert alone == []  # nothing to compare the first outcome of each domain with


def test_fingerprints_change_across_outcomes_without_a_model_answer() -> None:
    found = changes(
        [
            run(0),
            run(1, mode=Mode.RETRIEVAL_ONLY, fingerprint=None),
            run(2),  # the same build as before the gap: no change
            run(3, fingerprint="fp-2"),
            run(3.5, domain="itops", fingerprint="fp-9"),  # another domain's: compared apart
            run(4, fingerprint="fp-2"),
        ]
    )
    fingerprints = [
        (e.domain, e.detail["from"], e.detail["to"]) for e in found if e.kind == "model_fingerprint"
    ]
    assert fingerprints == [("support", "fp-1", "fp-2")]
    assert [e.kind for e in found].count("mode_switch") == 2


def test_the_window_kinds_and_domain_choose_what_is_shown() -> None:
    outcomes = [run(0), run(1, domain="itops"), run(2, mode=Mode.RETRIEVAL_ONLY, fingerprint=None)]
    recorded = [circuit(1.5, "closed", "open")]
    activations = [activation(-5)]

    def shown(**choice: Any) -> list[Event]:
        return timeline(outcomes, recorded=recorded, activations=activations, **choice)

    in_window = shown(since=NOW, until=at(2))
    assert [e.at for e in in_window] == [at(0), at(1), at(1.5)]  # [since, until): not 2 or -5
    itops = shown(since=NOW, until=at(10), domain="itops")
    assert [(e.kind, e.domain) for e in itops] == [("outcome", "itops"), ("circuit", None)]
    only = shown(since=NOW, until=at(10), kinds={"circuit", "mode_switch"})
    assert [e.kind for e in only] == ["circuit", "mode_switch"]


HOSTILE = "sup\tport\n2026-01-01T00:00:00.000Z\toutcome\tforged\x1b[31m\r\u2028\u2029\x85\u202e\x00"


def test_hostile_text_stays_on_its_line_and_in_its_column() -> None:
    o = run(0).model_copy(update={"domain": HOSTILE, "request_id": HOSTILE})
    recorded = [
        circuit_event(
            "closed",
            "open",
            at=at(1),
            source="w",
            endpoint=HOSTILE,  # a server's name, say
        ),
        Event(at=at(2), kind="drift", domain=HOSTILE, summary=HOSTILE * 40),
    ]
    events = timeline([o], since=NOW, until=at(5), recorded=recorded)
    lines = [line(e) for e in events]
    assert len(lines) == 3
    for text in lines:
        assert text.splitlines() == [text]  # no line break of any kind
        assert text.count("\t") == 3  # time, kind, domain, summary
        assert "\x1b" not in text and "\u202e" not in text and "\x00" not in text
    time_, kind, domain, _ = lines[0].split("\t")
    assert (time_, kind) == ("2026-11-25T12:00:00.000Z", "outcome")
    assert domain == "sup port 2026-01-01T00:00:00.000Z outcome forged[31m    "
    assert lines[1].split("\t")[2] == "-"  # every domain's
    assert len(lines[2].split("\t")[3]) == 400 and lines[2].endswith("…")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2h", NOW - timedelta(hours=2)),
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - 30 * MIN),
        ("1.5d", NOW - timedelta(hours=36)),
        (" 2h ", NOW - timedelta(hours=2)),
        ("2026-11-25T10:00Z", datetime(2026, 11, 25, 10, tzinfo=UTC)),
        ("2026-11-25T10:00", datetime(2026, 11, 25, 10, tzinfo=UTC)),  # UTC unless it says
        ("2026-11-25T11:00+01:00", datetime(2026, 11, 25, 10, tzinfo=UTC)),
    ],
)
def test_since_takes_a_duration_ago_or_a_time(given: str, expected: datetime) -> None:
    assert moment(given, NOW) == expected


@pytest.mark.parametrize(
    "given", ["soon", "2", "h", "-2h", "0h", "2 hours", "2w", "", "9" * 30 + "d", "\x1b[2J\n2h"]
)
def test_a_bad_since_is_one_line_naming_the_option(given: str) -> None:
    with pytest.raises(ValueError) as refused:
        moment(given, NOW, option="--since")
    message = str(refused.value)
    assert message.startswith(f"--since {given!r}: expected a duration ago")
    assert message.splitlines() == [message] and "\x1b" not in message


def test_an_evaluation_runs_alarms_are_events() -> None:
    budgets = [
        BudgetStatus(
            scorer="grounded", target=0.9, scored=40, good_share=0.7, burn_rate=3.0, fired=True
        ),
        BudgetStatus(
            scorer="policy_compliant",
            target=0.999,
            scored=40,
            good_share=1.0,
            burn_rate=0.0,
            fired=False,
        ),
    ]
    drift = DriftReport(
        baseline_outcomes=300,
        current_outcomes=120,
        metrics=[
            Metric(name="intent", psi=0.41, baseline={"a": 1.0}, current={"b": 1.0}, fired=True),
            Metric(name="mode", psi=0.01, baseline={}, current={}, fired=False),
        ],
        fingerprints_new=["fp-2"],
    )
    report = EvaluationReport(outcomes=120, sampled=40, means={}, budgets=budgets, drift=drift)
    inp = EvaluationInput(domain="support", since_hours=1, drift=DriftConfig(psi_threshold=0.25))
    events = evaluation_events(report, inp, at=NOW, source="evaluation wf/run")
    assert [(e.kind, e.domain, e.source) for e in events] == [
        ("budget_burn", "support", "evaluation wf/run"),
        ("drift", "support", "evaluation wf/run"),
        ("drift", "support", "evaluation wf/run"),
    ]
    assert [e.summary for e in events] == [
        "quality budget grounded burning at 3.0x (good 70.0%, target 90.0%, 40 scored, last 1 h)",
        "drift: intent PSI 0.410 over 0.25 (last 1 h: 120 outcomes against 300)",
        "drift: model fingerprints the baseline never saw: fp-2 (last 1 h)",
    ]
    quiet = report.model_copy(update={"budgets": budgets[1:], "drift": None})
    assert evaluation_events(quiet, inp, at=NOW, source="s") == []


def test_the_store_keeps_events_and_finds_the_outcome_before_a_window(database_url: str) -> None:
    store = Store(database_url)
    store.record_event(circuit(1, "closed", "open"))
    store.record_event(
        Event(at=at(2), kind="drift", domain="itops", summary="d", detail={"psi": 0.4})
    )
    store.replace_events(
        "evaluation a", [Event(at=at(3), kind="budget_burn", domain="support", summary="first try")]
    )
    retried = Event(at=at(4), kind="budget_burn", domain="support", summary="second try")
    store.replace_events("evaluation a", [retried])  # a retried activity: not twice
    everything = store.events_between(NOW, at(10))
    assert [e.summary for e in everything] == [
        "model circuit closed -> open (m at host)",
        "d",
        "second try",
    ]
    assert everything[0] == circuit(1, "closed", "open")  # as it was, detail and zone included
    assert everything[2].source == "evaluation a"
    support = store.events_between(NOW, at(10), domain="support")
    assert [e.kind for e in support] == ["circuit", "budget_burn"]  # the circuit is everyone's
    assert store.events_between(at(1.5), at(4)) == everything[1:2]

    for o in [run(-30), run(-20), run(-25, domain="itops"), run(1)]:
        store.record_outcome(o)
    last = store.latest_before(NOW)
    assert [(o.domain, o.finished_at) for o in last] == [("itops", at(-25)), ("support", at(-20))]
    assert [o.finished_at for o in store.latest_before(NOW, domain="support")] == [at(-20)]
    assert store.latest_before(at(-40)) == []
    store.close()


class Hanging:
    """A store whose writes wait until released, or fail."""

    def __init__(self, *, fail: bool = False) -> None:
        self.release = threading.Event()
        self.fail = fail
        self.written: list[Event] = []

    def record_event(self, event: Event) -> None:
        if self.fail:
            raise RuntimeError("database is locked")
        self.release.wait(10)
        self.written.append(event)


def opened(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failures):
        breaker.before_call()
        breaker.failure()


def test_circuit_moves_are_written_off_the_call_path_and_the_metrics_still_told() -> None:
    store = Hanging()
    writer = EventWriter(store, capacity=2)
    breaker = CircuitBreaker(failures=2, reset_after=0.0)
    told: list[tuple[str, str]] = []
    breaker.listen(lambda old, new: told.append((old, new)))  # as metrics.watch_breaker does
    watch_circuit(breaker, writer, endpoint="m at host")
    started = time.monotonic()
    opened(breaker)  # its write hangs, and the call path does not wait for it
    breaker.before_call()  # half-open
    breaker.success()  # closed: the queue (2) is full by now, this one is dropped and logged
    assert time.monotonic() - started < 1.0
    assert breaker.state == "closed" and told == breaker.transitions
    store.release.set()
    writer.close()
    moves = [(e.detail["from"], e.detail["to"]) for e in store.written]
    assert moves[:2] == [("closed", "open"), ("open", "half_open")]
    assert store.written[0].detail["failures"] == 2 and store.written[0].source.startswith(
        "worker "
    )


def test_a_failing_write_or_listener_is_logged_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Hanging(fail=True)
    writer = EventWriter(store)
    breaker = CircuitBreaker(failures=1, reset_after=60.0)

    def broken(old: State, new: State) -> None:
        raise ValueError("listener bug")

    breaker.listen(broken)
    watch_circuit(breaker, writer)
    with caplog.at_level(logging.ERROR):
        opened(breaker)
        writer.close()
    assert breaker.state == "open"
    assert "listener bug" in caplog.text and "event not recorded: model circuit" in caplog.text


def test_the_metrics_gauge_and_the_event_log_both_hear_the_circuit(tmp_path: Path) -> None:
    runtime = metrics.runtime_for(f"127.0.0.1:{free_port()}")
    assert runtime is not None
    store = Store(f"sqlite:///{tmp_path / 'tether.db'}")
    writer = EventWriter(store)
    breaker = CircuitBreaker(failures=1, reset_after=60.0)
    metrics.watch_breaker(breaker, runtime.metric_meter, "model")
    watch_circuit(breaker, writer)
    opened(breaker)
    writer.close()
    [event] = store.events_between(datetime.now(UTC) - MIN, datetime.now(UTC) + MIN)
    assert event.summary == "model circuit closed -> open" and len(breaker.listeners) == 2
    store.close()


def test_the_command_prints_a_line_per_event_or_json_and_refuses_a_bad_since(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)
    store = Store(settings.resolved_store_url())
    now = datetime.now(UTC)
    for ago, mode in [(50, Mode.NORMAL), (40, Mode.RETRIEVAL_ONLY), (30, Mode.NORMAL)]:
        o = run(0, mode=mode, fingerprint=None if mode is Mode.RETRIEVAL_ONLY else "fp-1")
        finished = now - ago * MIN
        store.record_outcome(
            o.model_copy(
                update={"request_id": f"r-{ago}", "finished_at": finished, "started_at": finished}
            )
        )
    store.record_event(
        circuit_event("closed", "open", at=now - 45 * MIN, source="worker w:1", endpoint=HOSTILE)
    )
    store.record_outcome(run(0).model_copy(update={"finished_at": now - timedelta(hours=3)}))
    # The conservative overlay: on at -35 min by a person (hostile reason), off at -20 min;
    # one switched on and off three hours ago is outside the window.
    old = store.set_overlay("support", None, by="ops", reason="old", at=now - 3 * 60 * MIN)
    assert old is not None
    store.clear_overlay(old.id, by="ops", reason="old", at=now - 170 * MIN)
    on = store.set_overlay("support", "refund", by="ops", reason=HOSTILE, at=now - 35 * MIN)
    assert on is not None
    store.clear_overlay(on.id, by="tether", reason="calm for 1:00:00", at=now - 20 * MIN)
    store.close()

    text = tether_cli(settings, "incident", "--since", "1h")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert [ln.split("\t")[1] for ln in lines] == [
        "outcome",
        "circuit",
        "mode_switch",
        "outcome",
        "overlay",
        "mode_switch",
        "outcome",
        "overlay",
    ]
    on_line, off_line = (ln for ln in lines if "\toverlay\t" in ln)
    assert on_line.split("\t")[2:3] == ["support"]
    assert on_line.split("\t")[3].startswith(
        "conservative overlay on for support/refund (by ops): "
    )
    assert off_line.endswith(
        "conservative overlay off for support/refund (by tether): calm for 1:00:00"
    )
    assert lines == sorted(lines)  # ISO times in UTC: sorted as text too
    assert all(ln.count("\t") == 3 and ln.split("\t")[0].endswith("Z") for ln in lines)

    as_json = tether_cli(settings, "incident", "--since", "1h", "--kind", "circuit", "--json")
    assert as_json.returncode == 0, as_json.stderr
    [document] = as_json.stdout.splitlines()  # one document, on one line
    [event] = json.loads(document)
    assert event["kind"] == "circuit" and event["domain"] is None
    assert event["detail"]["endpoint"] == HOSTILE  # the data as it was, JSON-escaped

    for args, says in [
        (["--since", "\x1b[31msoon"], "--since '\\x1b[31msoon': expected a duration ago"),
        (["--since", "1h", "--until", "2h"], "--since '1h' is not before --until"),
        (["--kind", "outcomes"], "--kind 'outcomes': expected one of policy_activation,"),
    ]:
        refused = tether_cli(settings, "incident", *args)
        assert refused.returncode == 2 and refused.stdout == ""
        assert refused.stderr.splitlines() == [refused.stderr.strip()], refused.stderr
        assert refused.stderr.startswith(says)


def test_a_request_a_person_rejected_reads_as_rejected_not_as_waiting() -> None:
    """The decision stays the one that asked (approval); the person's word is told beside it,
    and an approval (or no review at all) adds nothing."""
    from tests.unit.test_store import outcome
    from tether.audit import settled_by
    from tether.contracts import ReviewRecord
    from tether.incident import outcome_event

    base = outcome("r-9", followup=False)
    at = base.finished_at

    def reviewed(*verdicts: tuple[str, str]) -> Outcome:
        reviews = [
            ReviewRecord(approver="lead@x", verdict=v, reason=why, tier=1, at=at)  # type: ignore[arg-type]
            for v, why in verdicts
        ]
        return base.model_copy(update={"reviews": reviews})

    assert settled_by(base) is None
    assert settled_by(reviewed(("approve", "fine"))) is None
    refused_then_rejected = reviewed(("refused", "unsigned: x"), ("reject", "not eligible"))
    assert settled_by(refused_then_rejected) == "rejected by lead@x: not eligible"
    assert settled_by(reviewed(("expired", ""))) == "no one decided in time"
    summary = outcome_event(refused_then_rejected).summary
    assert "; rejected by lead@x: not eligible, 250 ms" in summary
