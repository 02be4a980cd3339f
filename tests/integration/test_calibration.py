"""`tether calibrate` as an operator runs it (a process of its own) against a SQLite store
filled the way workers and feedback fill it (Store.record_outcome, Store.attach_feedback):
the fit is stored as a policy version and never activated; activation is the audited
`tether policy activate`; too few labels are refused in one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tests.processes import tether_cli
from tests.unit.test_calibration import HOSTILE, history
from tether.config import Settings
from tether.contracts import LaterFeedback, Outcome
from tether.domains.support import PACK
from tether.policystore import PolicyStore
from tether.store import Store

CUT = (0.60, 0.80)  # tighter on both: a looser pair must also show its new band (unit tests)


def deployment(tmp_path: Path) -> Settings:
    """A data directory with the support pack's policy registered, as a worker does at start."""
    settings = Settings(data_dir=tmp_path / "data", domains=["support"])
    settings.data_dir.mkdir()
    PolicyStore(settings.resolved_store_url()).register(PACK, settings, by="worker")
    return settings


def record(settings: Settings, *histories: tuple[list[Outcome], list[LaterFeedback]]) -> None:
    store = Store(settings.resolved_store_url())
    for outcomes, feedback in histories:
        for outcome in outcomes:
            store.record_outcome(outcome)
        for item in feedback:
            # As a worker keeps it once it verified its reporter's signature (unit-tested in
            # test_vouched_feedback): unverified feedback labels nothing.
            assert store.attach_feedback(item, datetime.now(UTC), vouched_by="helpdesk")
    store.close()


def test_calibrate_proposes_a_version_and_leaves_activation_to_a_person(tmp_path: Path) -> None:
    settings = deployment(tmp_path)
    now = datetime.now(UTC)
    odd, _ = history("x", 5, seed=9, cut=(0, 0), good_above=1, good_below=1, now=now)
    record(
        settings,
        history("refund_request", 2_500, seed=5, cut=CUT, good_above=0.998, good_below=0.6,
                now=now),
        history("order_status", 600, seed=6, cut=(0, 0), good_above=0.85, good_below=0.85,
                now=now),
        history("damaged_item", 40, seed=7, cut=(0, 0), good_above=1, good_below=1, now=now),
        ([o.model_copy(update={"intent": HOSTILE}) for o in odd], []),
    )  # fmt: skip

    run = tether_cli(settings, "calibrate", "--domain", "support", "--target-precision", "0.98")
    assert run.returncode == 0, run.stderr
    print(run.stdout)  # the output docs/evaluation.md shows
    lines = run.stdout.splitlines()
    proposed = next(line for line in lines if line.startswith("proposed as support policy "))
    version = proposed.split()[4].rstrip(",")
    assert proposed.endswith("not active")
    assert f"activate: tether policy activate {version} --domain support --reason" in run.stdout
    assert any(line.startswith("refund_request: proposed confidence 0.") for line in lines)
    assert any(line.startswith("order_status: kept confidence 0.55, grounding 0.75: no ") for
               line in lines)  # fmt: skip
    assert any(line.startswith("damaged_item: kept ") for line in lines)
    assert "\x1b" not in run.stdout and "\\x1b[2J" in run.stdout  # the hostile name, escaped
    assert "not one of support's intents" in run.stdout

    policies = PolicyStore(settings.resolved_store_url())
    stored = policies.get("support", version)
    active = policies.active("support")
    assert active is not None and active.version == PACK.policy.version  # a proposal only
    assert stored.note.startswith("calibration proposal (tether calibrate): target precision 0.98")
    assert stored.created_by  # whoever ran it
    own = stored.policy.intent_thresholds
    assert set(own) == {"refund_request"}
    fitted = own["refund_request"]
    assert fitted.min_auto_confidence is not None and fitted.min_grounding is not None
    assert abs(fitted.min_auto_confidence - CUT[0]) <= 0.01
    assert abs(fitted.min_grounding - CUT[1]) <= 0.01
    assert stored.policy.model_copy(update={"intent_thresholds": {}, "version": "x"}) == (
        active.policy.model_copy(update={"version": "x"})
    )  # nothing else changed

    again = tether_cli(settings, "calibrate", "--target-precision", "0.98", "--json")
    assert again.returncode == 0, again.stderr
    answer = json.loads(again.stdout)
    assert answer["proposal"] == {
        "version": version,
        "stored": True,
        "new": False,  # the same data proposes the same version
        "sha256": stored.sha256,
        "active": False,
        "activate": f"tether policy activate {version} --domain support --reason '…'",
    }
    fits = {f["intent"]: f for f in answer["calibration"]["intents"]}
    assert fits["refund_request"]["precision"]["low"] >= 0.98
    assert fits["order_status"]["status"] == "unreachable"
    assert fits["damaged_item"]["status"] == "too_few"
    assert fits[HOSTILE]["status"] == "unknown"

    done = tether_cli(
        settings, "policy", "activate", version, "--by", "lead", "--reason", "calibrated"
    )
    assert done.returncode == 0, done.stderr
    log = policies.activations("support")
    assert (log[-1].version, log[-1].by, log[-1].previous) == (version, "lead", PACK.policy.version)
    after = tether_cli(settings, "calibrate", "--target-precision", "0.98")
    assert after.returncode == 0, after.stderr
    assert f"nothing to propose: support policy {version} has these thresholds" in after.stdout
    assert "refund_request: kept confidence 0.6" in after.stdout  # the fit is the current pair
    policies.close()


def test_too_few_labelled_outcomes_are_refused_in_one_line(tmp_path: Path) -> None:
    settings = deployment(tmp_path)
    record(
        settings,
        history("refund_request", 120, seed=8, cut=(0, 0), good_above=1, good_below=1,
                now=datetime.now(UTC)),
    )  # fmt: skip
    run = tether_cli(settings, "calibrate", "--target-precision", "0.98")
    assert run.returncode == 1
    assert run.stdout == ""
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("too few labelled outcomes to calibrate support: ")
    assert "needs at least 189 labelled outcomes of one intent" in line
    policies = PolicyStore(settings.resolved_store_url())
    assert [v.version for v in policies.versions("support")] == [PACK.policy.version]
    policies.close()
    bad = tether_cli(settings, "calibrate", "--target-precision", "1.5")
    assert bad.returncode == 2 and "target precision 1.5" in bad.stderr
