"""The steps every governed run shares: retrieve, propose (with the bounded repair), verify.
ResolutionWorkflow and ShadowEvaluationWorkflow call these same functions (and the same
``tether.policy.decide``), so production and shadow cannot drift apart. Every activity here
has a timeout and a bounded retry policy; what cannot be had becomes a fact (no evidence, no
proposal, no verification) that policy then answers for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from tether import errors, names
    from tether.activities.model import QueueActivities, QueueCheck
    from tether.activities.policy import KeyCheck, PinRequest, PolicyActivities
    from tether.activities.records import RecordActivities
    from tether.activities.retrieval import RetrievalActivities
    from tether.activities.verification import VerificationActivities
    from tether.config import PolicyConfig, Timeouts
    from tether.contracts import (
        Evidence,
        Facts,
        Finding,
        FreshnessReport,
        Mode,
        PinnedPolicy,
        ProposeInput,
        RawProposal,
        Reason,
        Request,
        RetrievalQuery,
        ReuseQuery,
        TallyHold,
        Verification,
        VerifyInput,
    )
    from tether.domain import DomainPack
    from tether.overlay import Overlay, OverlayQuery, governing, unreadable
    from tether.policy import argument_total, writes_of
    from tether.reuse import key_for
    from tether.tools import ProposalInvalid


# Patches, each the change a run takes when it carries the patch's marker; histories from
# before replay the path they recorded.
# The workers' own bookkeeping (pinning the policy, recording the outcome) runs as local
# activities (in the worker that runs the workflow, recorded as a marker, no task for the
# server to schedule, dispatch and complete), and search attributes are written where a run
# comes to rest.
LEAN_HISTORY = "lean-history"
# A proposal that waited too long for a model worker asks whether the model queue is served
# before it gives up on the model.
MODEL_BACKLOG = "model-backlog"
# What runs took before LATEST: every change above, and since then: facts that do not
# depend on each other gathered at once (evidence beside the records the request names,
# verification beside the tallies), the runtime's own reads as local activities, and no
# search-attribute write for the attributes the client started the run with. One marker (and
# one write of TemporalChangeVersion) for all of them, not one per change.
CURRENT = "governed-2026-12"
# A request that matches an earlier one takes its proposal while the evidence it cited has
# not changed (tether/reuse.py). Taken only where the pinned policy turns reuse on.
REUSE = "proposal-reuse"
# A request the domain's live candidate samples starts the candidate's shadow run beside it
# (a child it does not wait for). Taken only where the pinned policy carries a candidate.
SHADOW = "live-shadow"
# A decision that would write on its own first reads the conservative overlay of its domain
# and intent (tether/overlay.py), which may make it wait for a person. Runs under CURRENT
# exist in recorded histories without the read.
OVERLAY = "self-protection-overlay"
# A live candidate on the live model (a policy version alone; its policy pinned with the
# live one) decides inside the live run, on the live proposal and verification: the two
# policies are compared on the same answer, and the candidate costs no model call, no
# verification and no run of its own. Its decision is kept beside the outcome.
SHADOW_IN_RUN = "shadow-in-run"
# A candidate with a run of its own is started by a local activity beside the outcome's
# record (or before a wait for a person), not as a child: the live run then takes no workflow
# task for the child's start.
SHADOW_STARTED = "shadow-started-beside"
# What a run started today takes: all CURRENT takes, and OVERLAY, SHADOW_IN_RUN and
# SHADOW_STARTED. One marker and one write of TemporalChangeVersion again, where each of
# those changes had added its own to every run (3 of a governed request's 38 events).
LATEST = "governed-2026-12-06"
# What a run started since takes: all LATEST takes, and the policy pinned beside the
# runtime's reads of the records the request names (two local activities at once, not one
# after the other), retrieval dispatched once both are in. Replaces LATEST's marker: still
# one marker and one write of TemporalChangeVersion per run.
PIN_BESIDE_READS = "governed-2026-12-06-pin"
# What a run started since takes: all PIN_BESIDE_READS takes, and people's text held to what
# a terminal can show (a review's reason, an edit's answer and arguments with a control or
# invisible character are refused at the door, the Update's validator), and an edited answer
# carried into the outbound arguments (a message body) that held the model's. Replaces
# PIN_BESIDE_READS's marker.
REVIEWED_TEXT = "governed-2026-12-07"
# What a run started since takes: all REVIEWED_TEXT takes, and a verdict counts only signed
# over a hash of the proposal pending (a signature for another run's proposal under the same
# id approves nothing), and the approval queue's memo follows a request put to people again.
# Replaces REVIEWED_TEXT's marker.
SIGNED_PROPOSAL = "governed-2026-12-07-signed"
# What a run started since takes: all SIGNED_PROPOSAL takes, and an intent's own (lower)
# thresholds apply to a write only when that intent's plan names it (tether.policy.decide,
# ``plans``). Replaces SIGNED_PROPOSAL's marker.
PLANNED_WRITES = "governed-2026-12-07-plans"
# What a run started since takes: all PLANNED_WRITES takes, and an intent's own thresholds
# apply only where the verifier reads the request as that intent too (tether.policy.decide,
# ``read``). Replaces PLANNED_WRITES's marker.
READ_INTENT = "governed-2026-12-07-intent"
# What a run started since takes: all READ_INTENT takes, and the first attempt of each of the
# plan's tool calls (and of the runtime's reads) runs as a local activity (in the workflow's
# worker, which serves the tools; its result a marker in history), so a decision, calls that
# answer and the outcome's record complete in one workflow task. A failure worth trying again
# gets the rest of the step's budget as a dispatched activity with the same key (effects.py,
# ``_first_beside``): a failing target holds a workflow task for one attempt at most.
# Compensations and reconciliation stay dispatched. Replaces READ_INTENT's marker.
LOCAL_TOOLS = "governed-2026-12-08-tools"


def current() -> bool:
    """Whether this run takes every change CURRENT names: every run started since does."""
    return latest() or workflow.patched(CURRENT)


def latest() -> bool:
    """Whether this run takes every change LATEST names: every run started since does."""
    return pin_beside_reads() or workflow.patched(LATEST)


def pin_beside_reads() -> bool:
    """Whether this run pins its policy beside its reads: every run started since does."""
    return reviewed_text() or workflow.patched(PIN_BESIDE_READS)


def reviewed_text() -> bool:
    """Whether this run checks people's text and carries an edited answer: every run started
    since does."""
    return signed_proposal() or workflow.patched(REVIEWED_TEXT)


def signed_proposal() -> bool:
    """Whether this run takes only verdicts signed over the proposal pending: every run
    started since does."""
    return planned_writes() or workflow.patched(SIGNED_PROPOSAL)


def planned_writes() -> bool:
    """Whether an intent's own thresholds reach only the writes its plan names in this run:
    every run started since does."""
    return read_intent() or workflow.patched(PLANNED_WRITES)


def read_intent() -> bool:
    """Whether an intent's own thresholds need the verifier's reading of the request to
    agree in this run: every run started since does."""
    return local_tools() or workflow.patched(READ_INTENT)


def local_tools() -> bool:
    """Whether this run makes each tool call's first attempt a local activity: every run
    started today does."""
    return workflow.patched(LOCAL_TOOLS)


def since(patch: str) -> bool:
    """Whether this run takes ``patch``'s change, one CURRENT names: every run under CURRENT
    or later does; an older history only if it carries that patch's own marker."""
    return current() or workflow.patched(patch)


