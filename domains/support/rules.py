"""The support domain's policy rules: money against an order. Pure functions of the facts, the
rule settings and the decision's time; the core runs them beside its own gates.

- refunds are limited in total, across every call of a proposal (three refunds of $40 are a
  refund of $120), by a hard limit, the order's refundable balance and the refund window;
- and across the customer's tickets: what they were refunded, or are waiting for, over the
  window (the ``refunds`` tally) counts with this one, so splitting across tickets escalates
  like splitting within one;
- above the automatic limit, the lowest tier whose limit covers the total approves;
- a person decides a refund of an amount the customer never named, and one before delivery
  (the refund window starts at delivery; a shipped order is returned after it arrives).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tether.config import PolicyConfig
from tether.contracts import Facts
from tether.policy import Allow, Escalate, Reject, Verdict, argument_total, writes_of

from .money import named_cents, usd
from .records import OrderSnapshot
from .tools import REGISTRY

MONEY = "amount_cents"
TALLY = "refunds"  # the customer's refunds over PolicyConfig.tally_windows["refunds"]


class RefundRules(BaseModel):
    """The thresholds the rules read (PolicyConfig.rules). A misspelt setting is an error,
    not a silent default."""

    model_config = ConfigDict(extra="forbid")

    auto_limit_cents: int = Field(default=5_000, ge=0)
    max_refund_cents: int = Field(default=100_000, ge=0)
    # One customer's refunds over the tally window, this one included.
    customer_auto_limit_cents: int = Field(default=5_000, ge=0)
    customer_max_cents: int = Field(default=200_000, ge=0)
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
        if order.status != "delivered":
            yield Escalate(
                "not_delivered",
                f"{order.order_id} is {order.status}: the refund window starts at delivery, "
                "so a refund before it is a person's call",
            )
        if order.delivered_at is not None:
            window_end = order.delivered_at + timedelta(days=rules.refund_window_days)
            if now > window_end:
                yield Reject(
                    "outside_refund_window",
                    f"delivered {order.delivered_at.date()}, window of "
                    f"{rules.refund_window_days} days ended {window_end.date()}",
                )
    if not named_cents(facts.request.text):
        yield Escalate(
            "amount_not_named",
            f"the customer named no amount in dollars; the plan refunds {usd(total)}",
        )
    yield from _customer_total(facts, rules, total)
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


def _customer_total(facts: Facts, rules: RefundRules, total: int) -> Iterator[Verdict]:
    """This refund with the customer's others over the window (when the tally is kept)."""
    others = facts.tallies.get(TALLY)
    if others is None:
        return
    if not others and (
        rules.customer_auto_limit_cents >= rules.auto_limit_cents
        and rules.customer_max_cents >= rules.max_refund_cents
    ):
        return  # their first: this refund alone, which its own limits judge as strictly
    combined = others + total
    who = facts.request.subject
    if combined > rules.customer_max_cents:
        yield Reject(
            "customer_total_above_limit",
            f"{who}'s refunds in the window: {usd(others)} before this, {usd(combined)} with it "
            f"> {usd(rules.customer_max_cents)}",
        )
    elif combined > rules.customer_auto_limit_cents:
        tier = rules.tier_for(combined)
        detail = (
            f"{who}'s refunds in the window: {usd(others)} before this, {usd(combined)} with it "
            f"> {usd(rules.customer_auto_limit_cents)}"
        )
        if tier is None:
            yield Reject("no_tier_may_approve", detail)
        else:
            yield Escalate("customer_total_above_auto_limit", detail, tier=tier)
