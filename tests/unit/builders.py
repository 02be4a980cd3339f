"""Builders the unit tests share: a decision's time, fresh evidence, the packs' records and
tool calls, a good request and proposal to change one field of, and a policy with people."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from tether.config import PolicyConfig
from tether.contracts import ContextRecord, FreshnessReport, ToolCall
from tether.domains.support import PACK as SUPPORT
from tether.domains.support.records import OrderSnapshot
from tether.signing import SigningKey

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
FRESH = FreshnessReport(index_refreshed_at=NOW, index_age_seconds=60, stale_index=False)

# --- contracts -------------------------------------------------------------------------

GOOD = {"request_id": "r-1", "subject": "C-1", "requester": "C-1", "text": "Where is ORD-1001?"}


def proposal(**overrides: object) -> str:
    """A support proposal as the model writes it (JSON text), with ``overrides``."""
    body: dict[str, object] = {
        "intent": "refund_request",
        "answer": "Refunds arrive in 5 to 10 business days.",
        "citations": ["refund-policy@v3#3"],
        "tool_calls": [
            {
                "tool": "issue_refund",
                "arguments": {"order_id": "ORD-1001", "amount_cents": 4000, "reason": "r"},
            }
        ],
        "confidence": 0.8,
    }
    body.update(overrides)
    return json.dumps(body)


# --- support ---------------------------------------------------------------------------


def order(
    *,
    order_id: str = "ORD-1234",
    total: int = 20_000,
    refunded: int = 0,
    customer: str = "C-1",
    delivered_days: int | None = 5,
) -> OrderSnapshot:
    return OrderSnapshot(
        order_id=order_id,
        customer_id=customer,
        status="delivered" if delivered_days is not None else "shipped",
        total_cents=total,
        refunded_cents=refunded,
        placed_at=NOW - timedelta(days=10),
        delivered_at=NOW - timedelta(days=delivered_days) if delivered_days is not None else None,
    )


def record(snapshot: OrderSnapshot) -> ContextRecord:
    data = snapshot.model_dump(mode="json")
    return SUPPORT.context_record(SUPPORT.reference("order"), snapshot.order_id, data)


def refund(cents: int, *, order_id: str = "ORD-1234") -> ToolCall:
    return ToolCall(
        tool="issue_refund",
        arguments={"order_id": order_id, "amount_cents": cents, "reason": "r"},
    )


REPLY = ToolCall(tool="send_reply", arguments={"customer_id": "C-1", "body": "hello"})

# --- itops -----------------------------------------------------------------------------


def restart(host: str, service: str, by: str) -> ToolCall:
    return ToolCall(
        tool="restart_service", arguments={"host": host, "service": service, "requested_by": by}
    )


def grant(group: str, member: str, by: str, tool: str = "add_to_group") -> ToolCall:
    return ToolCall(tool=tool, arguments={"group": group, "member": member, "requested_by": by})


def rotate(host: str, service: str, by: str) -> ToolCall:
    return ToolCall(
        tool="rotate_credential", arguments={"host": host, "service": service, "requested_by": by}
    )


KEYS: dict[str, SigningKey] = {}  # one key per person for the whole session


def staffed(policy: PolicyConfig, people: Mapping[str, list[str]]) -> PolicyConfig:
    """``policy`` with ``people`` (approver -> roles) as its directory, a live key each: the
    packs ship no approvers, and a policy nobody can sign for refuses what needs a person."""
    for name in people:
        KEYS.setdefault(name, SigningKey.new(name))
    directory = {
        name: {"roles": roles, "keys": [{"public_key": KEYS[name].public_key}]}
        for name, roles in people.items()
    }
    return policy.merged({"approvers": directory})