def since_latest(patch: str) -> bool:
    """The same for a change made after CURRENT, one LATEST names: a history recorded under
    CURRENT takes it only if it carries the change's own marker."""
    return latest() or workflow.patched(patch)


def no_evidence(request: Request) -> Evidence:
    """Evidence when retrieval could not run: none at all, flagged as stale so that policy
    lets nothing write without a human."""
    return Evidence(
        query=request.text,
        passages=[],
        freshness=FreshnessReport(
            index_refreshed_at=None, index_age_seconds=None, stale_index=True
        ),
    )


async def pin_policy(
    domain: str, timeouts: Timeouts, version: str | None = None, *, request_id: str | None = None
) -> PinnedPolicy:
    """The workers' policy for ``domain`` (the active version, or the one named), recorded in
    this history with its hash, and for a live ``request_id`` whether it is resolved already.
    Without a policy nothing can be decided: the workflow fails, saying why, before anything
    has run. A local activity: a store read is no reason for a round trip through the
    Temporal server (histories from before keep their activity)."""
    if since(LEAN_HISTORY):
        return await workflow.execute_local_activity_method(
            PolicyActivities.pin_policy,
            PinRequest(domain=domain, version=version, request_id=request_id),
            start_to_close_timeout=timeouts.record,
            retry_policy=timeouts.default_retry.policy(non_retryable=[errors.NO_POLICY]),
        )
    return await workflow.execute_activity_method(
        PolicyActivities.pin_policy,
        PinRequest(domain=domain, version=version),
        start_to_close_timeout=timeouts.record,
        retry_policy=timeouts.default_retry.policy(non_retryable=[errors.NO_POLICY]),
    )


