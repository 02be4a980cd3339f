"""The support domain's policy rules: money against an order. Pure functions of the facts, the
rule settings and the decision's time; the core runs them beside its own gates.

- refunds are limited in total, across every call of a proposal (three refunds of $40 are a
  refund of $120), by a hard limit, the order's refundable balance and the refund window;
- above the automatic limit, the lowest tier whose limit covers the total approves.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tether.config import PolicyConfig
from tether.contracts import Facts
from tether.policy import Allow, Escalate, Reject, Verdict, argument_total, writes_of

from .money import usd
from .records import OrderSnapshot
from .tools import REGISTRY

MONEY = "amount_cents"


class RefundRules(BaseModel):
    """The thresholds the rules read (PolicyConfig.rules). A misspelt setting is an error,
    not a silent default."""

    model_config = ConfigDict(extra="forbid")

    auto_limit_cents: int = Field(default=5_000, ge=0)
    max_refund_cents: int = Field(default=100_000, ge=0)
    refund_window_days: int = Field(default=30, ge=0)
    # The largest total refund each approval tier may approve, by tier name.
    approval_limits_cents: dict[str, int] = Field(
        default_factory=lambda: {"lead": 20_000, "manager": 100_000}
    )

    @model_validator(mode="after")
    def _someone_may_approve_the_maximum(self) -> RefundRules:
        if self.max_refund_cents > max(self.approval_limits_cents.values(), default=0):
            raise ValueError("no approval tier may approve refunds up to max_refund_cents")
        return self

    def tier_for(self, cents: int) -> str | None:
        """The tier with the smallest limit that covers ``cents``."""
        covering = [
            (limit, tier) for tier, limit in self.approval_limits_cents.items() if cents <= limit
        ]
        return min(covering)[1] if covering else None


def check_policy(policy: PolicyConfig, rules: RefundRules) -> Iterator[str]:
    """Every tier that limits refunds is a tier of the policy."""
    tiers = {t.name for t in policy.tiers}
    for tier in sorted(set(rules.approval_limits_cents) - tiers):
        yield f"rules.approval_limits_cents names tier {tier!r}; the tiers are {sorted(tiers)}"


def refund_total(facts: Facts) -> int:
    """Money the proposal moves, over all its calls."""
    return argument_total(writes_of(facts, REGISTRY), REGISTRY, MONEY)


def refund_rules(facts: Facts, rules: RefundRules, now: datetime) -> Iterator[Verdict]:
    total = refund_total(facts)
    if not total:
        return
    if total > rules.max_refund_cents:
        yield Reject(
            "amount_above_hard_limit",
            f"refunds of {usd(total)} exceed the hard limit {usd(rules.max_refund_cents)}",
        )
    # Each order against the refunds that name it (the core refuses orders nobody read).
    per_order: dict[str, int] = {}
    for call in writes_of(facts, REGISTRY):
        if MONEY in call.arguments and "order_id" in call.arguments:
            order_id = str(call.arguments["order_id"])
            per_order[order_id] = per_order.get(order_id, 0) + int(call.arguments[MONEY])
    for order_id, amount in per_order.items():
        record = facts.record("order", order_id)
        if record is None:
            continue
        order = record.typed(OrderSnapshot)
        if amount > order.refundable_cents:
            yield Reject(
                "amount_exceeds_balance",
                f"refunds of {usd(amount)} exceed the refundable balance "
                f"{usd(order.refundable_cents)} of {order.order_id}",
            )
        if order.delivered_at is not None:
            window_end = order.delivered_at + timedelta(days=rules.refund_window_days)
            if now > window_end:
                yield Reject(
                    "outside_refund_window",
                    f"delivered {order.delivered_at.date()}, window of "
                    f"{rules.refund_window_days} days ended {window_end.date()}",
                )
    if total <= rules.auto_limit_cents:
        yield Allow(
            "within_auto_limit", f"refunds of {usd(total)} <= {usd(rules.auto_limit_cents)}"
        )
    elif total <= rules.max_refund_cents:  # above it, the hard limit has refused already
        tier = rules.tier_for(total)
        if tier is None:  # unreachable while a tier covers max_refund_cents; stay safe
            yield Reject("no_tier_may_approve", f"refunds of {usd(total)}")
        else:
            yield Escalate(
                "amount_above_auto_limit",
                f"refunds of {usd(total)} > auto limit {usd(rules.auto_limit_cents)}",
                tier=tier,
            )
