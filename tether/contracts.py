"""Pydantic contracts for every boundary: client, workflow, activities, updates, records.

One model in and one model out everywhere; new fields get defaults so that histories
recorded with older code keep decoding. (The domain-pack redesign broke that once, on
purpose, before any deployment: the recorded histories were made again with it.)
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from tether.config import PolicyConfig, Timeouts
from tether.names import MODEL_QUEUE

IDENT = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
KIND = r"^[a-z][a-z0-9_]{0,31}$"
DOMAIN = r"^[a-z][a-z0-9_-]{0,31}$"
M = TypeVar("M", bound=BaseModel)


class Stage(StrEnum):
    RECEIVED = "received"
    RETRIEVING = "retrieving"
    PROPOSING = "proposing"
    WAITING_FOR_MODEL = "waiting_for_model"  # the model queue is busy: in line
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
    """A ticket: who asks, on whose behalf, what they wrote and which records it points at.
    The core checks its shape; the domain pack checks its references (DomainPack.problems)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    request_id: str = Field(
        pattern=IDENT, description="caller's id; the workflow id derives from it"
    )
    subject: str = Field(pattern=IDENT, description="on whose behalf: whose records these are")
    requester: str = Field(pattern=IDENT, description="who submitted it; may never approve it")
    text: str = Field(min_length=3, max_length=4_000)
    channel: Literal["email", "chat", "api"] = "api"
    # kind -> ids (kinds are the pack's); the text may name more, which the pack finds.
    references: dict[str, list[str]] = Field(default={}, max_length=8)

    @field_validator("references", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("references")
    @classmethod
    def _plain_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for kind, ids in value.items():
            if not re.fullmatch(KIND[1:-1], kind):
                raise ValueError(f"{kind!r} is not a reference kind (lower-case name)")
            if not 1 <= len(ids) <= 16 or not all(re.fullmatch(IDENT[1:-1], i) for i in ids):
                raise ValueError(f"{kind}: 1 to 16 plain ids")
        return value


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


# not_yet_effective: a version announced ahead (its effective_date after today), which
# neither serves nor supersedes the version in force until its day comes.
DropReason = Literal["superseded", "stale", "duplicate", "low_score", "budget", "not_yet_effective"]


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
    domain: str
    text: str
    request_id: str


class Evidence(Frozen):
    query: str
    passages: list[Passage]
    freshness: FreshnessReport


class ContextRecord(Frozen):
    """A record read from a business system before proposing (the pack's lookup tool's
    answer): the model reads it, the verifier accepts it as a citation, policy and the audit
    see it as it was. ``data`` is the lookup tool's typed output, dumped."""

    kind: str
    id: str
    data: dict[str, Any]
    text: str = Field(description="the record in words: quoted to the model, cited by it")
    owner: str | None = Field(default=None, description="the subject it belongs to, if any")

    @property
    def citation_id(self) -> str:
        return f"{self.kind}:{self.id}"

    def typed(self, model: type[M]) -> M:
        """The record as the pack's own model."""
        return model.model_validate(self.data)


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
    # A number, as the schema says: not true, nor "0.9" (what else would be read loosely?).
    confidence: float = Field(ge=0.0, le=1.0, strict=True)


class ModelIdentity(Frozen):
    provider: str
    model: str
    fingerprint: str


class ProposeInput(Frozen):
    domain: str
    request: Request
    evidence: Evidence
    context: list[ContextRecord] = []
    tool_catalogue: list[dict[str, Any]]
    intents: list[str] = []
    instructions: str = Field(default="", description="the pack's words for the model")
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
    # What was checked: the answer's grounding, the tool arguments against the request (checked
    # again when an approver edits them), or the context records.
    about: Literal["answer", "arguments", "context"] = "answer"


class VerifyInput(Frozen):
    domain: str
    request: Request
    evidence: Evidence
    context: list[ContextRecord] = []
    proposal: Proposal


class Verification(Frozen):
    grounding: float = Field(ge=0.0, le=1.0, description="share of answer sentences grounded")
    sentences: int
    findings: list[Finding] = []
    # The intent the verifier reads in the request (tether.intents), whoever proposed: an
    # intent's own thresholds apply only where it agrees with the proposal's. None: not read
    # (a pack that labels no examples, or a verification recorded before it read one, which
    # ``intent_read`` tells apart).
    intent: str | None = None
    intent_read: bool = False

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


SHA256 = r"^[0-9a-f]{64}$"


class Signature(Frozen):
    """An approver's Ed25519 signature over what they decided (tether/signing.py: the
    workflow, the proposal version and a hash of the proposal shown, the verdict, the reason,
    a hash of any edit, the time)."""

    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    signed_at: AwareDatetime  # compared with the workflow's time: a zone is required
    value: str = Field(pattern=r"^[A-Za-z0-9+/]{86}==$", description="base64, 64 bytes")


class Review(Frozen):
    """An approver's verdict, sent as an Update (or a signal, for tools that can only signal).
    It counts only signed by a key the pinned approver directory holds for ``approver``."""

    approver: str = Field(pattern=IDENT)
    verdict: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=2_000)
    proposal_version: int | None = None
    proposal_sha256: str | None = Field(default=None, pattern=SHA256)  # of the one shown
    signature: Signature | None = None

    @field_validator("reason")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class Edit(Frozen):
    """An approver's changed version of the pending proposal: a new answer, new tool calls,
    or both. Checked against the same contracts and policy as the model's, and against the
    editor's own limits; accepted, it is approved and executed as edited."""

    approver: str = Field(pattern=IDENT)
    reason: str = Field(min_length=1, max_length=2_000)
    proposal_version: int | None = None
    proposal_sha256: str | None = Field(default=None, pattern=SHA256)  # of the one shown
    answer: str | None = Field(default=None, min_length=1, max_length=4_000)
    tool_calls: list[ToolCall] | None = Field(default=None, max_length=8)
    signature: Signature | None = None

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
    # reopened: approved, then judged again on a fresh read, it needs a higher tier
    verdict: Literal["approve", "reject", "expired", "refused", "reopened"]
    reason: str
    tier: int
    at: datetime
    key_id: str | None = Field(default=None, description="the key that signed the verdict")


