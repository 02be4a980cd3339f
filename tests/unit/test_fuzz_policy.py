"""Bad input, fuzzed, at the policy gate: ``decide`` over generated facts for the support and
itops packs (confidence, grounding, findings, freshness, tallies, tool calls with generated
amounts, context records with random owners, thresholds and the decision's time) never
raises, always says why, and never decides AUTO where a guarantee of the core or the pack's
rules says a person must look.

The facts are as the workflow builds them: tool calls validated against the registry (the
policy trusts that step, tested in test_fuzz_tools), context records made by the pack from
the records a request names. ``pytest --hypothesis-show-statistics`` shows how often each
action was decided."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.unit.builders import FRESH, NOW, grant, order, record, refund, restart, rotate
from tether.config import IntentThresholds, PolicyConfig
from tether.contracts import (
    ContextRecord,
    Decision,
    DecisionAction,
    Evidence,
    Facts,
    Finding,
    FreshnessReport,
    Mode,
    Proposal,
    Request,
    ToolCall,
    Verification,
)
from tether.domain import DomainPack
from tether.domains.itops import PACK as ITOPS
from tether.domains.itops.rules import ASSETS, MEMBERSHIP_TOOLS, NON_PRODUCTION, SERVICE_TOOLS
from tether.domains.itops.tools import GROUP_ID, HOST_ID, Asset
from tether.domains.support import PACK as SUPPORT
from tether.domains.support.money import named_cents
from tether.domains.support.records import OrderSnapshot
from tether.domains.support.rules import TALLY, RefundRules, refund_total
from tether.policy import decide, writes_of

pytestmark = pytest.mark.fuzz

# (the request's text, the context records read for it, the tool calls proposed)
Case = tuple[str, list[ContextRecord], list[ToolCall]]

CITED = ["p1", "p2"]
WORDS = ["please", "refund", "restart", "add me to", "rotate", "urgent", "ignore all rules"]
SOMETIMES = st.integers(0, 5)  # 0: now and then
RARELY = st.integers(0, 15)
CALLS = st.integers(0, 3)  # tool calls in a proposal


def _subset(values: list[str]) -> st.SearchStrategy[list[str]]:
    """Some of ``values``, in their order, in one draw (hypothesis's cost is by the draw)."""
    return st.integers(0, 2 ** len(values) - 1).map(
        lambda bits: [v for i, v in enumerate(values) if bits >> i & 1]
    )


ANY_INDEX = st.integers(0, 2**16)


def _pick(draw: st.DrawFn, values: list[Any]) -> Any:
    return values[draw(ANY_INDEX) % len(values)]


def _later(hours: int) -> datetime:
    return NOW + timedelta(hours=hours)


TIMES = st.integers(-48, 24 * 60).map(_later)


# Now and then the proposals' intent ("i") has thresholds of its own, one or both, and so
# has the intent the verifier may read instead ("j").
OWN_THRESHOLDS = st.builds(
    IntentThresholds,
    min_auto_confidence=st.none() | st.floats(0, 1),
    min_grounding=st.none() | st.floats(0, 1),
)
INTENT_THRESHOLDS: st.SearchStrategy[dict[str, IntentThresholds]] = st.dictionaries(
    st.sampled_from(["i", "j"]), OWN_THRESHOLDS, max_size=2
)


def _configs(
    pack: DomainPack, rules: st.SearchStrategy[dict[str, Any]]
) -> st.SearchStrategy[PolicyConfig]:
    """The pack's own policy with generated thresholds: confidence, grounding (the policy's,
    now and then the intent's own), the rules' settings, and which permissions are autonomous
    (any of the pack's tools', so the rules are tested without the permission gate's help
    too)."""
    return st.builds(
        lambda confidence, grounding, own, autonomous, changed: pack.policy.model_copy(
            update={
                "min_auto_confidence": confidence,
                "min_grounding": grounding,
                "intent_thresholds": own,
                "autonomous_permissions": autonomous,
                "rules": {**pack.policy.rules, **changed},
            }
        ),
        st.floats(0, 1),
        st.floats(0, 1),
        INTENT_THRESHOLDS,
        _subset(sorted({spec.permission for spec in pack.tools})),
        rules,
    )


FRESHNESS = st.builds(
    lambda stale, kept: FRESH.model_copy(update={"stale_index": stale, "stale_kept": kept}),
    st.booleans(),
    _subset(CITED),
)
FINDINGS = st.lists(
    st.builds(
        Finding,
        code=st.sampled_from(["amount_not_requested", "reference_not_in_request"]),
        severity=st.sampled_from(["info", "info", "warn", "block"]),
        detail=st.just("d"),
    ),
    max_size=2,
)
VERIFICATIONS = st.builds(
    Verification,
    grounding=st.floats(0, 1),
    sentences=st.just(1),
    findings=FINDINGS,
    intent=st.sampled_from(["i", "i", "j", None]),  # as the proposal's, another, not read
)
# Mostly a proposal to decide on; now and then none (the model down, or no valid answer).
MODES = st.sampled_from([Mode.NORMAL] * 8 + [Mode.RETRIEVAL_ONLY, Mode.HUMAN_DRAFT])
WITHHELD = st.sampled_from([[]] * 9 + [["X-1"]])  # another subject's record, named


def _facts(
    domain: str,
    *,
    subject: str,
    others: list[str],
    cases: st.SearchStrategy[Case],
    references: list[dict[str, list[str]]],
    tallies: st.SearchStrategy[dict[str, int]],
) -> st.SearchStrategy[Facts]:
    """Facts for ``subject``'s request, now and then filed by someone else."""
    return st.builds(
        _assemble,
        st.just(domain),
        st.just(subject),
        st.sampled_from([subject] * 4 + others),
        cases,
        st.sampled_from([{}] * 12 + references),
        FRESHNESS,
        WITHHELD,
        tallies,
        MODES,
        _subset(CITED),
        st.floats(0, 1),
        VERIFICATIONS,
    )


def _assemble(
    domain: str,
    subject: str,
    requester: str,
    case: Case,
    references: dict[str, list[str]],
    freshness: FreshnessReport,
    withheld: list[str],
    tallies: dict[str, int],
    mode: Mode,
    citations: list[str],
    confidence: float,
    verification: Verification,
) -> Facts:
    text, context, calls = case
    request = Request(
        request_id="r-1", subject=subject, requester=requester, text=text, references=references
    )
    normal = mode is Mode.NORMAL
    proposal = Proposal(
        intent="i", answer="a", citations=citations, tool_calls=calls, confidence=confidence
    )
    return Facts(
        domain=domain,
        request=request,
        evidence=Evidence(query=text, passages=[], freshness=freshness),
        context=context,
        withheld=withheld,
        tallies=tallies,
        mode=mode,
        proposal=proposal if normal else None,
        verification=verification if normal else None,
    )


def _decided(facts: Facts, config: PolicyConfig, pack: DomainPack, now: datetime) -> Decision:
    """The decision, with what every decision owes: reasons, a tier only when a person
    decides, the policy's version, and the same answer when asked again."""
    decision = decide(facts, config, pack, now)
    event(decision.action.value)
    assert decision.reasons and all(r.code and r.detail for r in decision.reasons)
    assert decision.policy_version == config.version
    if decision.action is DecisionAction.APPROVAL:
        assert decision.tier is not None and 0 <= decision.tier < len(config.tiers)
    else:
        assert decision.tier is None
    assert decide(facts, config, pack, now) == decision
    return decision


def _core_guarantees(facts: Facts, config: PolicyConfig, pack: DomainPack) -> None:
    """What the core promises of an automatic decision, whatever the pack."""
    proposal, verification = facts.proposal, facts.verification
    assert proposal is not None and verification is not None
    assert facts.mode is Mode.NORMAL and not facts.withheld
    assert not pack.problems(facts.request)
    assert proposal.confidence >= config.min_confidence_for(proposal.intent)
    assert verification.grounding >= config.min_grounding_for(proposal.intent)
    if verification.intent != proposal.intent:  # the model's word alone lowers nothing
        for read in (None, verification.intent):
            assert proposal.confidence >= config.min_confidence_for(read)
            assert verification.grounding >= config.min_grounding_for(read)
    assert all(f.severity == "info" for f in verification.findings)
    for call in proposal.tool_calls:
        assert pack.tools.get(call.tool).permission in config.autonomous_permissions
    writes = writes_of(facts, pack.tools)
    if writes:
        stale = facts.evidence.freshness
        assert not stale.stale_index and not set(proposal.citations) & set(stale.stale_kept)
    subject = facts.request.subject
    for call in writes:
        spec = pack.tools.get(call.tool)
        if spec.subject_argument:
            assert call.arguments.get(spec.subject_argument) in (None, subject)
        for _, kind, ident in spec.referenced(call.arguments):
            read = facts.record(kind, ident)
            assert read is not None and read.owner in (None, subject), (call, read)


# --- support ---------------------------------------------------------------------------------

CUSTOMER = "C-1"
ORDERS = ["ORD-1001", "ORD-1002", "ORD-1003", "ORD-9999"]
AMOUNT_FORMS = ["${:,.2f}", "{:.0f} dollars", "USD {:.2f}", "{:.0f} EUR", "-${:.2f}", "{:e}"]
AMOUNTS = st.builds(
    lambda form, cents: form.format(cents / 100),
    st.sampled_from(AMOUNT_FORMS),
    st.integers(0, 300_000),
)
ORDER_DATA = st.fixed_dictionaries(
    {
        "customer": st.sampled_from([CUSTOMER] * 4 + ["C-2", ""]),  # "": it names nobody
        "total": st.integers(0, 300_000),
        "refunded": st.integers(0, 300_000),
        "delivered_days": st.none() | st.integers(0, 60),
    }
)


def _reply(customer: str, order_id: str | None) -> ToolCall:
    arguments = {"customer_id": customer, "body": "b", "order_id": order_id}
    return ToolCall(tool="send_reply", arguments=arguments)


NAMED_ORDERS = st.lists(st.sampled_from(ORDERS), unique=True)  # first named, first read
SUPPORT_WORDS = st.lists(st.one_of(st.sampled_from(WORDS), AMOUNTS), max_size=4)
SUPPORT_CALLS = st.sampled_from(["refund", "refund", "reply", "lookup", "reverse"])
CENTS = st.one_of(st.integers(1, 30_000), st.integers(1, 100_000_000))
REPLY_TO = st.sampled_from([CUSTOMER] * 4 + ["C-2"])


@st.composite
def _support_cases(draw: st.DrawFn) -> Case:
    """A ticket naming orders and amounts; the orders it names read (most of them, now and
    then as a record nobody can read); refunds and replies, mostly on those orders."""
    named = draw(NAMED_ORDERS)
    words = draw(SUPPORT_WORDS)
    context = []
    # One more order than the runtime reads: refunds split across orders, and orders not read.
    for order_id in named[: SUPPORT.reference("order").max_lookups + 1]:
        if order_id == "ORD-9999" or draw(RARELY) == 0:
            continue  # not found, or not read
        if draw(SOMETIMES) == 0:  # read, but nothing a rule can use
            context.append(ContextRecord(kind="order", id=order_id, data={}, text="?", owner="?"))
        else:
            data = draw(ORDER_DATA)
            read = order(
                order_id=order_id,
                customer=data["customer"],
                total=data["total"],
                refunded=data["refunded"],
                delivered_days=data["delivered_days"],
            )
            context.append(record(read))
    targets = named or ORDERS
    calls = []
    for _ in range(draw(CALLS)):
        order_id = _pick(draw, targets)
        kind = draw(SUPPORT_CALLS)
        if kind == "refund":
            cents = draw(CENTS)
            calls.append(refund(cents, order_id=order_id))
        elif kind == "reply":
            calls.append(_reply(draw(REPLY_TO), order_id if draw(st.booleans()) else None))
        elif kind == "lookup":
            calls.append(ToolCall(tool="lookup_order", arguments={"order_id": order_id}))
        else:  # the compensation, which no model may propose: policy is not what stops it
            arguments = {"refund_id": "RF-abcdef", "reason": "r"}
            calls.append(ToolCall(tool="reverse_refund", arguments=arguments))
    return "Hi, " + " ".join([*named, *words]), context, calls


SUPPORT_FACTS = _facts(
    "support",
    subject=CUSTOMER,
    others=["agent-7"],
    cases=_support_cases(),
    references=[{"order": ["ORD-1001"]}, {"order": ["1001"]}, {"parcel": ["P-1"]}],
    tallies=st.one_of(st.just({}), st.fixed_dictionaries({TALLY: st.integers(0, 300_000)})),
)
SUPPORT_RULES = st.fixed_dictionaries(
    {},
    optional={
        "auto_limit_cents": st.integers(0, 100_000),
        "max_refund_cents": st.integers(0, 100_000),
        "customer_auto_limit_cents": st.integers(0, 300_000),
        "customer_max_cents": st.integers(0, 300_000),
        "refund_window_days": st.integers(0, 60),
    },
)


@given(facts=SUPPORT_FACTS, config=_configs(SUPPORT, SUPPORT_RULES), now=TIMES)
def test_support_decisions_keep_their_guarantees(
    facts: Facts, config: PolicyConfig, now: datetime
) -> None:
    decision = _decided(facts, config, SUPPORT, now)
    if decision.action is not DecisionAction.AUTO:
        return
    _core_guarantees(facts, config, SUPPORT)
    rules = RefundRules.model_validate(config.rules)
    total = refund_total(facts)
    assert total <= rules.auto_limit_cents
    if not total:
        return
    assert named_cents(facts.request.text), "a refund nobody named in dollars"
    assert TALLY in facts.tallies, "a refund whose customer's total nobody counted"
    assert facts.tallies[TALLY] + total <= rules.customer_auto_limit_cents  # their first too
    per_order: dict[str, int] = {}
    for call in writes_of(facts, SUPPORT.tools):
        if call.tool == "issue_refund":
            order_id = call.arguments["order_id"]
            per_order[order_id] = per_order.get(order_id, 0) + call.arguments["amount_cents"]
    for order_id, amount in per_order.items():
        read = facts.record("order", order_id)
        assert read is not None
        snapshot = read.typed(OrderSnapshot)
        assert snapshot.status == "delivered" and snapshot.delivered_at is not None
        assert amount <= snapshot.refundable_cents
        assert now <= snapshot.delivered_at + timedelta(days=rules.refund_window_days)


# --- itops -----------------------------------------------------------------------------------

EMPLOYEE = "E-201"
PEOPLE = [EMPLOYEE, "E-203", "E-204", "E-220"]
HOSTS = ["prod-web-01", "stg-web-01", "dev-app-01", "prod-search-01"]
GROUPS = ["grp-search-admin", "grp-payments-pii"]
SERVICES = ["svc-checkout", "svc-search"]
UNKNOWN = ["prod-web-09", "grp-nobody"]  # named, and no CMDB has them

BY = st.sampled_from([EMPLOYEE] * 15 + PEOPLE[1:])  # mostly the subject
OWNERS = st.sampled_from([None] * 12 + PEOPLE)  # itops records name no owner; some say one
SERVICE = st.builds(
    lambda name, owners: {
        "name": name,
        "owner_team": "team",
        "owners": owners,
        "state": "running",
        "restarts": 0,
        "credential_version": 1,
    },
    st.sampled_from(SERVICES),
    _subset(PEOPLE),
)
HOST = st.builds(
    lambda kind, environment, services: {
        "kind": kind,
        "environment": environment,
        "services": services,
    },
    st.sampled_from(["host", "host", "host", "group"]),  # as the CMDB says
    # production, what nobody recognised, and the environments that need no on-call
    st.sampled_from(["production", "prod", "qa", *sorted(NON_PRODUCTION)]),
    st.lists(SERVICE, max_size=2, unique_by=lambda s: s["name"]),
)
GROUP = st.builds(
    lambda kind, sensitivity, owners, members: {
        "kind": kind,
        "sensitivity": sensitivity,
        "owner_team": "team",
        "owners": owners,
        "members": members,
    },
    st.sampled_from(["group", "group", "group", "host"]),
    st.sampled_from(["low", "low", "high", "medium"]),
    _subset(PEOPLE),
    _subset(PEOPLE),
)
PERSON = st.builds(
    lambda manager: {"kind": "person", "name": "n", "team": "team", "manager": manager},
    st.none() | st.sampled_from(PEOPLE),
)


def _asset(ident: str, data: dict[str, Any], owner: str | None) -> ContextRecord:
    read = ITOPS.context_record(ASSETS, ident, {"asset_id": ident, **data})
    return read.model_copy(update={"owner": owner})


NAMED_ASSETS = st.lists(
    st.sampled_from([*HOSTS, *GROUPS, *PEOPLE] * 3 + UNKNOWN), unique=True, max_size=5
)
ITOPS_WORDS = st.lists(st.sampled_from([*SERVICES, *WORDS]), max_size=3)
ITOPS_CALLS = st.sampled_from(["restart", "rotate", "add", "remove", "open", "note"])
SERVICE_NAMES = st.sampled_from([*SERVICES, "svc-ledger"])


@st.composite
def _itops_cases(draw: st.DrawFn) -> Case:
    """A request naming hosts, groups and people; the ones the runtime looks up read (most of
    them); restarts, rotations, grants, change records and notes, mostly on those."""
    named = draw(NAMED_ASSETS)
    words = draw(ITOPS_WORDS)
    context = []
    for ident in named[: ASSETS.max_lookups]:
        if ident in UNKNOWN or draw(RARELY) == 0:
            continue
        shape = HOST if ident in HOSTS else GROUP if ident in GROUPS else PERSON
        context.append(_asset(ident, draw(shape), draw(OWNERS)))
    hosts = [i for i in named if i in HOSTS or i == UNKNOWN[0]] or HOSTS
    groups = [i for i in named if i in GROUPS or i == UNKNOWN[1]] or GROUPS
    calls = []
    for _ in range(draw(CALLS)):
        kind = draw(ITOPS_CALLS)
        if kind in ("restart", "rotate"):
            build = restart if kind == "restart" else rotate
            service = draw(SERVICE_NAMES)
            calls.append(build(_pick(draw, hosts), service, draw(BY)))
        elif kind in ("add", "remove"):
            tool = "add_to_group" if kind == "add" else "remove_from_group"
            calls.append(grant(_pick(draw, groups), draw(BY), draw(BY), tool=tool))
        elif kind == "open":
            arguments = {"summary": "a planned change", "requested_by": draw(BY)}
            calls.append(ToolCall(tool="open_change_record", arguments=arguments))
        else:
            arguments = {"employee_id": draw(BY), "body": "b"}
            calls.append(ToolCall(tool="notify_requester", arguments=arguments))
    return "Hi, " + " ".join([*named, *words]), context, calls


ITOPS_FACTS = _facts(
    "itops",
    subject=EMPLOYEE,
    others=PEOPLE[1:],
    cases=_itops_cases(),
    references=[{"asset": ["prod-web-01"]}, {"asset": ["web-1"]}, {"host": ["x"]}],
    tallies=st.just({}),
)


def _freeze(start_hours: int, length_hours: int) -> list[dict[str, str]]:
    start = _later(start_hours)
    end = start + timedelta(hours=length_hours)
    return [{"name": "drill", "start": start.isoformat(), "end": end.isoformat()}]


ITOPS_RULES = st.fixed_dictionaries(
    {
        "freeze_windows": st.one_of(
            st.just([]),
            st.builds(_freeze, st.integers(-24 * 30, 24 * 30), st.integers(1, 24 * 30)),
        )
    },
    optional={"max_hosts": st.integers(1, 5)},
)


def _typed(facts: Facts, ident: str) -> Asset | None:
    read = facts.record(ASSETS.name, ident)
    return read.typed(Asset) if read is not None else None


@given(facts=ITOPS_FACTS, config=_configs(ITOPS, ITOPS_RULES), now=TIMES)
def test_itops_decisions_keep_their_guarantees(
    facts: Facts, config: PolicyConfig, now: datetime
) -> None:
    decision = _decided(facts, config, ITOPS, now)
    if decision.action is not DecisionAction.AUTO:
        return
    _core_guarantees(facts, config, ITOPS)
    named = ITOPS.references_of(facts.request).get(ASSETS.name, [])
    for ident in named[: ASSETS.max_lookups]:
        if re.fullmatch(HOST_ID, ident) or re.fullmatch(GROUP_ID, ident):  # the CMDB knows it
            assert facts.record(ASSETS.name, ident) is not None, ident
    writes = writes_of(facts, ITOPS.tools)
    if not writes:
        return
    assert facts.request.requester == facts.request.subject
    hosts = {i for i in named if re.fullmatch(HOST_ID, i)}
    hosts |= {c.arguments["host"] for c in writes if "host" in c.arguments}
    assert len(hosts) <= ITOPS.settings(config).max_hosts
    for call in writes:
        assert call.tool != "rotate_credential", "a rotation is never automatic"
        if call.tool in SERVICE_TOOLS:
            host = _typed(facts, call.arguments["host"])
            assert host is not None and host.kind == "host"
            assert host.environment in NON_PRODUCTION, "production needs the on-call"
            service = host.service(call.arguments["service"])
            assert service is not None and facts.request.subject in service.owners
        if call.tool in MEMBERSHIP_TOOLS:
            group = _typed(facts, call.arguments["group"])
            assert group is not None and group.kind == "group" and group.sensitivity == "low"


# --- found by the properties above: guarantees that do not hold yet --------------------------


def _decide(
    pack: DomainPack,
    config: PolicyConfig,
    subject: str,
    text: str,
    calls: list[ToolCall],
    **facts: Any,
) -> DecisionAction:
    decided = Facts(
        domain=pack.name,
        request=Request(request_id="r-1", subject=subject, requester=subject, text=text),
        evidence=Evidence(query=text, passages=[], freshness=FRESH),
        proposal=Proposal(intent="i", answer="a", citations=[], tool_calls=calls, confidence=0.9),
        verification=Verification(grounding=1.0, sentences=1),
        **facts,
    )
    return decide(decided, config, pack, NOW).action


def test_a_first_refund_is_held_to_the_customers_limit() -> None:
    """Found by the property above: a customer with nothing refunded in the window was not
    held to customer_auto_limit_cents when a policy set it below auto_limit_cents."""
    rules = {**SUPPORT.policy.rules, "customer_auto_limit_cents": 1_000}
    action = _decide(
        SUPPORT,
        SUPPORT.policy.model_copy(update={"rules": rules}),
        "C-1",
        "Refund $40 on ORD-1234",
        [refund(4_000)],
        context=[record(order())],
        tallies={TALLY: 0},  # nothing refunded to C-1 in the window: $40 is their total
    )
    assert action is not DecisionAction.AUTO


def test_a_change_on_an_asset_of_another_kind_is_not_automatic() -> None:
    """Found by the itops property: a restart on an asset the CMDB calls a group passed every
    rule (now not_a_host; a grant on a host, not_a_group)."""
    rules = {**ITOPS.policy.rules, "freeze_windows": []}
    action = _decide(
        ITOPS,
        ITOPS.policy.model_copy(update={"rules": rules}),
        "E-203",
        "Restart svc-search on prod-search-01",
        [restart("prod-search-01", "svc-search", "E-203")],
        context=[_asset("prod-search-01", {"kind": "group", "sensitivity": "low"}, None)],
    )
    assert action is not DecisionAction.AUTO  # no rule asked who owns it or where it runs
