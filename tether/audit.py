"""The audit answer, per side effect: what was attempted, why it was allowed, what changed."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tether.contracts import Frozen, Outcome, ToolResult


class AuditEntry(Frozen):
    step: int
    tool: str
    arguments: dict[str, Any]
    idempotency_key: str
    allowed_because: list[str]
    permissions: list[str]
    policy_version: str
    policy_sha256: str | None = None  # of the version the workflow pinned
    approved_by: list[str]
    approval_keys: list[str] = Field(default=[], description="per approver, the signing key")
    ok: bool
    unconfirmed_effect: bool = Field(
        default=False, description="failed, but the target holds an effect under its key"
    )
    changed: dict[str, Any]
    precondition: str | None
    postcondition: str | None
    replayed: bool
    error: str | None = None
    compensates: int | None = Field(default=None, description="the step this entry undid (saga)")


def settled_by(outcome: Outcome) -> str | None:
    """What ended a request that asked for a person without acting ("rejected by lead@x:
    reason"), or None: the decision stays the one that asked (approval), and read alone it
    would pass for one still waiting."""
    verdicts = ("approve", "reject", "expired")
    last = next((r for r in reversed(outcome.reviews) if r.verdict in verdicts), None)
    if last is None or last.verdict == "approve":
        return None
    said = f"rejected by {last.approver}" if last.verdict == "reject" else "no one decided in time"
    return f"{said}: {last.reason}" if last.reason else said


def audit(outcome: Outcome) -> list[AuditEntry]:
    decision = outcome.decision
    approvals = [r for r in outcome.reviews if r.verdict == "approve"]
    approvers = [r.approver for r in approvals]
    keys = [r.key_id or "unsigned" for r in approvals]  # the key that proved who approved
    why = [f"{decision.action.value}: {r.code} ({r.detail})" for r in decision.reasons]

    def entry(
        step: int,
        action: ToolResult,
        allowed: list[str],
        permissions: list[str],
        compensates: int | None = None,
    ) -> AuditEntry:
        before, after = action.before or {}, action.after or {}
        return AuditEntry(
            step=step,
            tool=action.tool,
            arguments=action.arguments,
            idempotency_key=action.idempotency_key,
            allowed_because=allowed,
            permissions=permissions,
            policy_version=decision.policy_version,
            policy_sha256=outcome.policy_sha256,
            approved_by=approvers,
            approval_keys=keys,
            ok=action.ok,
            unconfirmed_effect=action.unconfirmed_effect,
            changed={
                k: {"before": before.get(k), "after": after.get(k)}
                for k in sorted({*before, *after})
            },
            precondition=action.precondition,
            postcondition=action.postcondition,
            replayed=action.replayed,
            error=action.error,
            compensates=compensates,
        )

    entries = [
        entry(step, action, why, [action.permission] if action.permission else [])
        for step, action in enumerate(outcome.actions, start=1)
    ]
    failed = next((e.step for e in entries if not e.ok), None)
    for offset, action in enumerate(outcome.compensations, start=1):
        undone = int(
            action.idempotency_key.rsplit("/", 2)[-2]
        )  # <workflow>/compensate/<step>/<tool>
        allowed = [f"saga: step {failed} failed for good, so step {undone} is undone"]
        granted = [
            f"{action.permission or action.tool}: granted by the runtime to undo step {undone}"
        ]
        entries.append(
            entry(len(outcome.actions) + offset, action, allowed, granted, compensates=undone)
        )
    return entries