async def key_revoked(domain: str, key_id: str, timeouts: Timeouts) -> bool:
    """Whether the workers' active directory has revoked ``key_id`` by now (after this
    workflow pinned its own). Unreadable counts as revoked: a verdict is not taken on trust."""
    try:
        revoked_at = await workflow.execute_activity_method(
            PolicyActivities.key_revoked_at,
            KeyCheck(domain=domain, key_id=key_id),
            start_to_close_timeout=timeouts.record,
            retry_policy=timeouts.default_retry.policy(),
        )
    except ActivityError as err:
        workflow.logger.warning("could not read key %s's status: %s", key_id, err.cause)
        return True
    return revoked_at is not None and workflow.now() >= revoked_at


def unanswered(facts: Facts) -> Facts:
    """``facts`` without the model's answer: what a candidate proposes on."""
    return facts.model_copy(
        update={
            "mode": Mode.NORMAL,
            "proposal": None,
            "verification": None,
            "model": None,
            "model_failure": None,
            "repairs": [],
            "reuse_key": None,
            "reused_from": None,
        }
    )


async def overlay_at_decision(
    pinned: PinnedPolicy, intent: str | None, pinned_at: datetime, timeouts: Timeouts
) -> Overlay | None:
    """The conservative overlay that governs this decision on ``intent``: from the overlays
    read with the pin while they are at most the policy's ``overlay_pinned_for`` old (no
    second read: the pin is in this history), else read now."""
    fresh = workflow.now() - pinned_at <= pinned.policy.overlay_pinned_for
    if pinned.overlays is not None and fresh:
        return governing(pinned.overlays, pinned.domain, intent)
    return await read_overlay(pinned.domain, intent, timeouts)


async def read_overlay(domain: str, intent: str | None, timeouts: Timeouts) -> Overlay | None:
    """The conservative overlay on for ``intent`` in ``domain`` now, if any: a local
    activity, so the answer is a marker in this history. Unreadable counts as on: a write
    is not let go on an answer nobody could read."""
    try:
        return await workflow.execute_local_activity_method(
            RecordActivities.active_overlay,
            OverlayQuery(domain=domain, intent=intent),
            start_to_close_timeout=timeouts.record,
            retry_policy=timeouts.default_retry.policy(),
        )
    except FailureError as err:
        workflow.logger.warning("could not read the overlay, assuming it on: %s", err)
        return unreadable(domain, intent, workflow.now(), str(err))


async def retrieve(
    domain: str, request: Request, timeouts: Timeouts, compute_queue: str | None = None
) -> Evidence:
    try:
        return await workflow.execute_activity_method(
            RetrievalActivities.retrieve_evidence,
            RetrievalQuery(domain=domain, text=request.text, request_id=request.request_id),
            task_queue=compute_queue,
            start_to_close_timeout=timeouts.retrieval,
            retry_policy=timeouts.default_retry.policy(non_retryable=[errors.UNKNOWN_DOMAIN]),
        )
    except ActivityError as err:
        workflow.logger.warning("retrieval failed, continuing without evidence: %s", err.cause)
        return no_evidence(request)


def _model_failure(cause: BaseException | None) -> Reason:
    kind = cause.type if isinstance(cause, ApplicationError) else None
    code = {
        errors.CIRCUIT_OPEN: "circuit_open",
        errors.MODEL_REJECTED: "model_rejected",
        errors.UNKNOWN_DOMAIN: "domain_not_served",  # the model worker lacks the pack
    }.get(kind or "", "model_unavailable")
    return Reason(code=code, detail=f"no proposal, answering from passages only: {cause}"[:300])


