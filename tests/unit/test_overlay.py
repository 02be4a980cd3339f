"""Self-protection: the conservative overlay never loosens a decision (a property over any
decision); budgets burn over a fast and a slow window; fast burns pick the narrowest clean
scope; the runtime's switches have hysteresis (on, stays, off after the recovery window, no
flapping, no all-clear without data); the store keeps one overlay on per scope (SQLite and
PostgreSQL); `tether overlay clear` keeps hostile text as written or refuses it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from temporalio.testing import ActivityEnvironment
from typer.testing import CliRunner

from tests.unit.hostile import texts
from tests.unit.test_drift import NOW, outcome
from tests.unit.webhook import webhook
from tether import metrics
from tether.activities.policy import PinRequest, PolicyActivities
from tether.activities.records import RecordActivities
from tether.capacity import parse
from tether.cli.apps import app
from tether.cli.output import kept_text
from tether.config import Settings
from tether.contracts import Decision, DecisionAction, Mode, Reason
from tether.domains.support import PACK
from tether.evaluation import Budget, EvaluationConfig, EvaluationInput, burn, evaluate
from tether.overlay import CODE, TETHER, Overlay, apply, governing, unreadable
from tether.policystore import PolicyStore
from tether.protection import Plan, Scored, plan, targets
from tether.stack import free_port
from tether.store import Store

# --- apply: never looser ----------------------------------------------------------------

STRICTNESS = {
    DecisionAction.AUTO: 0,
    DecisionAction.APPROVAL: 1,
    DecisionAction.REJECT: 2,
    DecisionAction.DEGRADED: 2,
}
REASONS = st.lists(
    st.builds(Reason, code=st.sampled_from(["grounded", "low_confidence", "x"]), detail=texts()),
    max_size=3,
)
DECISIONS = st.builds(
    Decision,
    action=st.sampled_from(list(DecisionAction)),
    mode=st.sampled_from(list(Mode)),
    reasons=REASONS,
    tier=st.none() | st.integers(0, 3),
    policy_version=st.just("p/1"),
    permissions=st.lists(st.sampled_from(["messages:send", "records:write"]), max_size=2),
)
OVERLAYS = st.none() | st.builds(
    Overlay,
    id=st.integers(0, 10),
    domain=st.just("support"),
    intent=st.none() | st.just("order_status"),
    set_at=st.just(NOW),
    set_by=st.sampled_from([TETHER, "ops"]),
    reason=texts(max_size=2_000),
)


@given(DECISIONS, OVERLAYS, st.booleans(), st.booleans())
def test_the_overlay_never_loosens_a_decision(
    decision: Decision, overlay: Overlay | None, writes: bool, approvable: bool
) -> None:
    after = apply(decision, overlay, writes=writes, approvable=approvable)
    assert STRICTNESS[after.action] >= STRICTNESS[decision.action]
    assert after.permissions == decision.permissions  # it grants nothing
    assert after.policy_version == decision.policy_version  # and is no policy version
    assert apply(after, overlay, writes=writes, approvable=approvable) == after  # once is all
    if decision.action is not DecisionAction.AUTO or overlay is None or not writes:
        assert after == decision  # approvals keep their tier, rejects and degraded stay
        return
    assert after.reasons[0].code == CODE and len(after.reasons[0].detail) <= 1_000
    assert after.mode is Mode.READ_ONLY
    if approvable:
        assert (after.action, after.tier) == (DecisionAction.APPROVAL, 0)
        assert after.reasons[1:] == decision.reasons  # what made it automatic, kept
    else:
        assert after.action is DecisionAction.REJECT
        assert after.codes() == [CODE, "no_approver"]


def test_an_answer_that_writes_nothing_stays_automatic() -> None:
    auto = Decision(action=DecisionAction.AUTO, mode=Mode.NORMAL, reasons=[], policy_version="p")
    on = unreadable("support", None, NOW, "store down")
    assert apply(auto, on, writes=False) == auto
    held = apply(auto, on, writes=True)
    assert held.action is DecisionAction.APPROVAL and "could not be read" in held.reasons[0].detail


# --- fast and slow burn ----------------------------------------------------------------


def test_old_budgets_keep_their_rate_as_the_slow_one() -> None:
    old = Budget.model_validate({"target": 0.9, "alert_burn_rate": 3})
    assert (old.slow_burn_rate, old.fast_burn_rate) == (3, None)
    both = Budget.model_validate({"target": 0.9, "alert_burn_rate": 3, "slow_burn_rate": 4})
    assert both.slow_burn_rate == 4  # the new name wins
    # The fast default: 14.4, or half the short window bad where a target cannot reach it.
    assert Budget(target=0.9).fast_threshold == 5.0  # a 90% target burns at most 10x
    assert Budget(target=0.95).fast_threshold == 10.0
    assert Budget(target=0.999).fast_threshold == 14.4
    assert Budget(target=0.9, fast_burn_rate=3).fast_threshold == 3
    config = EvaluationConfig.model_validate(
        {"budgets": {"grounded": {"target": 0.9, "alert_burn_rate": 1.5}}}
    )
    assert config.budgets["grounded"].slow_burn_rate == 1.5


CONFIG = EvaluationConfig(sample_rate=1.0, budgets={"grounded": Budget(target=0.9)})
GOOD, BAD = {"grounded": 1.0}, {"grounded": 0.0}


def test_a_budget_says_which_window_fired() -> None:
    # A day at 25% bad (slow: 2.5x > 2), its last hour fine: the slow alert only.
    [slow] = burn([GOOD] * 75 + [BAD] * 25, CONFIG, [GOOD] * 10)
    assert (slow.fired, slow.slow_fired, slow.fast_fired) == (True, True, False)
    assert slow.fast_burn_rate == 0.0 and slow.fast_scored == 10
    # The last hour 80% bad (8x > 5) in an otherwise good day (1.6x): the fast alert only.
    [fast] = burn([GOOD] * 92 + [BAD] * 8, CONFIG, [GOOD] * 2 + [BAD] * 8)
    assert (fast.fired, fast.slow_fired, fast.fast_fired) == (True, False, True)
    assert (fast.fast_burn_rate, fast.fast_threshold) == (8.0, 5.0)
    # Four bad answers are not a trend: fewer than fast_min_scored fire nothing fast.
    [few] = burn([BAD] * 4, CONFIG.model_copy(update={"slow_burn_rate": 100}), [BAD] * 4)
    assert few.fast_burn_rate == 10.0 and not few.fast_fired


def test_the_run_judges_its_last_part_fast() -> None:
    day = [outcome(i, grounding=0.9, at=NOW - timedelta(hours=3, minutes=i)) for i in range(40)]
    hour = [outcome(i, grounding=0.2, at=NOW - timedelta(minutes=i)) for i in range(6)]
    _, report = evaluate(day + hour, lambda _: [], CONFIG, now=NOW)
    [grounded] = report.budgets
    assert (grounded.scored, grounded.fast_scored) == (46, 6)
    assert grounded.fast_fired and not grounded.slow_fired  # 6 of 46 bad: 1.3x over the day
    assert report.fast_since == NOW - timedelta(hours=1) and report.until == NOW
    _, whole = evaluate(hour, lambda _: [], CONFIG, now=NOW)
    assert whole.fast_since == min(o.finished_at for o in hour)  # clipped to the window


# --- the scope a fast burn switches ---------------------------------------------------


def rows(
    n: int, score: dict[str, float], intent: str | None, domain: str = "support"
) -> list[Scored]:
    return [(domain, intent, score)] * n


def scopes(recent: list[Scored], config: EvaluationConfig = CONFIG) -> list[tuple[str, str | None]]:
    found = targets(recent, config, since=NOW - timedelta(hours=1), until=NOW)
    return [(t.domain, t.intent) for t in found]


def test_bad_scores_on_one_intent_switch_that_intent_when_the_rest_is_clean() -> None:
    status = rows(8, BAD, "order_status")
    assert scopes(status + rows(12, GOOD, "shipping")) == [("support", "order_status")]
    # The domain burns too (8 of 14 bad), yet the rest is measured and clean: still narrow.
    assert scopes(status + rows(1, GOOD, "shipping") + rows(5, GOOD, "returns")) == [
        ("support", "order_status")
    ]


def test_the_whole_domain_when_the_rest_says_too_little_or_burns_too() -> None:
    assert scopes(rows(8, BAD, "order_status") + rows(2, GOOD, "shipping")) == [("support", None)]
    spread = [(d, i, s) for d, i, s in rows(4, BAD, "a") + rows(4, BAD, "b") + rows(1, GOOD, "c")]
    assert scopes(spread) == [("support", None)]  # no intent burns alone: the domain does
    assert scopes(rows(9, BAD, None)) == [("support", None)]  # no proposal, no intent
    found = targets(rows(6, BAD, "a"), CONFIG, since=NOW - timedelta(hours=1), until=NOW)
    [target] = found
    assert target.intent is None and target.evidence.budgets[0].burn_rate == 10.0
    assert "grounded burning at 10x (fast rate 5x" in target.reason


def test_domains_are_judged_apart() -> None:
    mixed = rows(6, BAD, "a", "support") + rows(30, GOOD, "x", "itops")
    assert scopes(mixed) == [("support", None)]  # itops' good answers do not dilute it


# --- hysteresis ------------------------------------------------------------------------

RECOVERY = EvaluationConfig(
    sample_rate=1.0, budgets={"grounded": Budget(target=0.9)}, overlay_recovery=timedelta(hours=1)
)


class Switches:
    """The store's part, in memory: what an evaluation run does with each plan."""

    def __init__(self, config: EvaluationConfig = RECOVERY) -> None:
        self.all: list[Overlay] = []
        self.config = config

    @property
    def on(self) -> list[Overlay]:
        return [o for o in self.all if o.active]

    def run(self, recent: list[Scored], at: datetime) -> Plan:
        done = plan(self.on, recent, self.config, since=at - timedelta(hours=1), until=at)
        for n, o in enumerate(self.all):
            if o.id in done.burning:
                self.all[n] = o.model_copy(update={"last_burning_at": at})
            if o.id in {c.id for c in done.switch_off}:
                self.all[n] = o.model_copy(update={"cleared_at": at, "cleared_by": TETHER})
        for t in done.switch_on:
            self.all.append(
                Overlay(
                    id=len(self.all) + 1,
                    domain=t.domain,
                    intent=t.intent,
                    set_at=at,
                    set_by=TETHER,
                    reason=t.reason,
                    evidence=t.evidence,
                    last_burning_at=at,
                )
            )
        return done


