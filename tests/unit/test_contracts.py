"""Contracts: requests refused with clear errors; model output validated against the registry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.unit.builders import GOOD, proposal
from tether.client import parse_request
from tether.contracts import Request
from tether.domains.support import INTENTS, PACK
from tether.domains.support.tools import REGISTRY
from tether.errors import InvalidRequest
from tether.tools import ProposalInvalid


def test_a_good_request_parses_and_the_pack_finds_its_records() -> None:
    request = parse_request(GOOD, PACK)
    assert PACK.references_of(request) == {"order": ["ORD-1001"]}
    orders = PACK.reference("order")
    assert orders.find("ord-12345 and ORD-12345, then ORD-2222") == ["ORD-12345", "ORD-2222"]
    given = parse_request({**GOOD, "references": {"order": "ord-2222"}}, PACK)
    assert given.references == {"order": ["ord-2222"]}
    assert PACK.references_of(given) == {"order": ["ORD-2222", "ORD-1001"]}  # given ones first
    [(kind, ident)] = PACK.lookups(given)  # one order is read as context
    assert (kind.name, ident) == ("order", "ORD-2222")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"request_id": "has spaces"}, "request_id: String should match pattern"),
        ({"text": "  "}, "text: String should have at least 3 characters"),
        ({"text": "x" * 4001}, "text: String should have at most 4000 characters"),
        ({"references": {"order": "1001"}}, "references.order: ['1001'] do not match"),
        ({"references": {"parcel": "P-1"}}, "references.parcel: not a kind of record here"),
        ({"references": {"Order!": "x"}}, "references: Value error, 'Order!' is not a reference"),
        ({"subject": "C 1"}, "subject: String should match pattern"),
        ({"channel": "fax"}, "channel: Input should be 'email', 'chat' or 'api'"),
        ({"priority": "high"}, "priority: Extra inputs are not permitted"),
    ],
)
def test_bad_requests_name_the_field(change: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_request({**GOOD, **change}, PACK)
    assert message in str(err.value)


def test_valid_output_passes_with_typed_arguments() -> None:
    parsed = REGISTRY.validate_proposal(proposal(), intents=INTENTS)
    assert parsed.tool_calls[0].arguments == {
        "order_id": "ORD-1001",
        "amount_cents": 4000,
        "reason": "r",
    }


@pytest.mark.parametrize("amount", ["4000", 4000.0, True])
def test_money_is_never_coerced(amount: object) -> None:
    call = {
        "tool": "issue_refund",
        "arguments": {"order_id": "ORD-1001", "amount_cents": amount, "reason": "r"},
    }
    with pytest.raises(ProposalInvalid) as invalid:
        REGISTRY.validate_proposal(proposal(tool_calls=[call]), intents=INTENTS)
    assert any("amount_cents: Input should be a valid integer" in e for e in invalid.value.errors)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("{oops", "not valid JSON"),
        (proposal(confidence=1.5), "confidence: Input should be less than or equal to 1"),
        (proposal(confidence=True), "confidence: Input should be a valid number"),
        (proposal(confidence="0.9"), "confidence: Input should be a valid number"),
        (proposal(intent="hack_the_planet"), "intent: 'hack_the_planet' is not one of"),
        (
            proposal(tool_calls=[{"tool": "wire_money", "arguments": {}}]),
            "unknown tool 'wire_money'",
        ),
        (
            proposal(
                tool_calls=[
                    {
                        "tool": "issue_refund",
                        "arguments": {"order_id": "ORD-1001", "amount_cents": -5, "reason": "r"},
                    }
                ]
            ),
            "tool_calls.issue_refund.amount_cents: Input should be greater than 0",
        ),
        (
            proposal(
                tool_calls=[
                    {
                        "tool": "send_reply",
                        "arguments": {"customer_id": "C-1", "body": "x", "cc": "all"},
                    }
                ]
            ),
            "tool_calls.send_reply.cc: Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_output_is_refused_with_reasons(content: str, error: str) -> None:
    with pytest.raises(ProposalInvalid) as invalid:
        REGISTRY.validate_proposal(content, intents=INTENTS)
    assert any(error in e for e in invalid.value.errors), invalid.value.errors


def test_compensations_are_never_offered_to_or_accepted_from_the_model() -> None:
    call = {"tool": "reverse_refund", "arguments": {"refund_id": "RF-abcdef", "reason": "r"}}
    with pytest.raises(ProposalInvalid) as invalid:
        REGISTRY.validate_proposal(proposal(tool_calls=[call]), intents=INTENTS)
    assert invalid.value.errors == ["tool_calls: 'reverse_refund' is not available to the model"]
    # Nor named to it among the tools it may use, when it asks for one that does not exist.
    other = {"tool": "wire_money", "arguments": {}}
    with pytest.raises(ProposalInvalid) as invalid:
        REGISTRY.validate_proposal(proposal(tool_calls=[other]), intents=INTENTS)
    assert invalid.value.errors == [
        "tool_calls: unknown tool 'wire_money'; known: ['issue_refund', 'lookup_order', "
        "'send_reply']"
    ]


def test_catalogue_is_rendered_from_the_same_contracts() -> None:
    catalogue = {t["name"]: t for t in REGISTRY.catalogue()}
    assert set(catalogue) == {"lookup_order", "issue_refund", "send_reply"}
    assert catalogue["issue_refund"]["risk"] == "high"
    assert (
        catalogue["issue_refund"]["parameters"]["properties"]["amount_cents"]["exclusiveMinimum"]
        == 0
    )


def test_request_is_immutable() -> None:
    request = Request.model_validate(GOOD)
    with pytest.raises(ValidationError):
        request.text = "changed"  # type: ignore[misc]


def test_a_caller_names_a_model_queue_only_where_the_workers_let_it() -> None:
    """The workers pin their model queue with the policy: a request asking for another is
    answered there, unless the workers list it (fnmatch); a run pinned before they said
    theirs keeps the queue it asked for."""
    from tether.contracts import PinnedPolicy
    from tether.domains.support import PACK

    policy = PACK.policy
    theirs = PinnedPolicy(
        domain="support",
        version="v1",
        sha256="0" * 64,
        policy=policy,
        model_queue="tether-model",
        model_queues=["drill-*"],
    )
    assert theirs.answering("tether-model") == "tether-model"
    assert theirs.answering("mine") == "tether-model"
    assert theirs.answering("drill-7") == "drill-7"
    before = theirs.model_copy(update={"model_queue": None, "model_queues": []})
    assert before.answering("mine") == "mine"
