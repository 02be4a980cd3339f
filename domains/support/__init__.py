"""The support domain pack: knowledge base, intents, tools and their business system."""

from __future__ import annotations

# Intent names the model may propose; intents.yaml holds their examples and plans
# (a unit test keeps the two in step). A constant, so workflows need no file I/O.
INTENTS: tuple[str, ...] = (
    "order_status",
    "refund_request",
    "damaged_item",
    "return_question",
    "shipping_question",
    "cancel_order",
    "warranty_question",
    "account_help",
    "complaint",
)
