"""The policy gate: a pure function from typed facts to a Decision with reasons.

It runs inside the workflow, so it must stay deterministic: no I/O, no clock (``now`` is
passed in), no randomness. Only fields computed by deterministic code are consulted; text a
customer, a document or the model wrote can never widen what policy allows.

Order of rules: degraded modes, then hard limits (reject), then escalation (approval at
the highest tier any rule needs), else automatic. Every branch says why.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tether.config import PolicyConfig
from tether.contracts import (
    Decision,
    DecisionAction,
    FreshnessReport,
    Frozen,
    Mode,
    OrderSnapshot,
    Proposal,
    Reason,
    Request,
    Verification,
)
from tether.tools import ToolRegistry

MONEY_ARGUMENT = "amount_cents"


class PolicyInput(Frozen):
    request: Request
    mode: Mode
    proposal: Proposal | None
    verification: Verification | None
    order: OrderSnapshot | None
    freshness: FreshnessReport
    now: datetime
    # Why no proposal came, when the workflow knows (e.g. circuit_open); recorded as the reason.
    model_failure: Reason | None = None


def _usd(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def refund_total(proposal: Proposal, registry: ToolRegistry) -> int:
    """Money the proposal moves. Limits apply to the total: splitting a refund into parts must
    not slip under them."""
    return sum(
        int(c.arguments[MONEY_ARGUMENT])
        for c in proposal.tool_calls
        if registry.get(c.tool).writes and MONEY_ARGUMENT in c.arguments
    )


def tier_for_amount(cents: int, config: PolicyConfig) -> int | None:
    """The lowest approval tier allowed to approve this amount, or None if none may."""
    for index, tier in enumerate(config.tiers):
        if cents <= tier.limit_cents:
            return index
    return None


def _order_rules(
    inp: PolicyInput, order: OrderSnapshot, total: int, config: PolicyConfig
) -> list[Reason]:
    """Money against an order: the customer's own, within its balance and refund window."""
    reasons = []
    if order.customer_id != inp.request.customer_id:
        reasons.append(
            Reason(
                code="order_not_customers", detail=f"{order.order_id} belongs to another customer"
            )
        )
    if total > order.refundable_cents:
        reasons.append(
            Reason(
                code="amount_exceeds_balance",
                detail=f"refunds of {_usd(total)} exceed the refundable balance "
                f"{_usd(order.refundable_cents)} of {order.order_id}",
            )
        )
    if order.delivered_at is not None:
        window_end = order.delivered_at + timedelta(days=config.refund_window_days)
        if inp.now > window_end:
            reasons.append(
                Reason(
                    code="outside_refund_window",
                    detail=f"delivered {order.delivered_at.date()}, window of "
                    f"{config.refund_window_days} days ended {window_end.date()}",
                )
            )
    return reasons