BURNING, CALM = rows(10, BAD, "a"), rows(10, GOOD, "a")


def test_on_in_one_run_then_off_only_after_the_recovery_window() -> None:
    s = Switches()
    first = s.run(BURNING, NOW)
    assert [(t.domain, t.intent) for t in first.switch_on] == [("support", None)]
    assert s.run(BURNING, NOW + timedelta(minutes=10)).switch_on == []  # never set twice
    assert [o.last_burning_at for o in s.on] == [NOW + timedelta(minutes=10)]
    for minutes in (20, 40, 69):  # calm, but not for an hour since it last burned
        assert s.run(CALM, NOW + timedelta(minutes=minutes)).switch_off == []
        assert len(s.on) == 1
    off = s.run(CALM, NOW + timedelta(minutes=70))
    assert [c.id for c in off.switch_off] == [1] and s.on == []
    assert "below the fast rate for 1:00:00" in off.switch_off[0].reason


def test_a_burn_that_comes_and_goes_keeps_it_on_without_flapping() -> None:
    s = Switches()
    s.run(BURNING, NOW)
    at = NOW
    for _ in range(6):  # burning every other run for three hours
        at += timedelta(minutes=30)
        assert s.run(CALM, at).switch_off == []
        at += timedelta(minutes=30)
        assert s.run(BURNING, at).switch_on == []
    assert len(s.all) == 1 and len(s.on) == 1  # one switch, on the whole time
    assert s.run(CALM, at + timedelta(minutes=61)).switch_off
    assert s.run(BURNING, at + timedelta(minutes=62)).switch_on  # a new burn: a new switch
    assert len(s.all) == 2


