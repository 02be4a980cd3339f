"""The support domain's context record: an order, as the business system reports it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ORDER_ID = r"ORD-[0-9]{4,8}"  # ASCII digits: full-width or Arabic-Indic ones are no order id


class OrderSnapshot(BaseModel):
    """The business system's record of an order, as read before proposing."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    customer_id: str
    status: Literal["placed", "shipped", "delivered", "cancelled"]
    total_cents: int
    refunded_cents: int
    placed_at: datetime
    delivered_at: datetime | None = None

    @property
    def refundable_cents(self) -> int:
        return self.total_cents - self.refunded_cents

    def as_text(self) -> str:
        delivered = self.delivered_at.date().isoformat() if self.delivered_at else "not yet"
        return (
            f"Order {self.order_id} is {self.status}. It was placed on "
            f"{self.placed_at.date().isoformat()} and delivered {delivered}. "
            f"The order total is ${self.total_cents / 100:.2f}."
        )


def describe_order(data: dict[str, Any]) -> str:
    return OrderSnapshot.model_validate(data).as_text()
