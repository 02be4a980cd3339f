"""The local model's plans for support: each planned tool's arguments, from the request, the
order read for it and the answer."""

from __future__ import annotations

from typing import Any

from tether.contracts import ContextRecord, Request

from .money import named_cents
from .records import OrderSnapshot


def _order(context: list[ContextRecord]) -> OrderSnapshot | None:
    record = next((r for r in context if r.kind == "order"), None)
    return record.typed(OrderSnapshot) if record else None


def refund(
    request: Request, context: list[ContextRecord], answer: str, intent: str
) -> dict[str, Any] | None:
    order = _order(context)
    if order is None:
        return None  # nothing to refund against; the reply still goes out
    asked = named_cents(request.text)  # believed as typed, in dollars: policy checks it
    return {
        "order_id": order.order_id,
        "amount_cents": asked[0] if asked else order.refundable_cents,
        "reason": intent,
    }


def reply(
    request: Request, context: list[ContextRecord], answer: str, intent: str
) -> dict[str, Any]:
    arguments: dict[str, Any] = {"customer_id": request.subject, "body": answer}
    order = _order(context)
    if order is not None:
        arguments["order_id"] = order.order_id
    return arguments