def test_no_data_is_no_all_clear_and_a_persons_overlay_waits_for_a_person() -> None:
    s = Switches()
    s.run(BURNING, NOW)
    assert s.run([], NOW + timedelta(hours=5)).switch_off == []  # no scores: stays
    assert s.run(rows(3, GOOD, "a"), NOW + timedelta(hours=5)).switch_off == []  # too few
    s.all.append(
        Overlay(id=9, domain="support", intent="b", set_at=NOW, set_by="ops", reason="incident")
    )
    done = s.run(rows(10, GOOD, "a") + rows(10, GOOD, "b"), NOW + timedelta(hours=6))
    assert [c.id for c in done.switch_off] == [1]  # the runtime's; the person's stays
    assert [o.id for o in s.on] == [9]


def test_a_budget_over_its_rate_on_a_few_scores_holds_the_all_clear() -> None:
    two = RECOVERY.model_copy(
        update={"budgets": {**RECOVERY.budgets, "policy_compliant": Budget(target=0.999)}}
    )
    s = Switches(two)
    s.run(BURNING, NOW)
    breach = {"grounded": 1.0, "policy_compliant": 0.0}
    held = s.run(CALM + rows(2, breach, "a"), NOW + timedelta(hours=5))
    assert held.switch_off == [] and held.burning == []  # grounded calm, a breach on two
    assert s.run(CALM, NOW + timedelta(hours=6)).switch_off


