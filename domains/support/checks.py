"""The verifier's argument checks that only the support business knows."""

from __future__ import annotations

from collections.abc import Iterator

from tether.contracts import Finding, Request, ToolCall

from .money import amounts_in


def amount_as_asked(request: Request, calls: list[ToolCall]) -> Iterator[Finding]:
    """A refund of an amount other than the one the customer named is a person's call."""
    asked = amounts_in(request.text)
    for call in calls:
        amount = call.arguments.get("amount_cents")
        if amount is not None and asked and int(amount) not in asked:
            yield Finding(
                code="amount_not_requested",
                severity="warn",
                detail=f"{call.tool} amount {int(amount)} cents differs from the amounts asked {asked}",
            )