class ReviewReceipt(Frozen):
    accepted: bool
    tier: int
    detail: str
    tier_name: str | None = None  # the tier as the policy names it ("lead")


# --- tools ---------------------------------------------------------------------------


class ToolInvocation(Frozen):
    """One tool call as executed: the idempotency key travels to the target system."""

    domain: str
    tool: str
    arguments: dict[str, Any]
    idempotency_key: str
    request_id: str
    granted: list[str] = Field(
        default=[], description="permissions the decision (or the runtime) granted this call"
    )
    # The request's subject: a record read for it must be its own (else NotSubjectsRecord).
    subject: str | None = None


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
    """What a caller may choose: the domain and the request. Never the policy: the workflow
    pins the workers' active version (PinnedPolicy) at its start."""

    domain: str = Field(pattern=DOMAIN, description="the pack that governs the request")
    request: Request
    timeouts: Timeouts = Timeouts()
    model_queue: str = MODEL_QUEUE

    @field_validator("timeouts")
    @classmethod
    def _kept_going(cls, timeouts: Timeouts) -> Timeouts:
        """The caller's, but the outcome's record and compensations never give up."""
        return timeouts.kept_going()


class LiveCandidate(Frozen):
    """A candidate running beside live traffic (tether candidate start): a policy version
    and/or a model queue, for a share of a domain's requests. It decides in a shadow run that
    no worker lets call a tool (tether/shadowguard.py); only promotion makes it govern."""

    name: str = Field(pattern=IDENT, max_length=64)
    policy_version: str | None = Field(default=None, max_length=64)
    model_queue: str | None = Field(default=None, max_length=200)
    share: float = Field(gt=0, le=1, allow_inf_nan=False)


# --- the conservative overlay (tether/overlay.py applies it) ---------------------


def scope(domain: str, intent: str | None) -> str:
    """``domain`` for the whole domain, ``domain/intent`` for one intent of it."""
    return domain if intent is None else f"{domain}/{intent}"


class Burn(Frozen):
    """One budget's fast burn, as the switch saw it."""

    scorer: str
    target: float
    scored: int
    good_share: float
    burn_rate: float
    threshold: float


class BurnEvidence(Frozen):
    """Why the runtime switched: the short window and the budgets burning in it."""

    since: datetime
    until: datetime
    budgets: list[Burn]


class Overlay(Frozen):
    """One switch to the conservative overlay, as the store keeps it (active while
    ``cleared_at`` is None)."""

    id: int
    domain: str = Field(pattern=DOMAIN)
    intent: str | None = Field(default=None, description="None: the whole domain")
    set_at: datetime
    set_by: str
    reason: str
    evidence: BurnEvidence | None = Field(default=None, description="None: set by a person")
    # The last evaluation run that found its scope still burning (hysteresis counts from it).
    last_burning_at: datetime | None = None
    cleared_at: datetime | None = None
    cleared_by: str | None = None
    clear_reason: str | None = None

    @property
    def scope(self) -> str:
        return scope(self.domain, self.intent)

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    def covers(self, domain: str, intent: str | None) -> bool:
        return self.domain == domain and self.intent in (None, intent)