def test_a_domain_overlay_narrows_when_the_burn_settles_on_one_intent() -> None:
    s = Switches()
    s.run(BURNING, NOW)  # intent "a" only, but the rest too thin: the whole domain
    later = NOW + timedelta(hours=2)
    done = s.run(rows(6, BAD, "a") + rows(30, GOOD, "b"), later)
    assert [c.id for c in done.switch_off] == [1]  # the domain is below the rate (6 of 36)
    assert [(t.domain, t.intent) for t in done.switch_on] == [("support", "a")]


# --- the store -------------------------------------------------------------------------


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    made = Store(database_url)
    yield made
    made.close()


def test_one_overlay_on_per_scope_and_the_record_kept(store: Store) -> None:
    s = Switches()
    target = s.run(BURNING, NOW).switch_on[0]
    made = store.set_overlay(
        "support", None, by=TETHER, reason=target.reason, at=NOW, evidence=target.evidence
    )
    assert made is not None and made.evidence == target.evidence and made.last_burning_at == NOW
    assert store.set_overlay("support", None, by=TETHER, reason="again", at=NOW) is None
    mine = store.set_overlay("support", "a", by="ops", reason="incident 7", at=NOW)
    assert mine is not None and mine.evidence is None
    assert store.overlay_for("support", "a") == made  # the whole domain's first
    assert store.overlay_for("support", "b") == made and store.overlay_for("itops", "a") is None
    store.overlays_burning([made.id], NOW + timedelta(minutes=5))
    cleared = store.clear_overlay(made.id, by="ops", reason="fixed", at=NOW + timedelta(hours=1))
    assert cleared is not None and not cleared.active and cleared.cleared_by == "ops"
    assert cleared.last_burning_at == NOW + timedelta(minutes=5)
    assert store.clear_overlay(made.id, by="ops", reason="twice", at=NOW) is None
    assert store.overlay_for("support", "a") == mine
    assert [o.id for o in store.overlays("support")] == [mine.id]
    assert [o.id for o in store.overlays(active=False)] == [made.id, mine.id]
    since = store.overlays(active=False, cleared_since=NOW + timedelta(hours=2))
    assert [o.id for o in since] == [mine.id]  # on, or cleared since then
    again = store.set_overlay("support", None, by=TETHER, reason="burning again", at=NOW)
    assert again is not None and again.id != made.id  # a cleared scope can switch on again


def test_the_domains_overlay_governs_before_an_intents_own() -> None:
    def on(id: int, domain: str, intent: str | None, cleared: bool = False) -> Overlay:
        return Overlay(
            id=id,
            domain=domain,
            intent=intent,
            set_at=NOW,
            set_by="ops",
            reason="r",
            cleared_at=NOW if cleared else None,
        )

    whole, refunds = on(1, "support", None), on(2, "support", "refund")
    gone = on(3, "support", "a", cleared=True)
    assert governing([refunds, whole], "support", "refund") == whole
    assert governing([refunds], "support", "refund") == refunds
    assert governing([refunds], "support", "order_status") is None
    assert governing([refunds], "support", None) is None  # no intent: the domain's alone
    assert governing([gone], "support", "a") is None
    assert governing([whole], "itops", "refund") is None


