"""Pydantic contracts for every boundary: client, workflow, activities, updates, records.

One model in and one model out everywhere; new fields get defaults so that histories
recorded with older code keep decoding.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tether.config import MODEL_QUEUE, PolicyConfig, Timeouts

ORDER_ID_PATTERN = r"ORD-\d{4,8}"
_ORDER_ID = re.compile(rf"\b({ORDER_ID_PATTERN})\b", re.IGNORECASE)
_IDENT = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


def find_order_ids(text: str) -> list[str]:
    """Order ids mentioned in free text, normalised and in order of first mention."""
    seen: dict[str, None] = {}
    for match in _ORDER_ID.finditer(text):
        seen.setdefault(match.group(1).upper(), None)
    return list(seen)


class Stage(StrEnum):
    RECEIVED = "received"
    RETRIEVING = "retrieving"
    PROPOSING = "proposing"
    VERIFYING = "verifying"
    DECIDING = "deciding"
    AWAITING_APPROVAL = "awaiting_approval"
    ACTING = "acting"
    RECORDING = "recording"
    COMPLETED = "completed"


class Mode(StrEnum):
    """Operating modes: a fallback changes what the system does, not just which model."""

    NORMAL = "normal"
    RETRIEVAL_ONLY = "retrieval_only"  # model unavailable: cited passages, no actions
    HUMAN_DRAFT = "human_draft"  # no valid proposal after repairs: a human takes over
    READ_ONLY = "read_only"  # stale index: no autonomous writes
    SAFE_DEFAULT = "safe_default"  # approval SLA ran out on every tier: no action


class DecisionAction(StrEnum):
    AUTO = "auto"
    APPROVAL = "approval"
    REJECT = "reject"
    DEGRADED = "degraded"


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- request -------------------------------------------------------------------------


class Request(Frozen):
    """A customer's ticket. Validated before any workflow starts."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    request_id: str = Field(
        pattern=_IDENT, description="caller's id; the workflow id derives from it"
    )
    customer_id: str = Field(pattern=_IDENT)
    requester: str = Field(pattern=_IDENT, description="who submitted it; may never approve it")
    text: str = Field(min_length=3, max_length=4_000)
    channel: Literal["email", "chat", "api"] = "api"
    order_id: str | None = Field(default=None, pattern=rf"^{ORDER_ID_PATTERN}$")

    def order_reference(self) -> str | None:
        if self.order_id:
            return self.order_id
        mentioned = find_order_ids(self.text)
        return mentioned[0] if mentioned else None


# --- retrieval -----------------------------------------------------------------------


class Passage(Frozen):
    passage_id: str
    doc_id: str
    title: str
    source: str
    version: int
    effective_date: date
    updated_at: datetime
    fetched_at: datetime
    content_hash: str
    text: str
    score: float


DropReason = Literal["superseded", "stale", "duplicate", "low_score", "budget"]


class DroppedPassage(Frozen):
    passage_id: str
    reason: DropReason
    score: float


class FreshnessReport(Frozen):
    index_refreshed_at: datetime | None
    index_age_seconds: float | None
    stale_index: bool
    dropped: list[DroppedPassage] = []
    # Seconds since each source's last successful refresh: the index is as fresh as its
    # stalest source.
    sources: dict[str, float] = {}
    stale_kept: list[str] = Field(default=[], description="stale passages kept (keep_stale)")


class RetrievalQuery(Frozen):
    text: str
    request_id: str


class Evidence(Frozen):
    query: str
    passages: list[Passage]
    freshness: FreshnessReport


class OrderSnapshot(Frozen):
    """The business system's record of an order, as read before proposing."""

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

    @property
    def citation_id(self) -> str:
        return f"order:{self.order_id}"

    def as_text(self) -> str:
        delivered = self.delivered_at.date().isoformat() if self.delivered_at else "not yet"
        return (
            f"Order {self.order_id} is {self.status}. It was placed on "
            f"{self.placed_at.date().isoformat()} and delivered {delivered}. "
            f"The order total is ${self.total_cents / 100:.2f}."
        )