def _waited_in_line(err: ActivityError) -> bool:
    """No model worker started the call in time: a backlog or an outage (asked next)."""
    cause = err.cause
    return isinstance(cause, TimeoutError) and cause.type is TimeoutType.SCHEDULE_TO_START


async def _model_queue_served(model_queue: str, timeouts: Timeouts) -> bool:
    """Whether a model worker polled ``model_queue`` lately. Unknown counts as not served:
    the request then degrades, as it did before this question was asked."""
    try:
        state = await workflow.execute_activity_method(
            QueueActivities.model_queue_state,
            QueueCheck(
                task_queue=model_queue,
                within=timeouts.model_start_to_close + timedelta(seconds=10),
            ),
            start_to_close_timeout=timeouts.record,
            retry_policy=timeouts.default_retry.policy(),
        )
    except ActivityError as err:
        workflow.logger.warning("could not tell a busy model queue from a dead one: %s", err)
        return False
    return state.served


async def reuse(
    facts: Facts, pack: DomainPack, policy: PolicyConfig, timeouts: Timeouts, model_queue: str
) -> Facts:
    """An earlier proposal, if the pinned policy allows reuse, the pack's match finds one and
    every passage it cited is unchanged in this request's evidence (tether/reuse.py): the
    facts as if the model had just proposed it, for the verifier and policy to judge again.
    The lookup's answer is recorded in the history (a local activity's marker), so a replay
    takes the same path. A lookup that fails, or a proposal this pack no longer accepts,
    is no hit: the model is asked."""
    if policy.proposal_reuse is None:
        return facts
    match = pack.reuse_match(facts.request, facts.context)
    if match is None or not workflow.patched(REUSE):
        return facts
    facts = facts.model_copy(update={"reuse_key": key_for(facts.domain, model_queue, match)})
    assert facts.reuse_key is not None
    try:
        found = await workflow.execute_local_activity_method(
            RecordActivities.reusable_proposal,
            ReuseQuery(
                domain=facts.domain,
                key=facts.reuse_key,
                subject=facts.request.subject,
                evidence=facts.evidence,
                max_age=policy.proposal_reuse,
            ),
            start_to_close_timeout=timeouts.record,
            retry_policy=timeouts.default_retry.policy(),
        )
    except FailureError as err:
        workflow.logger.warning("proposal reuse not looked up: %s", err)
        return facts
    if found is None:
        return facts
    try:
        proposal = pack.tools.validate_proposal(
            found.proposal.model_dump_json(), intents=pack.intents
        )
    except ProposalInvalid as invalid:
        workflow.logger.info("kept proposal no longer valid here: %s", invalid)
        return facts
    return facts.model_copy(
        update={
            "mode": Mode.NORMAL,
            "proposal": proposal,
            "model": found.model,
            "reused_from": found.request_id,
        }
    )