def test_a_live_pin_carries_the_overlays_on_and_never_fails_for_them(
    store: Store, database_url: str
) -> None:
    """The decision takes its overlay from the pin (no second read) while the pin is fresh:
    the pin reads the domain's overlays on. A pin of a named version reads none, and a pin
    whose overlays cannot be read says so with None (the decision then reads them itself)."""
    policies = PolicyStore(database_url)
    version = policies.register(PACK, Settings(), by="test").version
    made = store.set_overlay("support", "refund", by="ops", reason="incident 9", at=NOW)
    assert made is not None
    env = ActivityEnvironment()
    pin = PolicyActivities(policies, overlays=store.overlays).pin_policy
    assert env.run(pin, PinRequest(domain="support")).overlays == [made]
    assert env.run(pin, PinRequest(domain="support", version=version)).overlays is None

    def unreadable_store(domain: str) -> list[Overlay]:
        raise OSError("disk gone")

    broken = PolicyActivities(policies, overlays=unreadable_store).pin_policy
    pinned = env.run(broken, PinRequest(domain="support"))
    assert pinned.overlays is None and pinned.version == version
    unasked = PolicyActivities(policies).pin_policy  # a shadow worker's: no overlays
    assert env.run(unasked, PinRequest(domain="support")).overlays is None
    policies.close()


def test_a_live_pin_says_when_its_request_was_resolved_already(
    store: Store, database_url: str
) -> None:
    """A run started again under a resolved request's id learns it from its pin (and refuses
    to act, tests/integration/test_hostile.py); a pin of a named version, or one for a
    request with no outcome, carries None."""
    policies = PolicyStore(database_url)
    version = policies.register(PACK, Settings(), by="test").version
    done = outcome(1, grounding=0.9)
    store.record_outcome(done)
    env = ActivityEnvironment()
    pin = PolicyActivities(policies, resolved=store.resolved_at).pin_policy
    asked = PinRequest(domain="support", request_id=done.request_id)
    assert env.run(pin, asked).resolved_at == NOW
    for other in (
        PinRequest(domain="support", request_id="r-new"),
        PinRequest(domain="support"),
        PinRequest(domain="support", version=version),
    ):
        assert env.run(pin, other).resolved_at is None
    unasked = PolicyActivities(policies).pin_policy  # a shadow worker's: it reads none
    assert env.run(unasked, asked).resolved_at is None
    policies.close()