# --- model proposal ------------------------------------------------------------------


class ToolCall(Frozen):
    tool: str
    arguments: dict[str, Any]


class Proposal(Frozen):
    """The model's typed output. Nothing downstream runs until this validates."""

    intent: str = Field(min_length=1, max_length=64)
    answer: str = Field(min_length=1, max_length=4_000)
    citations: list[str] = Field(max_length=16)
    tool_calls: list[ToolCall] = Field(default=[], max_length=8)
    confidence: float = Field(ge=0.0, le=1.0)


class ModelIdentity(Frozen):
    provider: str
    model: str
    fingerprint: str


class ProposeInput(Frozen):
    request: Request
    evidence: Evidence
    order: OrderSnapshot | None
    tool_catalogue: list[dict[str, Any]]
    intents: list[str] = []
    repair_errors: list[str] = []
    attempt: int = 0


class RawProposal(Frozen):
    """What the model returned, before validation: a JSON document as text."""

    content: str
    model: ModelIdentity
    response_id: str | None = None
    usage: dict[str, int] = {}
    latency_ms: float | None = None


# --- verification --------------------------------------------------------------------


class Finding(Frozen):
    code: str
    severity: Literal["info", "warn", "block"]
    detail: str


class VerifyInput(Frozen):
    request: Request
    evidence: Evidence
    order: OrderSnapshot | None
    proposal: Proposal


class Verification(Frozen):
    grounding: float = Field(ge=0.0, le=1.0, description="share of answer sentences grounded")
    sentences: int
    findings: list[Finding] = []

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "block"]


# --- decision and approval -----------------------------------------------------------


class Reason(Frozen):
    code: str
    detail: str


class Decision(Frozen):
    action: DecisionAction
    mode: Mode
    reasons: list[Reason]
    tier: int | None = Field(default=None, description="index into PolicyConfig.tiers")
    policy_version: str
    permissions: list[str] = Field(
        default=[], description="what acting on the proposal needs; granted on auto or approval"
    )

    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]


class PendingApproval(Frozen):
    """What an approver sees: the proposal, the evidence, the findings and the reasons."""

    tier: int
    tier_name: str
    role: str
    deadline: datetime
    proposal_version: int
    proposal: Proposal
    findings: list[Finding]
    reasons: list[Reason]
    citations: list[Passage]


class Review(Frozen):
    """An approver's verdict, sent as an Update (or a signal, for tools that can only signal)."""

    approver: str = Field(pattern=_IDENT)
    verdict: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=2_000)
    proposal_version: int | None = None

    @field_validator("reason")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class Edit(Frozen):
    """An approver's changed version of the pending proposal: a new answer, new tool calls,
    or both. Checked against the same contracts and policy as the model's, and against the
    editor's own limits; accepted, it is approved and executed as edited."""

    approver: str = Field(pattern=_IDENT)
    reason: str = Field(min_length=1, max_length=2_000)
    proposal_version: int | None = None
    answer: str | None = Field(default=None, min_length=1, max_length=4_000)
    tool_calls: list[ToolCall] | None = Field(default=None, max_length=8)

    @model_validator(mode="after")
    def _changes_something(self) -> Edit:
        if self.answer is None and self.tool_calls is None:
            raise ValueError("an edit changes the answer, the tool calls, or both")
        return self


class EditRecord(Frozen):
    """Both versions, kept as feedback for evaluation."""

    approver: str
    reason: str
    tier: int
    original: Proposal
    edited: Proposal
    at: datetime


class ReviewRecord(Frozen):
    approver: str
    verdict: Literal["approve", "reject", "expired", "refused"]
    reason: str
    tier: int
    at: datetime


class ReviewReceipt(Frozen):
    accepted: bool
    tier: int
    detail: str


