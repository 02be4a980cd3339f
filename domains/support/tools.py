"""The support domain's tools: typed arguments and results, risk tiers, permissions, and the
conditions each write is checked against in the business system before and after it acts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tether.contracts import IDENT, ToolCall, ToolResult
from tether.tools import ConditionFailed, Target, ToolRegistry, ToolSpec

from .money import usd as _usd
from .records import ORDER_ID, OrderSnapshot

SHOP = "shop"  # the business system: orders, refunds, messages


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LookupOrderArgs(_Args):
    order_id: str = Field(pattern=rf"^{ORDER_ID}$")


class IssueRefundArgs(_Args):
    order_id: str = Field(pattern=rf"^{ORDER_ID}$")
    amount_cents: int = Field(gt=0, le=100_000_000, strict=True)  # no True, "40" or 40.0
    reason: str = Field(min_length=1, max_length=200)


class SendReplyArgs(_Args):
    customer_id: str = Field(pattern=IDENT)
    body: str = Field(min_length=1, max_length=4_000)
    order_id: str | None = Field(default=None, pattern=rf"^{ORDER_ID}$")


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


def _matches(what: str, record: dict[str, Any], expected: dict[str, Any], key: str) -> str:
    """The target's own record shows exactly the effect asked for, under our key."""
    wrong = {
        k: {"found": record.get(k), "expected": v}
        for k, v in {**expected, "idempotency_key": key}.items()
        if record.get(k) != v
    }
    if wrong:
        raise ConditionFailed(f"{what} in the business system differs from the request: {wrong}")
    return f"{what} matching {expected} is in the business system under this key"


async def _refundable(target: Target, args: IssueRefundArgs) -> str:
    order = await target.read(f"/orders/{args.order_id}")
    balance = order["total_cents"] - order["refunded_cents"]
    if args.amount_cents > balance:
        raise ConditionFailed(
            f"{args.order_id} has {_usd(balance)} left to refund, less than {_usd(args.amount_cents)}"
        )
    return f"{args.order_id} had {_usd(balance)} refundable >= {_usd(args.amount_cents)}"


async def _refund_recorded(
    target: Target, args: IssueRefundArgs, out: RefundReceipt, key: str
) -> str:
    record = await target.read(f"/refunds/{out.refund_id}")
    expected = {"order_id": args.order_id, "amount_cents": args.amount_cents}
    return _matches(f"refund {out.refund_id}", record, expected, key)


async def _order_refunds(target: Target, args: IssueRefundArgs) -> dict[str, Any]:
    order = await target.read(f"/orders/{args.order_id}")
    return {"refunded_cents": order["refunded_cents"]}


async def _reversible(target: Target, args: ReverseRefundArgs) -> str:
    refund = await target.read(f"/refunds/{args.refund_id}")
    order = await target.read(f"/orders/{refund['order_id']}")
    if order["refunded_cents"] < refund["amount_cents"]:
        raise ConditionFailed(
            f"{refund['order_id']} shows {_usd(order['refunded_cents'])} refunded, "
            f"less than the {_usd(refund['amount_cents'])} of {args.refund_id}"
        )
    return f"{args.refund_id} of {_usd(refund['amount_cents'])} on {refund['order_id']} exists"


async def _reversal_recorded(
    target: Target, args: ReverseRefundArgs, out: ReversalReceipt, key: str
) -> str:
    record = await target.read(f"/reversals/{out.reversal_id}")
    refund = await target.read(f"/refunds/{args.refund_id}")
    expected = {"refund_id": args.refund_id, "amount_cents": refund["amount_cents"]}
    return _matches(f"reversal {out.reversal_id}", record, expected, key)


async def _refund_order_refunds(target: Target, args: ReverseRefundArgs) -> dict[str, Any]:
    refund = await target.read(f"/refunds/{args.refund_id}")
    order = await target.read(f"/orders/{refund['order_id']}")
    return {"refunded_cents": order["refunded_cents"]}


async def _addressee_owns_order(target: Target, args: SendReplyArgs) -> str:
    if args.order_id is None:
        return f"a general reply to {args.customer_id}"
    order = await target.read(f"/orders/{args.order_id}")
    if order["customer_id"] != args.customer_id:
        raise ConditionFailed(
            f"{args.order_id} belongs to another customer than {args.customer_id}"
        )
    return f"{args.order_id} belongs to {args.customer_id}"


async def _message_recorded(
    target: Target, args: SendReplyArgs, out: MessageReceipt, key: str
) -> str:
    record = await target.read(f"/messages/{out.message_id}")
    expected = {"customer_id": args.customer_id, "body": args.body}
    return _matches(f"message {out.message_id}", record, expected, key)


def _reverse(result: ToolResult) -> ToolCall:
    return ToolCall(
        tool="reverse_refund",
        arguments={
            "refund_id": result.output["refund_id"],
            "reason": "compensation: plan failed later",
        },
    )


LOOKUP_ORDER = ToolSpec(
    name="lookup_order",
    description="Read an order's status, total and refunds so far.",
    input_model=LookupOrderArgs,
    output_model=OrderSnapshot,
    risk="read",
    permission="orders:read",
    path="/orders/{order_id}",
    system=SHOP,
    references={"order_id": "order"},
)
ISSUE_REFUND = ToolSpec(
    name="issue_refund",
    description="Refund part or all of an order to the original payment method.",
    input_model=IssueRefundArgs,
    output_model=RefundReceipt,
    risk="high",
    permission="refunds:issue",
    path="/refunds",
    system=SHOP,
    references={"order_id": "order"},
    precondition=_refundable,
    postcondition=_refund_recorded,
    state=_order_refunds,
    compensation=_reverse,
)
REVERSE_REFUND = ToolSpec(
    name="reverse_refund",
    description="Undo a refund issued by this system (compensation only).",
    input_model=ReverseRefundArgs,
    output_model=ReversalReceipt,
    risk="high",
    permission="refunds:reverse",
    path="/reversals",
    system=SHOP,
    precondition=_reversible,
    postcondition=_reversal_recorded,
    state=_refund_order_refunds,
    proposable=False,
)
SEND_REPLY = ToolSpec(
    name="send_reply",
    description="Send a message to the customer.",
    input_model=SendReplyArgs,
    output_model=MessageReceipt,
    risk="low",
    permission="messages:send",
    path="/messages",
    system=SHOP,
    references={"order_id": "order"},
    subject_argument="customer_id",
    outbound=("body",),
    precondition=_addressee_owns_order,
    postcondition=_message_recorded,
)

REGISTRY = ToolRegistry([LOOKUP_ORDER, ISSUE_REFUND, SEND_REPLY, REVERSE_REFUND])