class PinnedPolicy(Frozen):
    """A policy version as a workflow pinned it: read by an activity from the workers' store,
    recorded in history with its content hash, kept to the end."""

    domain: str
    version: str
    sha256: str
    policy: PolicyConfig
    # Where these workers run retrieval and verification (Settings.compute_queue), read with
    # the policy because it is theirs too; None: the workflow's own task queue.
    compute_queue: str | None = None
    # Where these workers' model answers (Settings.model_queue), and the other queues a caller
    # may name (Settings.model_queues, fnmatch patterns): whoever starts a request does not
    # choose who answers it. None: a run pinned before 2026-12-07 (the input's queue).
    model_queue: str | None = None
    model_queues: list[str] = []
    # The domain's live candidate when the active version was pinned, if any: read with the
    # policy, so whether a request was shadowed is in its history.
    shadow: LiveCandidate | None = None
    # Where these workers run live candidates (Settings.shadow_queue); None: the workflow's
    # own task queue.
    shadow_queue: str | None = None
    # A candidate on the live model decides inside the live run, on its proposal: its policy
    # version's content, pinned here with the live one.
    shadow_policy: PolicyConfig | None = None
    # The domain's conservative overlays on at the pin, read with the policy: a decision soon
    # after the pin takes its overlay from here (tether/overlay.py). None: not read (a pin of
    # a named version, a store that could not be read, a history from before), and the
    # decision reads the overlay itself.
    overlays: list[Overlay] | None = None
    # When an earlier run under this request's workflow id recorded its outcome (a run
    # started again with the id, by hand or to replace it): this run refuses to act. None:
    # none recorded, or a pin from before 2026-12-07's third session.
    resolved_at: datetime | None = None

    def answering(self, asked: str) -> str:
        """The model queue a request that asked for ``asked`` is answered on."""
        if self.model_queue is None or asked == self.model_queue:
            return asked
        return asked if any(fnmatchcase(asked, p) for p in self.model_queues) else self.model_queue


class ReuseQuery(Frozen):
    """Is there a proposal to reuse (tether/reuse.py)? ``key`` is the stored key."""

    domain: str
    key: str
    subject: str
    evidence: Evidence
    max_age: timedelta


class Reused(Frozen):
    """A proposal reused: whose it was and the model that made it."""

    request_id: str
    proposal: Proposal
    model: ModelIdentity | None


class Facts(Frozen):
    """What a decision is made on, gathered and judged once: the request, the evidence, the
    context records, what the model proposed (or why it did not) and what the verifier found.
    Policy rules, the approval gate, the audit and shadow replays all read this one model."""

    domain: str
    request: Request
    evidence: Evidence
    context: list[ContextRecord] = []
    mode: Mode = Mode.NORMAL
    proposal: Proposal | None = None
    verification: Verification | None = None
    model: ModelIdentity | None = None
    # Why no proposal came, when known (e.g. circuit_open); recorded as the reason.
    model_failure: Reason | None = None
    # Each refused model answer's validation errors, in order.
    repairs: list[list[str]] = []
    # Records the request names that belong to another subject: never read into the context
    # (their data never left the business system), citation ids only.
    withheld: list[str] = []
    # Per tally (Tally.name): the subject's other requests' total over the policy's window.
    tallies: dict[str, int] = {}
    # Proposal reuse (tether/reuse.py): the key this request matched under, and the request
    # whose proposal it took instead of calling the model.
    reuse_key: str | None = None
    reused_from: str | None = None

    def records(self, kind: str) -> list[ContextRecord]:
        return [r for r in self.context if r.kind == kind]

    def record(self, kind: str, id: str | None = None) -> ContextRecord | None:
        """The record of ``kind`` (with ``id``, if given) that was read, or None."""
        return next((r for r in self.records(kind) if id is None or r.id == id), None)


class TallyHold(Frozen):
    """This request's share of a tally on its subject, held while it is open."""

    domain: str
    name: str
    subject: str
    request_id: str
    amount: int
    window: timedelta


class LiveShadowInput(Frozen):
    """A live request's facts for a candidate to decide on, as of the live decision's moment.
    For a candidate on another model queue: evidence, context and tallies, and it proposes on
    them. For one on the live model (a policy version alone): the live proposal and its
    verification too, so the two policies are compared on the same answer."""

    domain: str = Field(pattern=DOMAIN)
    candidate: LiveCandidate
    facts: Facts
    model_queue: str = Field(description="the live run's, for a candidate that names none")
    timeouts: Timeouts = Timeouts()
    decided_at: datetime
    # The live run's rules for an intent's thresholds (tether.policy.decide ``plans`` and
    # ``read``): the candidate is judged as the live request was. A live run recorded before
    # the verifier read intents sends no ``read``.
    plans: bool = True
    read: bool = False


