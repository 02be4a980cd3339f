"""The pack registry and the pack contract: packs load by name, refuse to be built wrong, and
a deployment's settings are checked against them before any workflow could start."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tests.conftest import ROOMS
from tether import errors, packs
from tether.activities.tools import ToolActivities
from tether.config import Settings
from tether.contracts import (
    Evidence,
    Facts,
    FreshnessReport,
    Proposal,
    Request,
    ToolCall,
    ToolInvocation,
    Verification,
)
from tether.domain import UNKNOWN_OWNER, SystemSpec
from tether.domains.support import PACK
from tether.errors import ConfigurationError
from tether.policy import decide
from tether.policystore import policy_for
from tether.workers.main import system_urls

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_packs_load_by_entry_point_or_path_and_refuse_what_they_are_not() -> None:
    [support, rooms] = packs.load(["support", ROOMS])
    assert (support.name, rooms.name) == ("support", "rooms")
    assert packs.get("rooms") is rooms
    with pytest.raises(packs.UnknownDomain, match="installed: \\['itops', 'support'\\]"):
        packs.load(["payroll"])
    with pytest.raises(ValueError, match="not a DomainPack"):
        packs.load(["tether.config:Settings"])
    with pytest.raises(ValueError, match="two domain packs are called 'support'"):
        packs.register(dataclasses.replace(PACK, title="an impostor"))


def test_a_pack_that_breaks_its_own_contract_is_refused_when_built() -> None:
    with pytest.raises(ValueError) as err:
        dataclasses.replace(PACK, name="Support!", systems=())
    assert "name 'Support!' must be a lower-case word" in str(err.value)
    assert "tool lookup_order acts on unknown system 'shop'" in str(err.value)
    with pytest.raises(ValueError, match="filler for unknown tool 'wire_money'"):
        dataclasses.replace(PACK, fillers={"wire_money": lambda *a: {}})


def test_a_record_that_does_not_name_its_owner_belongs_to_nobody() -> None:
    """Ownership fails closed: a lookup answer without its owner field cannot be acted on."""
    orders = dataclasses.replace(PACK.reference("order"), describe=None)
    data = {
        "order_id": "ORD-1234",
        "status": "delivered",
        "total_cents": 5_000,
        "refunded_cents": 0,
        "placed_at": "2026-11-01T00:00:00Z",
        "customer_id": None,
    }
    record = PACK.context_record(orders, "ORD-1234", data)
    assert record.owner == UNKNOWN_OWNER
    refund = ToolCall(
        tool="issue_refund", arguments={"order_id": "ORD-1234", "amount_cents": 100, "reason": "r"}
    )
    facts = Facts(
        domain="support",
        request=Request(request_id="r", subject="C-1", requester="C-1", text="ORD-1234 refund"),
        evidence=Evidence(
            query="q",
            passages=[],
            freshness=FreshnessReport(
                index_refreshed_at=NOW, index_age_seconds=1, stale_index=False
            ),
        ),
        context=[record],
        proposal=Proposal(
            intent="refund_request", answer="a", citations=[], tool_calls=[refund], confidence=0.9
        ),
        verification=Verification(grounding=1.0, sentences=1),
    )
    decision = decide(facts, PACK.policy, PACK, NOW)
    assert "not_subjects_record" in decision.codes()


def test_a_deployments_policy_overrides_are_checked_when_a_worker_registers_them() -> None:
    fine = policy_for(PACK, Settings(policies={"support": {"rules": {"auto_limit_cents": 2_500}}}))
    assert fine.rules["auto_limit_cents"] == 2_500
    for overrides, says in [
        ({"rules": {"auto_limit_cent": 1}}, "auto_limit_cent"),  # misspelt: not a silent default
        ({"tiers": [{"name": "chief", "role": "c", "sla": "PT1H"}]}, "names tier 'lead'"),
        ({"min_grounding": "high"}, "min_grounding"),
        ({"rules": None}, "rules"),  # found by hypothesis: was a TypeError
    ]:
        with pytest.raises(ConfigurationError) as err:
            policy_for(PACK, Settings(policies={"support": overrides}))
        assert says in str(err.value), err.value


def test_business_systems_are_each_packs_own() -> None:
    twin = dataclasses.replace(
        PACK, name="twin", systems=(SystemSpec("shop", "http://127.0.0.1:9999"),)
    )
    settings = Settings(systems={"support.shop": "http://shop.internal", "shop": "http://any"})
    assert system_urls(settings, [PACK, twin]) == {
        ("support", "shop"): "http://shop.internal",  # <domain>.<system> first
        ("twin", "shop"): "http://any",  # then the bare name
    }
    assert system_urls(Settings(), [twin]) == {("twin", "shop"): "http://127.0.0.1:9999"}


async def test_a_tool_activity_runs_only_the_call_it_is_named_for() -> None:
    tools = ToolActivities([PACK], {})
    refund_activity = next(
        a
        for a in tools.activities()
        if a.__temporal_activity_definition.name == "support.issue_refund"  # type: ignore[attr-defined]
    )
    smuggled = ToolInvocation(
        domain="support",
        tool="send_reply",
        arguments={"customer_id": "C-1", "body": "hi"},
        idempotency_key="wf/1/send_reply",
        request_id="r",
        granted=["messages:send"],
    )
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(refund_activity, smuggled)
    assert err.value.type == errors.INVALID_TOOL_CALL and err.value.non_retryable
