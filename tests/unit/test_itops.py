"""The itops pack on its own: its rules table-driven over assets read from its real CMDB
database, its policy checks, and its systems' idempotency over HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.builders import FRESH, NOW, grant, restart, rotate, staffed
from tether.contracts import (
    DecisionAction,
    Evidence,
    Facts,
    Passage,
    Proposal,
    Request,
    ToolCall,
    Verification,
)
from tether.domains.itops import PACK
from tether.domains.itops.rules import ItopsRules
from tether.domains.itops.systems import WRITES, ItopsDB, ItopsServer
from tether.policy import decide

STAFFED = staffed(PACK.policy, PACK.demo_approvers)
NO_FREEZE = STAFFED.merged({"rules": {"freeze_windows": []}})
FROZEN = STAFFED.merged(
    {
        "rules": {
            "freeze_windows": [
                {"name": "drill", "start": "2026-11-25T00:00:00Z", "end": "2026-11-26T00:00:00Z"}
            ]
        }
    }
)


@pytest.fixture(scope="module")
def cmdb(tmp_path_factory: pytest.TempPathFactory) -> ItopsDB:
    return ItopsDB(tmp_path_factory.mktemp("itops") / "itops.sqlite")


@dataclass
class Case:
    name: str
    subject: str
    text: str
    calls: list[ToolCall]
    action: DecisionAction
    codes: set[str]
    tier: str | None = None
    policy: Any = field(default_factory=lambda: NO_FREEZE)
    unread: set[str] = field(default_factory=set)  # named, but not found in the CMDB


CASES = [
    Case(
        "staging restart by the owning team",
        "E-201",
        "Restart svc-checkout on stg-web-01",
        [restart("stg-web-01", "svc-checkout", "E-201")],
        DecisionAction.AUTO,
        {"non_production"},
    ),
    Case(
        "production restart",
        "E-203",
        "Restart svc-search on prod-search-01",
        [restart("prod-search-01", "svc-search", "E-203")],
        DecisionAction.APPROVAL,
        {"production_host"},
        tier="oncall",
    ),
    Case(
        "production restart in a freeze",
        "E-203",
        "Restart svc-search on prod-search-01",
        [restart("prod-search-01", "svc-search", "E-203")],
        DecisionAction.REJECT,
        {"change_freeze"},
        policy=FROZEN,
    ),
    Case(
        "staging restart in a freeze",
        "E-201",
        "Restart svc-checkout on stg-web-01",
        [restart("stg-web-01", "svc-checkout", "E-201")],
        DecisionAction.AUTO,
        {"non_production"},
        policy=FROZEN,
    ),
    Case(
        "another team's service",
        "E-205",
        "Restart svc-checkout on stg-web-01",
        [restart("stg-web-01", "svc-checkout", "E-205")],
        DecisionAction.REJECT,
        {"not_service_owner"},
    ),
    Case(
        "a service that does not run there",
        "E-201",
        "Restart svc-ledger on stg-web-01",
        [restart("stg-web-01", "svc-ledger", "E-201")],
        DecisionAction.REJECT,
        {"service_not_on_host"},
    ),
    Case(
        "an unknown host, by name",
        "E-201",
        "Restart svc-checkout on prod-web-09",
        [],
        DecisionAction.REJECT,
        {"unknown_asset"},
        unread={"prod-web-09"},
    ),
    Case(
        "four hosts at once",
        "E-201",
        "Restart svc-checkout on stg-web-01, prod-web-01, prod-web-02 and stg-search-01",
        [restart("stg-web-01", "svc-checkout", "E-201")],
        DecisionAction.APPROVAL,
        {"bulk_change"},
        tier="change_board",
    ),
    Case(
        "a manager grants their report a low group",
        "E-220",
        "Add E-204 to grp-search-admin",
        [grant("grp-search-admin", "E-204", "E-220")],
        DecisionAction.AUTO,
        {"low_sensitivity_group"},
    ),
    Case(
        "an owner adds themselves",
        "E-203",
        "Add me to grp-search-admin",
        [grant("grp-search-admin", "E-203", "E-203")],
        DecisionAction.AUTO,
        {"low_sensitivity_group"},
    ),
    Case(
        "neither owner nor manager",
        "E-205",
        "Add E-204 to grp-search-admin",
        [grant("grp-search-admin", "E-204", "E-205")],
        DecisionAction.REJECT,
        {"not_owner_or_manager"},
    ),
    Case(
        "a high-sensitivity group, even for its owner",
        "E-210",
        "Add E-201 to grp-payments-pii",
        [grant("grp-payments-pii", "E-201", "E-210")],
        DecisionAction.APPROVAL,
        {"sensitive_group"},
        tier="security",
    ),
    Case(
        "a member leaves a group",
        "E-201",
        "Remove me from grp-payments-read",
        [grant("grp-payments-read", "E-201", "E-201", tool="remove_from_group")],
        DecisionAction.AUTO,
        {"low_sensitivity_group"},
    ),
    Case(
        "a credential rotation, always",
        "E-201",
        "Rotate the credential of svc-checkout on stg-web-01",
        [rotate("stg-web-01", "svc-checkout", "E-201")],
        DecisionAction.APPROVAL,
        {"credential_rotation"},
        tier="security",
    ),
    Case(
        "a write on behalf of someone else",
        "E-201",
        "Restart svc-checkout on stg-web-01",
        [restart("stg-web-01", "svc-checkout", "E-240")],
        DecisionAction.REJECT,
        {"subject_mismatch"},
    ),
]


def run(case: Case, cmdb: ItopsDB, requester: str | None = None) -> Any:
    request = Request(
        request_id="r-1", subject=case.subject, requester=requester or case.subject, text=case.text
    )
    named = PACK.references_of(request)
    context = [
        PACK.context_record(PACK.reference("asset"), ident, data)
        for ident in named.get("asset", [])[:4]
        if (data := cmdb.asset(ident)) is not None
    ]
    assert {i for i in named.get("asset", [])[:4] if cmdb.asset(i) is None} == case.unread
    facts = Facts(
        domain="itops",
        request=request,
        evidence=Evidence(query=case.text, passages=[], freshness=FRESH),
        context=context,
        proposal=Proposal(
            intent="restart_service",
            answer="ok",
            citations=[],
            tool_calls=case.calls,
            confidence=0.9,
        ),
        verification=Verification(grounding=1.0, sentences=1, findings=[]),
    )
    return decide(facts, case.policy, PACK, NOW)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_itops_policy_table(case: Case, cmdb: ItopsDB) -> None:
    decision = run(case, cmdb)
    assert decision.action is case.action, decision.reasons
    assert case.codes <= set(decision.codes()), decision.reasons
    if case.tier is not None:
        assert case.policy.tiers[decision.tier].name == case.tier
    assert all(r.detail for r in decision.reasons)


def test_an_unknown_asset_is_named_in_the_reason(cmdb: ItopsDB) -> None:
    decision = run(next(c for c in CASES if c.unread), cmdb)
    assert any("prod-web-09" in r.detail for r in decision.reasons)


def test_rules_name_real_tiers_and_windows_in_order() -> None:
    assert PACK.policy_problems(PACK.policy) == []
    broken = PACK.policy.merged({"rules": {"bulk_tier": "cab"}})
    assert any("bulk_tier" in p for p in PACK.policy_problems(broken))
    with pytest.raises(ValueError, match="ends before it starts"):
        ItopsRules.model_validate(
            {"freeze_windows": [{"name": "x", "start": NOW, "end": NOW - timedelta(hours=1)}]}
        )
    with pytest.raises(ValueError):
        ItopsRules.model_validate({"max_host": 3})  # misspelt: an error, not a default


def test_the_executor_is_idempotent_and_reads_back(tmp_path: Path) -> None:
    db = ItopsDB(tmp_path / "itops.sqlite")
    changes = ItopsServer(tmp_path / "x", role="changes", db=db).start()
    cmdb = ItopsServer(tmp_path / "x", role="cmdb", db=db).start()
    try:
        body = {"host": "stg-web-01", "service": "svc-cart", "requested_by": "E-201"}
        first = httpx.post(f"{changes.url}/restarts", json=body, headers={"Idempotency-Key": "k1"})
        again = httpx.post(f"{changes.url}/restarts", json=body, headers={"Idempotency-Key": "k1"})
        other = httpx.post(
            f"{changes.url}/restarts",
            json={**body, "service": "svc-checkout"},
            headers={"Idempotency-Key": "k1"},
        )
        assert first.status_code == 201 and again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
        host = httpx.get(f"{cmdb.url}/assets/stg-web-01").json()
        assert next(s for s in host["services"] if s["name"] == "svc-cart")["restarts"] == 1
        busy = httpx.post(
            f"{changes.url}/restarts",
            json={"host": "stg-batch-01", "service": "svc-etl", "requested_by": "E-205"},
            headers={"Idempotency-Key": "k2"},
        )
        assert busy.status_code == 422 and busy.json()["error"] == "service_busy"
        assert httpx.get(f"{changes.url}/idempotency", params={"key": "k2"}).status_code == 404
        # The CMDB is read-only: it offers no write at all.
        assert httpx.post(f"{cmdb.url}/restarts", json=body).status_code in (404, 405)
        assert httpx.get(f"{cmdb.url}/assets/prod-web-09").status_code == 404
    finally:
        changes.stop()
        cmdb.stop()


def _member_facts(text: str, subject: str, member: str) -> Facts:
    request = Request(request_id="r-1", subject=subject, requester=subject, text=text)
    return Facts(
        domain="itops",
        request=request,
        evidence=Evidence(query=text, passages=[], freshness=FRESH),
        proposal=Proposal(
            intent="grant_access",
            answer="ok",
            citations=[],
            tool_calls=[grant("grp-payments-read", member, subject)],
            confidence=0.9,
        ),
    )


@pytest.mark.parametrize(
    ("text", "asked"),
    [
        ("Add E-204 to grp-search-admin", "E-204"),
        ("Please add me to grp-payments-read", "E-201"),
        ("Add me to grp-payments-read, same access as E-202 has.", None),
        ("Add E-202 and E-203 to grp-payments-read", None),
        ("Add grp-payments-read access for my laptop", "E-201"),
        ("I no longer need grp-payments-read, please remove it", "E-201"),
        ("Add me to grp-reports-read", "E-201"),  # a word inside an id is no relation
        ("Add E-201 to grp-payments-read, Grace said it is fine.", "E-201"),  # their own id
        ("I am E-230's deputy this week; add E-201 to grp-data-read.", None),  # which of two?
        # Someone the lookups did not read, or that only a person can tell: never the
        # requester by default (a revocation of their own access cannot be undone).
        ("Remove e-205 from grp-payments-read", None),
        ("Remove E\u2011205 from grp-payments-read", None),  # a non-breaking hyphen
        ("Remove E-\uff12\uff10\uff15 from grp-payments-read", None),  # full-width digits
        ("Remove Eli Park from grp-payments-read, he moved teams", None),
        ("Remove Eli Park from grp-payments-read", None),
        ("Add my report Ben Cole to grp-payments-read", None),
        ("Add our new hire to grp-payments-read", None),
        ("Please remove access to grp-payments-read", None),  # whose?
        # Found in review: another person in sight beside an id, theirs or the requester's.
        ("This is E-201: please remove my contractor from grp-payments-read.", None),
        ("I'm E-201; please add my new hire to grp-payments-read.", None),
        ("Add E-204's manager to grp-payments-read", None),
        ("E-204 has left the team; please add her replacement to grp-payments-read", None),
        ("Please add E-204 and Eli Park to grp-payments-read", None),
        ("Please don't remove E-204 from grp-payments-read.", None),
        ("Add me to grp-payments-read.\nThanks,\nMaria Garcia", None),  # whose name?
        # A second review: one named to stay, a person named by role, a name mid-sentence.
        ("E-202 is staying; remove the other payments engineer from grp-payments-read.", None),
        ("Remove all members of grp-payments-read but E-202.", None),
        ("Grant grp-payments-read access to the guy who took over from E-202.", None),
        ("Please add the auditor E-202 invited to grp-payments-read.", None),
        ("I need Dana in grp-payments-read for the reindex.", None),
        # ... and what names nobody else: a greeting, a heading, a pronoun for the one id.
        ("Please add me to grp-payments-read, I start on Monday", "E-201"),
        ("Hi Team, please add me to grp-payments-read", "E-201"),
        ("Good Morning! Can you add me to grp-payments-read?", "E-201"),
        ("Access Request: add me to grp-payments-read to run the weekly reports", "E-201"),
        ("Add E-204 to grp-payments-read, she joins the payments on-call.", "E-204"),
    ],
)
def test_whom_a_grant_is_for_is_read_from_the_text_or_left_to_a_person(
    text: str, asked: str | None
) -> None:
    from tether.domains.itops.planner import asked_member
    from tether.domains.itops.rules import member_as_asked

    request = Request(request_id="r", subject="E-201", requester="E-201", text=text)
    assert asked_member(request) == asked
    for member in ("E-201", "E-202", "E-204"):
        findings = list(member_as_asked(_member_facts(text, "E-201", member)))
        assert bool(findings) == (member != asked), (member, findings)


@pytest.mark.parametrize(
    "text",
    [
        "Remove e-205 from grp-payments-read",
        "Remove Eli Park from grp-payments-read, he moved teams",
        "Please remove access to grp-payments-read",
    ],
)
def test_a_run_that_met_the_old_reading_replays_it(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """The checks judge an approver's edit inside the workflow: a run recorded before
    itops/strict-reading keeps the reading it met (tether.domain.changed answers False for
    it), where naming nobody else by id meant the requester."""
    from tether.domains.itops import rules

    facts = _member_facts(text, "E-201", "E-201")
    assert [f.code for f in rules.member_as_asked(facts)] == ["member_not_asked"]
    monkeypatch.setattr(rules, "changed", lambda change: change != rules.STRICT_READING)
    assert list(rules.member_as_asked(facts)) == []


def test_what_the_cmdb_says_that_nobody_recognised_is_treated_strictly(cmdb: ItopsDB) -> None:
    odd = Case(
        "an environment nobody knows",
        "E-201",
        "Restart svc-checkout on stg-web-01",
        [restart("stg-web-01", "svc-checkout", "E-201")],
        DecisionAction.APPROVAL,
        {"environment_unknown"},
        tier="oncall",
    )
    real = cmdb.asset
    cmdb.asset = lambda i: {**real(i), "environment": "prod"} if i == "stg-web-01" else real(i)  # type: ignore[method-assign]
    try:
        test_itops_policy_table(odd, cmdb)
    finally:
        del cmdb.asset


def test_a_change_in_someone_elses_name_waits_for_a_person(cmdb: ItopsDB) -> None:
    case = Case(
        "on behalf",
        "E-220",
        "Add E-204 to grp-search-admin",
        [grant("grp-search-admin", "E-204", "E-220")],
        DecisionAction.APPROVAL,
        {"filed_on_behalf"},
        tier="oncall",
    )
    decision = run(case, cmdb, requester="E-201")
    assert decision.action is case.action and "filed_on_behalf" in decision.codes()


def _remove(group: str, member: str) -> Any:
    return WRITES["/memberships/remove"](
        {"group": group, "member": member, "requested_by": member}, "k"
    )


def test_a_restart_of_the_systems_keeps_what_changed(tmp_path: Path) -> None:
    db = ItopsDB(tmp_path / "itops.sqlite")
    db.once(
        "k",
        {"group": "grp-prod-admin", "member": "E-240", "requested_by": "E-240"},
        _remove("grp-prod-admin", "E-240"),
    )
    assert db.asset("grp-prod-admin")["members"] == []  # type: ignore[index]
    assert ItopsDB(tmp_path / "itops.sqlite").asset("grp-prod-admin")["members"] == []  # type: ignore[index]


def test_a_revocation_is_never_undone() -> None:
    assert PACK.tools.get("remove_from_group").compensation is None
    assert PACK.tools.get("add_to_group").compensation is not None


def test_names_in_sql_are_the_schemas_own(tmp_path: Path) -> None:
    from tether.domains.support.business import BusinessDB

    db = ItopsDB(tmp_path / "itops.sqlite")
    assert db.one("people", "employee_id", "E-201") is not None
    for table, column in [("people; DROP TABLE people", "employee_id"), ("people", "x = 1 OR 1")]:
        with pytest.raises(ValueError, match="in this database"):
            db.one(table, column, "E-201")
    with pytest.raises(ValueError):
        db.rows("sqlite_master")
    shop = BusinessDB(tmp_path / "shop.db")
    with pytest.raises(ValueError, match="no record lookup"):
        shop.record("orders; --", "order_id", "ORD-1")
    with pytest.raises(ValueError, match="no table"):
        shop.rows("keys")


@pytest.mark.parametrize(
    ("text", "whole", "loose"),
    [
        ("Add me to grp-search-admin-ro2", [], ["GRP-SEARCH-ADMIN"]),
        ("Add E-204 to grp-prod-admin-2", ["E-204"], ["E-204", "GRP-PROD-ADMIN"]),
        ("restart stg-web-01-blue", [], ["STG-WEB-01"]),
        ("restart stg-web-01.", ["stg-web-01"], ["stg-web-01"]),
        ("(grp-payments-read), thanks", ["grp-payments-read"], ["grp-payments-read"]),
        # Going on past an invisible character or another script's hyphen is going on.
        ("Add me to grp-search-admin\u200b-ro2", [], ["GRP-SEARCH-ADMIN"]),
        ("Add me to grp-search-admin\u2010ro2", [], ["GRP-SEARCH-ADMIN"]),
        ("Add me to grp-search-admin\u00adro2", [], ["GRP-SEARCH-ADMIN"]),
    ],
)
def test_an_id_continued_by_a_hyphen_is_another_id(
    text: str, whole: list[str], loose: list[str]
) -> None:
    """An id that goes on (grp-search-admin-ro2) is not the prefix that exists: the pack must
    not read, plan or decide on grp-search-admin for it. Text that leaves reads loosely: any
    id-shaped part is seen."""
    from tether.domains.itops.rules import ASSETS

    assert ASSETS.find(text) == whole
    assert [i.upper() for i in ASSETS.find(text, loose=True)] == [i.upper() for i in loose]


def test_a_grant_on_the_prefix_of_a_named_group_is_refused(cmdb: ItopsDB) -> None:
    case = Case(
        "a group named past its prefix",
        "E-203",
        "Add me to grp-search-admin-ro2",
        [grant("grp-search-admin", "E-203", "E-203")],
        DecisionAction.REJECT,
        set(),
    )
    decision = run(case, cmdb)
    assert decision.action is DecisionAction.REJECT, decision.reasons
    assert "low_sensitivity_group" not in decision.codes()


def _hosts(cmdb: ItopsDB, *idents: str) -> list[Any]:
    return [
        PACK.context_record(PACK.reference("asset"), ident, data)
        for ident in idents
        if (data := cmdb.asset(ident)) is not None
    ]


@pytest.mark.parametrize(
    ("text", "hosts", "planned"),
    [
        ("Restart svc-checkout on stg-web-01", ["stg-web-01"], ("stg-web-01", "svc-checkout")),
        # A service that runs on none of the hosts read: not the host's other one.
        ("Restart svc-etl on stg-search-01 please", ["stg-search-01"], None),
        # A service on two hosts read: which one is a person's question.
        (
            "Leave prod-search-01 alone; restart svc-search on stg-search-01",
            ["prod-search-01", "stg-search-01"],
            None,
        ),
        # No service named, one host with one service: that one.
        ("stg-search-01 is stuck, restart it", ["stg-search-01"], ("stg-search-01", "svc-search")),
        ("Restart svc-search-ro on stg-search-01", ["stg-search-01"], None),
        # Told not to: neither the service named nor the host's one service.
        (
            "Do not restart svc-search on stg-search-01, we are mid-load-test. Why is it slow?",
            ["stg-search-01"],
            None,
        ),
        (
            "Please don\u2019t restart stg-search-01's svc-search, who owns it?",
            ["stg-search-01"],
            None,
        ),
        (
            "Never restart svc-checkout; restart svc-cart on stg-web-01",
            ["stg-web-01"],
            ("stg-web-01", "svc-cart"),
        ),
        # Found in review: a list after "do not", an aside before the verb.
        (
            "Please do not restart svc-checkout and svc-cart on stg-web-01, we are load testing.",
            ["stg-web-01"],
            None,
        ),
        (
            "Do not, under any circumstances, restart svc-search on stg-search-01.",
            ["stg-search-01"],
            None,
        ),
        ("Restart everything on stg-web-01 except svc-cart", ["stg-web-01"], None),
        # A negation that reports is no instruction.
        (
            "Users can't reach svc-search on stg-search-01, please restart it.",
            ["stg-search-01"],
            ("stg-search-01", "svc-search"),
        ),
    ],
)
def test_the_local_model_plans_the_service_asked_or_none(
    cmdb: ItopsDB, text: str, hosts: list[str], planned: tuple[str, str] | None
) -> None:
    from tether.domains.itops.planner import service_change

    request = Request(request_id="r", subject="E-203", requester="E-203", text=text)
    args = service_change(request, _hosts(cmdb, *hosts), "ok", "restart_service")
    assert (args and (args["host"], args["service"])) == planned or args is planned


@pytest.mark.parametrize(
    ("text", "service", "flagged"),
    [
        ("Restart svc-checkout on stg-web-01", "svc-checkout", False),
        ("Is svc-cart on stg-web-01 healthy? Do not restart svc-checkout", "svc-cart", False),
        ("Is svc-cart on stg-web-01 healthy?", "svc-checkout", True),
        ("stg-web-01 is slow", "svc-checkout", True),  # two services there: a guess
        ("Restart svc-search-ro on stg-web-01", "svc-checkout", True),
        ("svc-checkout on stg-web-01 isn't responding, restart it", "svc-checkout", False),
    ],
)
def test_a_service_the_request_does_not_name_goes_to_a_person(
    cmdb: ItopsDB, text: str, service: str, flagged: bool
) -> None:
    from tether.domains.itops.rules import service_as_asked

    findings = list(service_as_asked(_restart_facts(cmdb, text, service)))
    assert [f.code for f in findings] == (["service_not_asked"] if flagged else []), findings
    assert all(f.severity == "warn" for f in findings)


def _restart_facts(cmdb: ItopsDB, text: str, service: str) -> Facts:
    request = Request(request_id="r", subject="E-201", requester="E-201", text=text)
    return Facts(
        domain="itops",
        request=request,
        evidence=Evidence(query=text, passages=[], freshness=FRESH),
        context=_hosts(cmdb, "stg-web-01"),
        proposal=Proposal(
            intent="restart_service",
            answer="ok",
            citations=[],
            tool_calls=[restart("stg-web-01", service, "E-201")],
            confidence=0.9,
        ),
    )


@pytest.mark.parametrize(
    "text",
    [
        "Do not restart svc-checkout on stg-web-01, we are mid-load-test. Why is it slow?",
        "Please don\u2019t restart svc-checkout on stg-web-01 - just tell me who owns it.",
        "Never restart svc-checkout on stg-web-01 without asking me first; is it healthy?",
        "Restart svc-checkout on stg-web-01. Actually, do not restart svc-checkout.",
        "Please do not restart svc-cart and svc-checkout on stg-web-01, we are load testing.",
        "Do not, under any circumstances, restart svc-checkout on stg-web-01.",
        "Hold off on restarting svc-checkout on stg-web-01 until Friday.",
        "Leave svc-checkout alone and restart svc-cart on stg-web-01.",
        # A second review: asides, the service before what is said of it, an "e.g.".
        "Restart svc-cart on stg-web-01 (do not restart svc-checkout, we are load testing).",
        "Restart svc-cart on stg-web-01 -- do not restart svc-checkout.",
        "Restart svc-cart on stg-web-01, not svc-checkout: that one is load testing.",
        "Restart svc-cart on stg-web-01; svc-checkout must not be restarted.",
        "Restart svc-cart on stg-web-01 without restarting svc-checkout.",
        "Restart only svc-cart on stg-web-01; svc-checkout must stay up.",
        "Under no circumstances restart svc-checkout on stg-web-01.",
        "Do not e.g. restart svc-checkout on stg-web-01.",
    ],
)
def test_a_service_the_request_says_not_to_touch_goes_to_a_person(
    cmdb: ItopsDB, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """A hostile review found "Do not restart svc-checkout ..." restarted on its own: the
    intent reads as a restart, and every mention counted as asking. A run recorded before
    itops/strict-reading keeps the reading it met (an approver's edit is judged in the run)."""
    from tether.domains.itops import rules

    facts = _restart_facts(cmdb, text, "svc-checkout")
    [found] = rules.service_as_asked(facts)
    assert (found.code, found.severity) == ("service_refused", "warn")
    assert found.detail == "restart_service names svc-checkout; the request says not to"
    verified = Verification(grounding=1.0, sentences=1, findings=[found])
    decision = decide(facts.model_copy(update={"verification": verified}), NO_FREEZE, PACK, NOW)
    assert decision.action is DecisionAction.APPROVAL
    assert "verifier:service_refused" in decision.codes()
    monkeypatch.setattr(rules, "changed", lambda change: change != rules.STRICT_READING)
    assert list(rules.service_as_asked(facts)) == []


NOTE = "Restarts of payments-api are done by the on-call SRE."  # a cited runbook's words


@pytest.mark.parametrize(
    ("body", "plan", "claimed"),
    [
        ("You have been added to grp-payments-read.", [], ["add_to_group"]),
        ("Your access has been granted.", [], ["add_to_group"]),
        ("payments-api was restarted at 10:00; it is back up.", [], ["restart_service"]),
        ("The credential was rotated.", [], ["rotate_credential"]),
        ("A change record was opened for it.", [], ["open_change_record"]),
        ("You have been re\u00admoved from grp-payments-read.", [], ["remove_from_group"]),
        ("You have been added to grp-payments-read.", ["grant"], []),
        ("payments-api was restarted.", ["restart"], []),
        (NOTE, [], []),  # copied from the cited source: its word
        ("A person will look at your request.", [], []),
        ("You will be added to grp-payments-read once its owner approves.", [], []),
        # How things are done, what must be, what was not: no claim about this request.
        ("Production credentials are rotated every 90 days by the on-call SRE.", [], []),
        ("If security does not answer in time, the credential is not rotated.", [], []),
        ("A change record must be created before any production change.", [], []),
        ("Members are added to grp-data-read by its owner, the data team.", [], []),
        ("A rotation cannot be undone once the old secret has been revoked.", [], []),
        ("Has payments-api been restarted today?", [], []),
        # A negation or a question in another clause or line hides no claim; a line break
        # does not cut one in two.
        ("Sorry you couldn't log in; we have restarted payments-api.", [], ["restart_service"]),
        (
            "You were not added to grp-payments-read, but we restarted payments-api.",
            [],
            ["restart_service"],
        ),
        ("payments-api was restarted\nAnything else?", [], ["restart_service"]),
        ("You have been added\nto grp-payments-read.", [], ["add_to_group"]),
        # Claims in other shapes, and past a preface (a hostile review, 2026-12-08).
        ("Access granted: you are now a member of grp-payments-read.", [], ["add_to_group"]),
        ("Done - svc-ledger on prod-db-01 restarted.", [], ["restart_service"]),
        ("Restarted svc-ledger on prod-db-01 for you.", [], ["restart_service"]),
        ("The credential for svc-ledger is now rotated.", [], ["rotate_credential"]),
        ("Your access to grp-payments-read is now active.", [], ["add_to_group"]),
        ("E-205 is no longer in grp-payments-read.", [], ["remove_from_group"]),
        ("We've gone ahead and added you to grp-payments-read.", [], ["add_to_group"]),
        ("Never fear: we have added you to grp-payments-read.", [], ["add_to_group"]),
        ("Not to worry - we have restarted svc-ledger on prod-db-01.", [], ["restart_service"]),
        # ... and what is still no claim in those shapes.
        ("If you leave the team you are no longer a member of grp-payments-read.", [], []),
        ("Is E-205 no longer in grp-payments-read?", [], []),
        ("Once its owner approves, you will now have access.", [], []),
        ("Credentials for production are rotated.", [], []),
        ("No: we have not restarted svc-ledger.", [], []),
        # Found in review: what a hedge, a condition or "nothing" makes no claim.
        ("Change record opened: svc-ledger on prod-db-01 will be restarted.", [], []),
        ("To fix it, svc-search should be restarted.", [], []),
        ("It is no longer in a crash loop.", [], []),
        ("Your access request is now on its way to the group owner.", [], []),
        ("Access approved by the group owner lasts 90 days.", [], []),
        ("Don't worry - nothing was restarted.", [], []),
        ("If you leave the team, you are no longer a member of grp-payments-read.", [], []),
        ("We can confirm your access is now active.", [], ["add_to_group"]),
        # Found in a second review: more shapes of the same claims.
        ("svc-checkout on stg-web-01 restarted cleanly.", [], ["restart_service"]),
        ("We have gone ahead and also restarted svc-checkout.", [], ["restart_service"]),
        ("E-201 has been taken out of grp-payments-read.", [], ["remove_from_group"]),
        ("You're in grp-payments-read now.", [], ["add_to_group"]),
        ("Ops bounced svc-checkout on stg-web-01.", [], ["restart_service"]),
        ("Has anyone restarted svc-checkout today?", [], []),
        ("Nobody restarted svc-checkout.", [], []),
        ("We restarted svc-ledger; you can log in again.", [], ["restart_service"]),
    ],
)
def test_a_note_says_only_what_the_plan_does(
    body: str, plan: list[str], claimed: list[str]
) -> None:
    """A note (and the answer) may say a grant, removal, restart, rotation or change record
    was done only when the plan does it."""
    from tether.domains.itops.rules import note_tells_the_truth

    request = Request(request_id="r-1", subject="E-201", requester="E-201", text="help")
    passage = Passage(
        passage_id="runbook#0",
        doc_id="runbook",
        title="Runbook",
        source="kb",
        version=1,
        effective_date=NOW.date(),
        updated_at=NOW,
        fetched_at=NOW,
        content_hash="h",
        text=NOTE,
        score=0.9,
    )
    calls = {
        "grant": grant("grp-payments-read", "E-201", "E-201"),
        "restart": restart("host-pay-01", "payments-api", "E-201"),
    }
    note = ToolCall(tool="notify_requester", arguments={"employee_id": "E-201", "body": body})
    proposal = Proposal(
        intent="grant_access",
        answer=body,
        citations=["runbook#0"],
        tool_calls=[*(calls[p] for p in plan), note],
        confidence=0.9,
    )
    facts = Facts(
        domain="itops",
        request=request,
        evidence=Evidence(query="q", passages=[passage], freshness=FRESH),
        proposal=proposal,
    )
    found = list(note_tells_the_truth(facts))
    assert [f.code for f in found] == ["note_claims_unplanned_action"] * bool(claimed)
    if claimed:
        assert found[0].detail.startswith(f"the note says what only {claimed[0]} would do")
    alone = proposal.model_copy(update={"tool_calls": [calls[p] for p in plan]})
    answer = list(note_tells_the_truth(facts.model_copy(update={"proposal": alone})))
    assert [f.detail.split(" ")[:2] for f in answer] == [["the", "answer"]] * bool(claimed)


@pytest.mark.parametrize(
    ("body", "untouched"),
    [
        ("We have restarted svc-cart and svc-checkout on stg-web-01.", "svc-checkout"),
        ("E-240 has been removed from grp-data-read and grp-prod-admin.", "grp-prod-admin"),
        ("We restarted svc-cart on stg-web-01.", None),
        ("We restarted svc-cart on stg-web-01, not svc-checkout.", None),
        ("We restarted svc-cart on stg-web-01; svc-checkout was left alone.", None),
        ("E-240 has been removed from grp-data-read.", None),
    ],
)
def test_a_note_says_a_planned_action_only_of_what_the_plan_does_it_to(
    body: str, untouched: str | None
) -> None:
    """A second review found a removal from one group told as one from a production-admin
    group as well: a planned tool, said of a service or group the plan does not touch."""
    from tether.domains.itops.rules import note_tells_the_truth

    calls = [
        restart("stg-web-01", "svc-cart", "E-201"),
        grant("grp-data-read", "E-240", "E-201", tool="remove_from_group"),
    ]
    note = ToolCall(tool="notify_requester", arguments={"employee_id": "E-201", "body": body})
    facts = Facts(
        domain="itops",
        request=Request(request_id="r-1", subject="E-201", requester="E-201", text="help"),
        evidence=Evidence(query="q", passages=[], freshness=FRESH),
        proposal=Proposal(
            intent="restart_service",
            answer=body,
            citations=[],
            tool_calls=[*calls, note],
            confidence=0.9,
        ),
    )
    found = [f.detail for f in note_tells_the_truth(facts)]
    assert found == (
        [f"the note says it was done to {untouched}, and the plan does not touch it"]
        if untouched
        else []
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Who restarted svc-checkout on stg-web-01?", "it only asks questions"),
        (
            "svc-checkout on stg-web-01 is slow, would a restart even help?",
            "it only asks questions",
        ),
        ("Restart svc-checkout on stg-web-01 next Friday, not now.", "it asks for later"),
        ("Restart svc-checkout on stg-web-01 only if E-240 approves first.", "it asks for later"),
        ("Cancel my earlier request to restart svc-checkout on stg-web-01.", "it calls"),
        ("I already restarted svc-checkout on stg-web-01 myself.", "it calls"),
        ("Why was E-201 removed from grp-payments-read last week?", "it only asks questions"),
        ("Open a change record for restarting svc-checkout on stg-web-01 next week.", "later"),
        ("Can you restart svc-checkout on stg-web-01?", None),
        ("Restart svc-checkout on stg-web-01 now, we deploy tomorrow.", None),
        ("svc-checkout on stg-web-01 hangs. Please restart it.", None),
    ],
)
def test_a_write_for_a_request_that_asks_for_no_change_now_goes_to_a_person(
    cmdb: ItopsDB, monkeypatch: pytest.MonkeyPatch, text: str, why: str | None
) -> None:
    """A second review found restarts on questions ("Who restarted svc-x?"), calls that were
    called off and ones asked for later, all automatic: the intent reads as a restart, and
    the service is named. The local model plans none; a write another model proposes waits
    for a person. A run recorded before itops/strict-reading keeps the reading it met."""
    from tether.domains.itops import rules
    from tether.domains.itops.planner import service_change

    facts = _restart_facts(cmdb, text, "svc-checkout")
    found = list(rules.change_asked_now(facts))
    if why is None:
        assert found == []
        return
    [finding] = found
    assert (finding.code, finding.severity) == ("change_not_asked_now", "warn")
    assert finding.detail.startswith("restart_service for a request that asks for no change now")
    assert why in finding.detail
    assert service_change(facts.request, facts.context, "ok", "restart_service") is None
    monkeypatch.setattr(rules, "changed", lambda change: change != rules.STRICT_READING)
    assert list(rules.change_asked_now(facts)) == []
