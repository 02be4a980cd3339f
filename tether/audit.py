"""The audit answer, per side effect: what was attempted, why it was allowed, what changed."""

from __future__ import annotations

from typing import Any

from tether.contracts import Frozen, Outcome


class AuditEntry(Frozen):
    step: int
    tool: str
    arguments: dict[str, Any]
    idempotency_key: str
    allowed_because: list[str]
    policy_version: str
    approved_by: list[str]
    ok: bool
    changed: dict[str, Any]
    postcondition: str | None
    replayed: bool
    error: str | None = None


def audit(outcome: Outcome) -> list[AuditEntry]:
    decision = outcome.decision
    approvers = [r.approver for r in outcome.reviews if r.verdict == "approve"]
    entries = []
    for step, action in enumerate(outcome.actions, start=1):
        before, after = action.before or {}, action.after or {}
        changed = {
            k: {"before": before.get(k), "after": after.get(k)} for k in sorted({*before, *after})
        }
        entries.append(
            AuditEntry(
                step=step,
                tool=action.tool,
                arguments=action.arguments,
                idempotency_key=action.idempotency_key,
                allowed_because=[
                    f"{decision.action.value}: {r.code} ({r.detail})" for r in decision.reasons
                ],
                policy_version=decision.policy_version,
                approved_by=approvers,
                ok=action.ok,
                changed=changed,
                postcondition=action.postcondition,
                replayed=action.replayed,
                error=action.error,
            )
        )
    return entries