async def propose(
    facts: Facts,
    pack: DomainPack,
    policy: PolicyConfig,
    timeouts: Timeouts,
    model_queue: str,
    waiting: Callable[[], None] | None = None,
) -> Facts:
    """Ask the model, validate, repair up to the bound; else change operating mode: no
    model -> retrieval-only, no valid proposal after the repairs -> human draft.

    A call no model worker started within ``model_schedule_to_start`` is not yet "no model":
    if workers are polling the queue, it is a backlog, and the request waits in line
    (``waiting`` is told, the stage says so) for up to ``model_queue_patience``."""
    repair_errors: list[str] = []
    refused: list[list[str]] = []  # kept on the outcome: why each answer was not taken
    model = None
    attempt = 0
    in_line_since = None
    while attempt <= policy.max_repairs:
        try:
            raw: RawProposal = await workflow.execute_activity(
                names.PROPOSE,
                ProposeInput(
                    domain=facts.domain,
                    request=facts.request,
                    evidence=facts.evidence,
                    context=facts.context,
                    tool_catalogue=pack.tools.catalogue(),
                    intents=list(pack.intents),
                    instructions=pack.instructions,
                    repair_errors=repair_errors,
                    attempt=attempt,
                ),
                result_type=RawProposal,
                task_queue=model_queue,
                schedule_to_start_timeout=timeouts.model_schedule_to_start,
                start_to_close_timeout=timeouts.model_start_to_close,
                schedule_to_close_timeout=timeouts.model_budget,
                retry_policy=timeouts.model_retry.policy(),
                summary=f"propose (attempt {attempt + 1})",
            )
        except ActivityError as err:
            failure = _model_failure(err.cause)
            if _waited_in_line(err):
                in_line_since = in_line_since or workflow.now()
                if workflow.now() - in_line_since >= timeouts.model_queue_patience:
                    failure = Reason(
                        code="model_busy",
                        detail="no proposal: the model queue was served but busy for "
                        f"{timeouts.model_queue_patience}; answering from passages only",
                    )
                elif since(MODEL_BACKLOG) and await _model_queue_served(model_queue, timeouts):
                    workflow.logger.info("model queue busy, waiting in line")
                    if waiting is not None:
                        waiting()
                    continue
            workflow.logger.warning("model unavailable, retrieval-only mode: %s", err.cause)
            return facts.model_copy(
                update={
                    "mode": Mode.RETRIEVAL_ONLY,
                    "model": model,
                    "model_failure": failure,
                    "repairs": refused,
                }
            )
        attempt += 1
        model = raw.model
        try:
            proposal = pack.tools.validate_proposal(raw.content, intents=pack.intents)
        except ProposalInvalid as invalid:
            workflow.logger.info("proposal invalid (attempt %d): %s", attempt, invalid)
            repair_errors = invalid.errors
            refused.append(invalid.errors)
            continue
        return facts.model_copy(
            update={"mode": Mode.NORMAL, "model": model, "proposal": proposal, "repairs": refused}
        )
    return facts.model_copy(update={"mode": Mode.HUMAN_DRAFT, "model": model, "repairs": refused})


async def verify(facts: Facts, timeouts: Timeouts, compute_queue: str | None = None) -> Facts:
    """The verifier's findings, or, when it cannot run, a finding that says so (which sends
    the proposal to a human: nothing unverified acts on its own)."""
    if facts.proposal is None:
        return facts
    try:
        verification = await workflow.execute_activity_method(
            VerificationActivities.verify_proposal,
            VerifyInput(
                domain=facts.domain,
                request=facts.request,
                evidence=facts.evidence,
                context=facts.context,
                proposal=facts.proposal,
            ),
            task_queue=compute_queue,
            start_to_close_timeout=timeouts.verification,
            retry_policy=timeouts.default_retry.policy(non_retryable=[errors.UNKNOWN_DOMAIN]),
        )
    except ActivityError as err:
        workflow.logger.warning("verifier unavailable: %s", err.cause)
        verification = Verification(
            grounding=0.0,
            sentences=0,
            findings=[Finding(code="verifier_unavailable", severity="warn", detail=str(err.cause))],
        )
    return facts.model_copy(update={"verification": verification})


async def tally(facts: Facts, pack: DomainPack, policy: PolicyConfig, timeouts: Timeouts) -> Facts:
    """For each of the pack's tallies with a window in the policy: hold what this proposal
    would add on its subject, and learn what the subject's other requests add up to. A total
    that cannot be had is left out, and policy asks a person (tally_unknown)."""
    if facts.proposal is None:
        return facts
    totals: dict[str, int] = {}
    for spec in pack.tallies:
        window = policy.tally_windows.get(spec.name)
        if window is None:
            continue
        amount = argument_total(writes_of(facts, pack.tools), pack.tools, spec.argument)
        if not amount and spec.name not in facts.tallies:
            continue  # nothing to hold, nothing held: a plan without it needs no count
        try:
            totals[spec.name] = await workflow.execute_activity_method(
                RecordActivities.hold_tally,
                TallyHold(
                    domain=facts.domain,
                    name=spec.name,
                    subject=facts.request.subject,
                    request_id=facts.request.request_id,
                    amount=amount,
                    window=window,
                ),
                start_to_close_timeout=timeouts.record,
                retry_policy=timeouts.default_retry.policy(),
            )
        except ActivityError as err:
            workflow.logger.warning("tally %s unknown: %s", spec.name, err.cause)
    return facts.model_copy(update={"tallies": totals})