def decide(inp: PolicyInput, config: PolicyConfig, registry: ToolRegistry) -> Decision:
    permissions: list[str] = []

    def decision(
        action: DecisionAction, mode: Mode, reasons: list[Reason], tier: int | None = None
    ) -> Decision:
        return Decision(
            action=action,
            mode=mode,
            reasons=reasons,
            tier=tier,
            policy_version=config.version,
            permissions=permissions,
        )

    proposal, verification = inp.proposal, inp.verification
    if inp.mode is Mode.RETRIEVAL_ONLY or proposal is None or verification is None:
        code = "model_unavailable" if inp.mode is Mode.RETRIEVAL_ONLY else "invalid_model_output"
        why = inp.model_failure or Reason(
            code=code, detail="no valid proposal; answering without actions"
        )
        return decision(
            DecisionAction.DEGRADED,
            inp.mode if inp.mode is not Mode.NORMAL else Mode.HUMAN_DRAFT,
            [why],
        )

    writes = [c for c in proposal.tool_calls if registry.get(c.tool).writes]
    permissions = sorted({registry.get(c.tool).permission for c in proposal.tool_calls})
    total = refund_total(proposal, registry)
    order = inp.order
    rejects: list[Reason] = [
        Reason(code=f"verifier:{f.code}", detail=f.detail) for f in verification.blocking
    ]
    for call in writes:
        named = call.arguments.get("order_id")
        if named is None:
            continue
        if order is None:
            rejects.append(
                Reason(
                    code="order_unknown",
                    detail=f"{call.tool} names {named}, which we could not read",
                )
            )
        elif named != order.order_id:
            rejects.append(
                Reason(
                    code="order_mismatch",
                    detail=f"{call.tool} names {named}; the order checked for this request is {order.order_id}",
                )
            )
    if total:
        if total > config.max_refund_cents:
            rejects.append(
                Reason(
                    code="amount_above_hard_limit",
                    detail=f"refunds of {_usd(total)} exceed the hard limit {_usd(config.max_refund_cents)}",
                )
            )
        if order is not None:
            rejects += _order_rules(inp, order, total, config)
    if rejects:
        return decision(DecisionAction.REJECT, Mode.NORMAL, rejects)

    escalations: list[tuple[int, Reason]] = []
    mode = Mode.NORMAL
    if writes and inp.freshness.stale_index:
        mode = Mode.READ_ONLY
        escalations.append(
            (0, Reason(code="stale_index", detail="knowledge index is stale: no autonomous writes"))
        )
    stale_cited = sorted(set(proposal.citations) & set(inp.freshness.stale_kept))
    if writes and stale_cited:
        mode = Mode.READ_ONLY
        escalations.append(
            (
                0,
                Reason(
                    code="stale_evidence",
                    detail=f"cites passages past their freshness rule: {', '.join(stale_cited)}",
                ),
            )
        )
    if proposal.confidence < config.min_auto_confidence:
        # The model is unsure: what it wrote goes to a person as a draft, not as a decision.
        if mode is Mode.NORMAL:
            mode = Mode.HUMAN_DRAFT
        escalations.append(
            (
                0,
                Reason(
                    code="low_confidence",
                    detail=f"confidence {proposal.confidence:.2f} < {config.min_auto_confidence:.2f}",
                ),
            )
        )
    if verification.grounding < config.min_grounding:
        if writes:  # evidence that does not support the answer cannot justify an action
            mode = Mode.READ_ONLY
        escalations.append(
            (
                0,
                Reason(
                    code="weak_grounding",
                    detail=f"grounding {verification.grounding:.2f} < {config.min_grounding:.2f}",
                ),
            )
        )
    for permission in permissions:
        if permission not in config.autonomous_permissions:
            escalations.append(
                (
                    0,
                    Reason(
                        code="permission_needs_human",
                        detail=f"{permission} is not exercised without a person",
                    ),
                )
            )
    for finding in verification.findings:
        if finding.severity == "warn":
            escalations.append((0, Reason(code=f"verifier:{finding.code}", detail=finding.detail)))
    if total > config.auto_refund_limit_cents:
        tier = tier_for_amount(total, config)
        if tier is None:  # unreachable while max_refund <= last tier's limit; stay safe
            return decision(
                DecisionAction.REJECT,
                Mode.NORMAL,
                [Reason(code="no_tier_may_approve", detail=f"refunds of {_usd(total)}")],
            )
        escalations.append(
            (
                tier,
                Reason(
                    code="amount_above_auto_limit",
                    detail=f"refunds of {_usd(total)} > auto limit "
                    f"{_usd(config.auto_refund_limit_cents)}: {config.tiers[tier].name} approves",
                ),
            )
        )
    if escalations:
        tier = max(t for t, _ in escalations)
        return decision(DecisionAction.APPROVAL, mode, [r for _, r in escalations], tier)

    allowed = [
        Reason(
            code="confidence_ok",
            detail=f"confidence {proposal.confidence:.2f} >= {config.min_auto_confidence:.2f}",
        ),
        Reason(
            code="grounded",
            detail=f"grounding {verification.grounding:.2f} >= {config.min_grounding:.2f}",
        ),
    ]
    if total:
        allowed.append(
            Reason(
                code="within_auto_limit",
                detail=f"refunds of {_usd(total)} <= {_usd(config.auto_refund_limit_cents)}",
            )
        )
    if not writes:
        allowed.append(Reason(code="no_writes", detail="answer only"))
    return decision(DecisionAction.AUTO, Mode.NORMAL, allowed)