def test_simultaneous_switches_of_one_scope_make_one_overlay(store: Store) -> None:
    """Two evaluation runs (a retry, a second schedule) or a run and a person at once: the
    unique index on the active scope lets one in, the others learn it is on already."""
    barrier = threading.Barrier(6)
    made: list[Overlay | None] = []

    def switch(n: int) -> None:
        barrier.wait()
        made.append(store.set_overlay("support", "a", by=f"run {n}", reason="burn", at=NOW))

    threads = [threading.Thread(target=switch, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [won] = [o for o in made if o is not None]
    assert len(made) == 6 and [o.id for o in store.overlays("support")] == [won.id]


# --- the evaluation activity: switch, alert, count -------------------------------------


def test_the_evaluation_run_switches_alerts_and_counts(tmp_path: Path) -> None:
    with webhook() as (url, received):
        address = f"127.0.0.1:{free_port()}"
        runtime = metrics.runtime_for(address)
        assert runtime is not None
        env = ActivityEnvironment()
        env.metric_meter = runtime.metric_meter

        def gauge(name: str, **labels: str) -> float:
            found = parse(httpx.get(f"http://{address}/metrics", timeout=5).text)
            return sum(
                x.value
                for x in found
                if x.name == name and all(x.labels.get(k) == v for k, v in labels.items())
            )

        store = Store(f"sqlite:///{tmp_path / 'records.db'}")
        now = datetime.now(UTC)
        for i in range(6):  # ungrounded, 40 minutes ago
            store.record_outcome(outcome(i, grounding=0.2, at=now - timedelta(minutes=40)))
        records = RecordActivities(store)
        config = EvaluationConfig(sample_rate=1.0, overlay_recovery=timedelta(0))
        inp = EvaluationInput(
            domain="support",
            since_hours=1,
            config=config,
            webhook=url,
        )
        [on] = env.run(records.evaluate_recent, inp).overlays
        assert on.on and on.overlay.scope == "support"
        assert received == [{"alert": "overlay", **on.model_dump(mode="json")}]
        assert gauge(metrics.OVERLAY_ACTIVE, domain="support", intent="*") == 1
        assert gauge(metrics.OVERLAY_SWITCHES, domain="support", to="on") == 1
        assert env.run(records.evaluate_recent, inp).overlays == []  # a retry: on already
        assert len(received) == 1 and len(store.overlays(active=False)) == 1

        for i in range(6):  # grounded, now: the last 10 minutes are calm
            store.record_outcome(outcome(100 + i, grounding=0.9, at=now))
        calm = inp.model_copy(
            update={"config": config.model_copy(update={"fast_window": timedelta(minutes=10)})}
        )
        [off] = env.run(records.evaluate_recent, calm).overlays
        assert not off.on and off.overlay.cleared_by == TETHER
        assert received[-1]["on"] is False
        assert gauge(metrics.OVERLAY_ACTIVE, domain="support", intent="*") == 0
        assert gauge(metrics.OVERLAY_SWITCHES, domain="support", to="off") == 1
        # The fast window's burn is exported beside the run's own, by window.
        assert gauge("tether_quality_burn_rate", scorer="grounded", window="1h") == 5.0
        assert gauge("tether_quality_burn_rate", scorer="grounded", window="0.166667h") == 0.0
        store.close()


# --- the command line --------------------------------------------------------------------


def overlay_command(url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {"TETHER_STORE_URL": url, "TETHER_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(app, ["overlay", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


HOSTILE = [
    "[/red][bold]cleared[/bold] by [link=http://x]admin[/link]",
    "'); DROP TABLE tether_overlays; --",
    "multi\nline\treason with 👍 and ẞ and \u0663",
    "x" * 2_000,
]
REFUSED = [
    ("", "say why"),
    ("   ", "say why"),
    ("x" * 2_001, "at most 2000"),
    ("looks fine\u202e", "U+202E"),  # a direction override: what a terminal shows is not it
    ("bell\x07", "U+0007"),
    ("lone \ud800 surrogate", "U+D800"),
]


def test_clear_keeps_hostile_text_as_written_or_refuses_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'records.db'}"
    store = Store(url)
    for reason, says in REFUSED:
        store.set_overlay("support", None, by=TETHER, reason="burn", at=NOW)
        code, out, err = overlay_command(
            url, tmp_path, "clear", "--domain", "support", "--by", "ops", "--reason", reason
        )
        assert (code, out) == (2, "") and says in err, (reason, err)
        assert store.overlay_for("support", None) is not None  # nothing changed
    for by, says in [("tether", "name yourself"), ("Tether", "name yourself"), ("o\nps", "U+000A")]:
        code, _, err = overlay_command(
            url, tmp_path, "clear", "--domain", "support", "--by", by, "--reason", "r"
        )
        assert code == 2 and says in err
    for reason in HOSTILE:
        code, out, err = overlay_command(
            url, tmp_path, "clear", "--domain", "support", "--by", "ops@example", "--reason",
            reason, "--json",
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["clear_reason"] == reason.strip()
        [kept] = store.overlays(active=False)[-1:]
        assert kept.clear_reason == reason.strip() and kept.cleared_by == "ops@example"
        store.set_overlay("support", None, by=TETHER, reason="burn", at=NOW)
    code, out, _ = overlay_command(url, tmp_path, "status", "--all")
    assert code == 1  # one is on
    assert HOSTILE[0] in out  # as written: no markup read from it
    assert "DROP TABLE" in out and store.overlays(active=False)  # the table is there
    code, _, err = overlay_command(
        url, tmp_path, "clear", "--domain", "itops", "--by", "ops", "--reason", "r"
    )
    assert code == 1 and "no overlay on" in err
    code, _, err = overlay_command(
        url, tmp_path, "clear", "--domain", "../x", "--by", "ops", "--reason", "r"
    )
    assert code == 2 and "not a domain name" in err
    store.close()


@given(texts(max_size=60, encodable=False))
def test_reason_text_is_kept_stripped_or_refused(text: str) -> None:
    try:
        kept = kept_text("--reason", text, 2_000, lines=True)
    except typer.Exit as refused:
        assert refused.exit_code == 2
        return
    assert kept == text.strip() and kept
    kept.encode("utf-8")  # every accepted reason can be stored