class ShadowStart(Frozen):
    """A live candidate's own run, as the live run asks its worker to start it."""

    workflow_id: str
    task_queue: str
    input: LiveShadowInput
    priority: int = Field(ge=1)
    summary: str = ""


class ShadowDecision(Frozen):
    """What a candidate decided on a live request's facts; compared with the live decision
    and with what people did later (tether candidate status)."""

    request_id: str
    domain: str
    candidate: str
    policy_version: str
    action: DecisionAction
    mode: Mode
    reasons: list[str]
    intent: str | None
    grounding: float | None
    confidence: float | None
    planned: list[str] = Field(default=[], description="the tools the candidate's plan names")
    at: datetime
    # True: decided on the live run's proposal and verification (a candidate on the live
    # model); False: it proposed and was verified on its own.
    on_live_proposal: bool = False
    # The run that recorded it ("workflow id/run id"), set where it is recorded.
    recorded_by: str | None = None
    # A candidate's own run: the digest of the input it ran on (candidates.input_digest),
    # which must be the one its live run wrote down when it started it.
    input_sha256: str | None = None


class Outcome(Frozen):
    """Every outcome answers: what was attempted, why it was allowed, what changed."""

    domain: str
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
    compensations: list[ToolResult] = Field(default=[], description="saga: undone newest first")
    reviews: list[ReviewRecord]
    edits: list[EditRecord] = []
    # The best retrieval score seen (None without evidence): watched for drift.
    top_score: float | None = None
    # The evidence and the context the final decision was made on (after an approval, the
    # context read again): evaluation datasets replay candidates against them.
    evidence: Evidence | None = None
    context: list[ContextRecord] = []
    request: Request | None = None
    withheld: list[str] = Field(default=[], description="another subject's records, not read")
    repairs: list[list[str]] = Field(default=[], description="refused model answers' errors")
    # Per tally: the subject's other requests' total when decided, and what this request's
    # effects added (which settles its hold on the subject's total).
    tallies: dict[str, int] = {}
    tallied: dict[str, int] = {}
    followup_required: bool
    model: ModelIdentity | None
    policy_sha256: str | None = Field(default=None, description="of the pinned version")
    reuse_key: str | None = Field(default=None, description="tether/reuse.py: matched under")
    reused_from: str | None = Field(default=None, description="whose proposal it took")
    started_at: datetime
    finished_at: datetime

    @property
    def latency_ms(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() * 1000


class WorkflowStatus(Frozen):
    domain: str
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

    domain: str = Field(pattern=DOMAIN)
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
    domain: str
    documents: int
    chunks: int
    embedded: int
    removed: int
    refreshed_at: datetime
    source: str = "kb"
    not_modified: bool = Field(default=False, description="the source answered 304")
    error: str | None = None
    skipped: list[str] = Field(
        default=[],
        description="documents not read, 'name: why'; their chunks from before stay",
    )


# --- feedback that arrives later ------------------------------------------------------


# What later feedback says of an outcome, one named set per question asked of it:
# - its effect was undone (the reversals dataset);
UNDONE_FEEDBACK = frozenset({"reversal", "clawback"})
# - it did not resolve the request (the resolved_without_reversal scorer): undone, or the
#   requester complained; a correction is the business amending the record, not a verdict;
UNRESOLVED_FEEDBACK = UNDONE_FEEDBACK | {"complaint"}
# - its proposal was wrong (never reused again; a candidate that acted alone on it was
#   wrong): any of those, or a correction. The rest is a confirmation.
WRONG_FEEDBACK = UNRESOLVED_FEEDBACK | {"correction"}
# What a requester says of their request (a complaint, a confirmation): kept once per
# request and source, whatever the words, so that saying it again counts once.
VOICE_FEEDBACK = frozenset({"complaint", "confirmation"})


class LaterFeedback(Frozen):
    """What happened after the outcome: a complaint, a reversal, a correction."""

    request_id: str = Field(pattern=IDENT)
    kind: Literal["complaint", "reversal", "clawback", "confirmation", "correction"]
    detail: str = Field(min_length=1, max_length=2_000)
    source: str = Field(default="api", max_length=64)
    at: datetime | None = None  # when it happened; default: when it is recorded
    # Who vouches for it: an entry of the domain's approver directory (a person, or a
    # service such as the helpdesk with a role no tier names), proven by ``signature``
    # (tether/signing.py). What the learning loop counts is vouched for; the rest is kept
    # on the record, unverified.
    reporter: str | None = Field(default=None, min_length=1, max_length=200)
    signature: Signature | None = None

    @model_validator(mode="after")
    def _signed_by_its_reporter(self) -> LaterFeedback:
        if (self.reporter is None) != (self.signature is None):
            raise ValueError(
                "a reporter and a signature come together (tether feedback --reporter)"
            )
        return self
