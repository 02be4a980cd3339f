"""The support domain's tools: typed arguments, typed results, risk tiers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tether.contracts import ORDER_ID_PATTERN, OrderSnapshot, ToolCall, ToolResult
from tether.tools import ToolRegistry, ToolSpec

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LookupOrderArgs(_Args):
    order_id: str = Field(pattern=rf"^{ORDER_ID_PATTERN}$")


class IssueRefundArgs(_Args):
    order_id: str = Field(pattern=rf"^{ORDER_ID_PATTERN}$")
    amount_cents: int = Field(gt=0, le=100_000_000, strict=True)  # no True, "40" or 40.0
    reason: str = Field(min_length=1, max_length=200)


class SendReplyArgs(_Args):
    customer_id: str = Field(pattern=_ID)
    body: str = Field(min_length=1, max_length=4_000)
    order_id: str | None = Field(default=None, pattern=rf"^{ORDER_ID_PATTERN}$")


class ReverseRefundArgs(_Args):
    refund_id: str = Field(pattern=r"^RF-[0-9a-f]{6,32}$")
    reason: str = Field(min_length=1, max_length=200)


class ReversalReceipt(BaseModel):
    reversal_id: str
    refund_id: str
    order_id: str


class RefundReceipt(BaseModel):
    refund_id: str
    order_id: str
    amount_cents: int
    refunded_total_cents: int


class MessageReceipt(BaseModel):
    message_id: str
    customer_id: str


LOOKUP_ORDER = ToolSpec(
    name="lookup_order",
    description="Read an order's status, total and refunds so far.",
    input_model=LookupOrderArgs,
    output_model=OrderSnapshot,
    risk="read",
)


def _reverse(result: ToolResult) -> ToolCall:
    return ToolCall(
        tool="reverse_refund",
        arguments={
            "refund_id": result.output["refund_id"],
            "reason": "compensation: plan failed later",
        },
    )


ISSUE_REFUND = ToolSpec(
    name="issue_refund",
    description="Refund part or all of an order to the original payment method.",
    input_model=IssueRefundArgs,
    output_model=RefundReceipt,
    risk="high",
    compensation=_reverse,
)
REVERSE_REFUND = ToolSpec(
    name="reverse_refund",
    description="Undo a refund issued by this system (compensation only).",
    input_model=ReverseRefundArgs,
    output_model=ReversalReceipt,
    risk="high",
    proposable=False,
)
SEND_REPLY = ToolSpec(
    name="send_reply",
    description="Send a message to the customer.",
    input_model=SendReplyArgs,
    output_model=MessageReceipt,
    risk="low",
)

REGISTRY = ToolRegistry([LOOKUP_ORDER, ISSUE_REFUND, SEND_REPLY, REVERSE_REFUND])