# --- tools ---------------------------------------------------------------------------


class ToolInvocation(Frozen):
    """One tool call as executed: the idempotency key travels to the target system."""

    tool: str
    arguments: dict[str, Any]
    idempotency_key: str
    request_id: str
    granted: list[str] = Field(
        default=[], description="permissions the decision (or the runtime) granted this call"
    )


class ToolResult(Frozen):
    tool: str
    idempotency_key: str
    arguments: dict[str, Any]
    ok: bool
    output: dict[str, Any] = {}
    error: str | None = None
    # What exactly changed, read from the target system, not taken from the tool's answer.
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    precondition: str | None = Field(default=None, description="what was checked before acting")
    postcondition: str | None = Field(default=None, description="what was checked after acting")
    replayed: bool = Field(
        default=False, description="the target answered from its idempotency record"
    )
    permission: str | None = Field(default=None, description="the permission the call used")
    unconfirmed_effect: bool = Field(
        default=False,
        description="the step failed, but reconciliation found an effect under its key",
    )


# --- workflow in/out ------------------------------------------------------------------


class ResolutionInput(Frozen):
    request: Request
    policy: PolicyConfig = PolicyConfig()
    timeouts: Timeouts = Timeouts()
    model_queue: str = MODEL_QUEUE


class Outcome(Frozen):
    """Every outcome answers: what was attempted, why it was allowed, what changed."""

    request_id: str
    workflow_id: str
    intent: str | None
    decision: Decision
    mode: Mode
    answer: str
    citations: list[str]
    proposal: Proposal | None
    verification: Verification | None
    freshness: FreshnessReport
    actions: list[ToolResult]
    compensations: list[ToolResult] = Field(default=[], description="saga: undone in reverse order")
    reviews: list[ReviewRecord]
    edits: list[EditRecord] = []
    # The best retrieval score seen (None without evidence): watched for drift.
    top_score: float | None = None
    # The evidence and the order as they were when decided: evaluation datasets replay
    # candidates against them.
    evidence: Evidence | None = None
    order: OrderSnapshot | None = None
    request: Request | None = None
    followup_required: bool
    model: ModelIdentity | None
    started_at: datetime
    finished_at: datetime

    @property
    def latency_ms(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() * 1000


class WorkflowStatus(Frozen):
    request_id: str
    stage: Stage
    mode: Mode
    intent: str | None
    decision: Decision | None
    pending: PendingApproval | None
    reviews: list[ReviewRecord]
    request: Request | None = None  # the ticket, for the approver to read


# --- knowledge ingest -----------------------------------------------------------------


class IngestInput(Frozen):
    """One knowledge source: a directory (markdown, text, HTML) or an HTTP URL, with the
    freshness rule for documents that carry none of their own."""

    source: str = Field(default="kb", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    path: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://")
    max_age_days: int = Field(default=30, gt=0)
    valid_until: datetime | None = None

    @model_validator(mode="after")
    def _one_location(self) -> IngestInput:
        if (self.path is None) == (self.url is None):
            raise ValueError("a source is a directory path or a URL, exactly one")
        return self


class RefreshInput(Frozen):
    sources: list[IngestInput] = Field(min_length=1)


class IngestReport(Frozen):
    documents: int
    chunks: int
    embedded: int
    removed: int
    refreshed_at: datetime
    source: str = "kb"
    not_modified: bool = Field(default=False, description="the source answered 304")
    error: str | None = None


# --- feedback that arrives later ------------------------------------------------------


class LaterFeedback(Frozen):
    """What happened after the outcome: a complaint, a reversal, a clawed-back refund."""

    request_id: str = Field(pattern=_IDENT)
    kind: Literal["complaint", "reversal", "clawback", "confirmation", "correction"]
    detail: str = Field(min_length=1, max_length=2_000)
    source: str = Field(default="api", max_length=64)
    at: datetime | None = None  # when it happened; default: when it is recorded
