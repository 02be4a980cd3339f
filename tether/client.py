"""The Python client API: submit requests, await outcomes, review pending approvals.

async with await Tether.connect() as tether:
    outcome = await tether.resolve(
        {"request_id": "t-1", "subject": "C-100", "requester": "C-100", "text": "..."},
        domain="support",
    )
    for item in await tether.pending():
        await tether.approve(item.request_id, approver="lead@example.com")

It starts and messages workflows by name (tether.names), so it needs no workflow code; it
loads the domain packs it validates requests with (Settings.domains) from their modules.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypedDict, Unpack

from pydantic import ValidationError
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    TLSConfig,
    WorkflowExecution,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from tether import errors, names, packs, search
from tether.audit import AuditEntry, audit
from tether.codec import data_converter
from tether.config import Settings
from tether.contracts import (
    Edit,
    IngestInput,
    IngestReport,
    LaterFeedback,
    Mode,
    Outcome,
    RefreshInput,
    Request,
    ResolutionInput,
    Review,
    ReviewReceipt,
    Stage,
    ToolCall,
    WorkflowStatus,
)
from tether.domain import DomainPack
from tether.errors import (
    ConfigurationError,
    FeedbackRefused,
    InvalidRequest,
    RequestConflict,
    ReviewRejected,
    TemporalUnreachable,
)
from tether.evaluation import EvaluationInput, EvaluationReport
from tether.knowledge import short_hash, source_name
from tether.metrics import runtime_for
from tether.names import workflow_id_for
from tether.shadow import Candidate, DatasetRef, ShadowInput, ShadowReport
from tether.signing import SigningKey, keyring, proposal_digest
from tether.tracing import interceptors


class Shown(TypedDict, total=False):
    """What an approver was shown, and the key they sign with (``Tether.review``)."""

    proposal_version: int | None
    proposal_sha256: str | None
    key: SigningKey | None


PENDING_QUERIES = 16  # workflow queries in flight while a page of approvals is read
DECIDE_WITHIN = timedelta(seconds=30)  # Tether.decide_within


def tls_config(settings: Settings) -> TLSConfig | bool | None:
    """What Client.connect's ``tls`` gets: None leaves it to the SDK (on with an API key)."""
    tls = settings.temporal_tls
    if not tls.wanted:
        return None
    if tls.server_ca is None and tls.client_cert is None and tls.server_name is None:
        return True  # the system's roots

    def read(path: Path | None, field: str) -> bytes | None:
        try:
            return path.read_bytes() if path else None
        except OSError as err:
            raise ConfigurationError([f"TETHER_TEMPORAL_TLS__{field.upper()}: {err}"]) from None

    return TLSConfig(
        server_root_ca_cert=read(tls.server_ca, "server_ca"),
        client_cert=read(tls.client_cert, "client_cert"),
        client_private_key=read(tls.client_key, "client_key"),
        domain=tls.server_name,
    )


async def connect(settings: Settings, *, serve_metrics: bool = False) -> Client:
    """``serve_metrics``: workers and the console, each serving TETHER_METRICS_ADDRESS
    (never a command's client, which would take the address from its own process). TLS, mTLS
    and an API key come from Settings (temporal_tls, temporal_api_key) for every process."""
    api_key = settings.temporal_api_key
    runtime = runtime_for(settings.metrics_address) if serve_metrics else None
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            tls=tls_config(settings),
            api_key=api_key.get_secret_value() if api_key else None,
            data_converter=data_converter(settings),
            runtime=runtime,
            interceptors=interceptors(settings.tracing),
        )
    except RuntimeError as err:  # the SDK's own type for it, with the transport's words inside
        if not str(err).startswith("Failed client connect"):
            raise
        raise TemporalUnreachable(settings.temporal_address, connect_failure(err)) from err
    except ValueError as err:  # the address itself: "invalid target URL: empty host"
        raise ConfigurationError(
            [f"TETHER_TEMPORAL_ADDRESS {settings.temporal_address!r}: {err}"]
        ) from None


def connect_failure(err: RuntimeError) -> str:
    """The innermost reason in the SDK's connect error (Rust debug text): 'Connection
    refused', 'failed to lookup address information: …', a server's own message; else the
    whole text."""
    text = str(err)
    said = re.findall(r'(?:message|error): "((?:[^"\\]|\\.)*)"', text)
    reason = said[-1].replace('\\"', '"') if said else text
    return reason.removeprefix("Failed client connect: ")


REFRESH_SCHEDULE = "tether-knowledge-refresh"
EVALUATION_SCHEDULE = "tether-live-evaluation"


def invalid(err: ValidationError, what: str) -> InvalidRequest:
    """Every field error of ``err``, as 'field: message' (``what`` when the whole is wrong)."""
    return InvalidRequest(
        [f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in err.errors()]
    )


DIGEST = "tether_request_digest"  # memo key: what the request id was first used for


def request_digest(domain: str, request: Request) -> str:
    """What a request is, but its id: a second submission under the same id must match."""
    body = {"domain": domain, **request.model_dump(mode="json", exclude={"request_id"})}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def parse_request(data: Request | Mapping[str, Any], pack: DomainPack) -> Request:
    """Validate before anything starts, as the core and as the pack see it; every problem is
    named with its field."""
    if isinstance(data, Request):
        request = data
    else:
        try:
            request = Request.model_validate(data)
        except ValidationError as err:
            raise invalid(err, "request") from None
    problems = pack.problems(request)
    if problems:
        raise InvalidRequest(problems)
    return request


def started_now(handle: WorkflowHandle[Any, Any]) -> bool | None:
    """Whether start_workflow started this run (the server says so in its response) rather
    than attaching to one already running; None when not known. The SDK keeps the response
    on the handle but offers no accessor; without it, the caller asks the server."""
    if handle.result_run_id is None:
        return False  # a handle to a workflow by id (submit found it already there)
    response = getattr(handle, "_start_workflow_response", None)
    started = getattr(response, "started", None)
    return started if isinstance(started, bool) else None


class Tether:
    def __init__(
        self,
        client: Client,
        settings: Settings | None = None,
        *,
        clock: Callable[[], Awaitable[datetime]] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or Settings()
        # The time a signature claims. Workflows judge it by their own clock, which is this
        # one in a deployment; a time-skipping test server's clock runs ahead (pass its own).
        self._clock = clock
        self.packs = packs.load(self.settings.domains)
        # How long a verdict waits for its workflow to take it: with no worker serving the
        # run, an Update would wait for one forever.
        self.decide_within = DECIDE_WITHIN

    def pack(self, domain: str | None = None) -> DomainPack:
        """The pack ``domain`` names, else the default one, else the only one this client
        serves; InvalidRequest if there is none."""
        served = {p.name: p for p in self.packs}
        name = domain or self.settings.default_domain
        if name is None and len(served) == 1:
            return next(iter(served.values()))
        if name is None:
            raise InvalidRequest(
                [
                    f"domain: this client serves {', '.join(sorted(served))}: name one "
                    "(--domain, or TETHER_DEFAULT_DOMAIN for every command)"
                ]
            )
        if name not in served:
            raise InvalidRequest([f"domain: {name!r} is not one of {sorted(served)}"])
        return served[name]

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> Tether:
        settings = settings or Settings()
        return cls(await connect(settings), settings)

    async def __aenter__(self) -> Tether:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    def handle(self, request_id: str) -> WorkflowHandle[Any, Outcome]:
        return self.client.get_workflow_handle(workflow_id_for(request_id), result_type=Outcome)

    async def submit(
        self,
        request: Request | Mapping[str, Any],
        *,
        domain: str | None = None,
        task_queue: str | None = None,
    ) -> WorkflowHandle[Any, Outcome]:
        """Start the request's workflow under its domain's pack, or attach to it if it already
        exists (never twice). An id already used for a different request (another subject,
        text or domain) is refused with RequestConflict, like an Idempotency-Key reused with
        other parameters, and nothing of that request is returned."""
        pack = self.pack(domain)
        req = parse_request(request, pack)
        digest = request_digest(pack.name, req)
        s = self.settings
        try:
            handle = await self.client.start_workflow(
                names.RESOLUTION,
                ResolutionInput(
                    domain=pack.name,
                    request=req,
                    timeouts=s.timeouts,
                    model_queue=s.model_queue,
                ),
                id=workflow_id_for(req.request_id),
                task_queue=task_queue or s.task_queue,
                result_type=Outcome,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo={DIGEST: digest},
                search_attributes=search.at_start(pack.name),
                # No subject or request text: every operator of the namespace reads the list.
                static_summary=f"{pack.name} request {req.request_id}",
                static_details=(
                    f"**domain** {pack.name}  \n**request** {req.request_id}  \n"
                    f"**model queue** {s.model_queue}"
                ),
            )
        except WorkflowAlreadyStartedError:
            handle = self.handle(req.request_id)  # already finished: same request, same outcome
        else:
            if started_now(handle):
                return handle  # with the memo just given: this request's
        # An earlier run attached to (or a server that does not say): it must be this request.
        memo = await (await handle.describe()).memo()
        if memo.get(DIGEST) != digest:
            raise RequestConflict(req.request_id)
        return handle

    async def resolve(
        self, request: Request | Mapping[str, Any], *, domain: str | None = None
    ) -> Outcome:
        return await (await self.submit(request, domain=domain)).result()

    async def outcome(self, request_id: str) -> Outcome:
        return await self.handle(request_id).result()

    async def audit(self, request_id: str) -> list[AuditEntry]:
        """Per side effect of a finished request: attempted, allowed because, changed."""
        return audit(await self.outcome(request_id))

    async def status(self, request_id: str) -> WorkflowStatus:
        status: WorkflowStatus = await self.handle(request_id).query(
            names.STATUS, result_type=WorkflowStatus
        )
        return status

    async def pending(
        self,
        *,
        queue: str | None = None,
        intent: str | None = None,
        mode: str | None = None,
        domain: str | None = None,
    ) -> list[WorkflowStatus]:
        """Every request waiting for a human (page after page of ``pending_page``)."""
        found: list[WorkflowStatus] = []
        token: bytes | None = None
        while True:
            page, token = await self.pending_page(
                queue=queue, intent=intent, mode=mode, domain=domain, next_page_token=token
            )
            found += page
            if token is None:
                return found

    async def pending_page(
        self,
        *,
        queue: str | None = None,
        intent: str | None = None,
        mode: str | None = None,
        domain: str | None = None,
        page_size: int = 100,
        next_page_token: bytes | None = None,
    ) -> tuple[list[WorkflowStatus], bytes | None]:
        """One page of the requests waiting for a human, found through search attributes
        (``queue`` is the approval tier's name; ``intent``, ``mode`` and ``domain`` as
        recorded), and the token of the next page (None after the last). Each one's state
        is queried from its workflow, a bounded number at a time."""
        if mode is not None and mode not in set(Mode):  # the core's, fixed: a typo finds none
            raise InvalidRequest([f"mode: {mode!r} is not one of {', '.join(Mode)}"])
        if domain is not None:
            self.pack(domain)  # one this client serves: a typo finds none, and says so
        clauses = [
            f"TetherStage = '{Stage.AWAITING_APPROVAL.value}'",
            "ExecutionStatus = 'Running'",
        ]
        for attribute, value in (
            ("TetherQueue", queue),
            ("TetherIntent", intent),
            ("TetherMode", mode),
            ("TetherDomain", domain),
        ):
            if value is not None:
                if not value.replace("_", "").replace("-", "").isalnum():
                    raise InvalidRequest([f"{attribute}: {value!r} is not a plain name"])
                clauses.append(f"{attribute} = '{value}'")
        listing = self.client.list_workflows(
            " AND ".join(clauses), page_size=page_size, next_page_token=next_page_token
        )
        await listing.fetch_next_page()
        slots = asyncio.Semaphore(PENDING_QUERIES)

        async def status(execution: WorkflowExecution) -> WorkflowStatus | None:
            listed = (await execution.memo()).get(names.PENDING_MEMO)
            if listed is not None:
                return WorkflowStatus.model_validate(listed)
            async with slots:  # started before approvals were listed in the memo: ask it
                try:
                    found: WorkflowStatus = await self.client.get_workflow_handle(
                        execution.id
                    ).query(names.STATUS, result_type=WorkflowStatus)
                    return found
                except RPCError:  # it finished between the listing and the query
                    return None

        statuses = await asyncio.gather(*(status(e) for e in listing.current_page or []))
        waiting = [s for s in statuses if s is not None and s.pending is not None]
        return waiting, listing.next_page_token or None

    async def review(
        self,
        request_id: str,
        *,
        approver: str,
        verdict: Literal["approve", "reject"],
        reason: str = "",
        proposal_version: int | None = None,
        proposal_sha256: str | None = None,
        key: SigningKey | None = None,
    ) -> ReviewReceipt:
        """A verdict on the pending proposal, signed with ``key`` (else the approver's key
        from ``Settings.keyring``); unsigned, the workflow refuses it. Name the version (or
        the hash, ``signing.proposal_digest``) of the proposal the approver was shown: else
        the verdict is on whatever is pending when it is signed."""
        try:
            review = Review(
                approver=approver,
                verdict=verdict,
                reason=reason,
                proposal_version=proposal_version,
                proposal_sha256=proposal_sha256,
            )
        except ValidationError as err:
            raise invalid(err, "review") from None
        return await self._decide(request_id, names.REVIEW, review, key)

    async def edit(
        self,
        request_id: str,
        *,
        approver: str,
        reason: str,
        answer: str | None = None,
        tool_calls: list[ToolCall] | list[dict[str, Any]] | None = None,
        proposal_version: int | None = None,
        proposal_sha256: str | None = None,
        key: SigningKey | None = None,
    ) -> ReviewReceipt:
        """Approve a changed answer and/or tool calls; refused like a review, and also when
        the edit breaks a contract, fails policy or exceeds the editor's limit."""
        try:
            edit = Edit.model_validate(
                {
                    "approver": approver,
                    "reason": reason,
                    "answer": answer,
                    "tool_calls": tool_calls,
                    "proposal_version": proposal_version,
                    "proposal_sha256": proposal_sha256,
                }
            )
        except ValidationError as err:
            raise invalid(err, "edit") from None
        return await self._decide(request_id, names.EDIT, edit, key)

    def keys(self) -> dict[str, SigningKey]:
        """The approvers' keys this client holds (Settings.keyring), by approver."""
        return keyring(self.settings.keyring)

    async def sign(
        self,
        request_id: str,
        message: Review | Edit,
        key: SigningKey | None = None,
        *,
        now: datetime | None = None,
    ) -> Review | Edit:
        """``message`` naming the proposal pending now (unless it names a version, or the
        proposal's hash, of its own: what its approver was shown) and signed for this
        request's workflow; unchanged when no key for its approver is held. A message that
        names a version no longer pending is signed without a hash, and refused as stale."""
        if message.proposal_version is None or message.proposal_sha256 is None:
            pending = (await self.status(request_id)).pending
            if pending is not None and message.proposal_version in (None, pending.proposal_version):
                message = message.model_copy(
                    update={
                        "proposal_version": pending.proposal_version,
                        "proposal_sha256": message.proposal_sha256
                        or proposal_digest(pending.proposal),
                    }
                )
        key = key or self.keys().get(message.approver)
        if key is None:
            return message
        if now is None:
            now = await self._now()
        signature = key.sign(message, workflow_id_for(request_id), now)
        return message.model_copy(update={"signature": signature})

    async def _now(self) -> datetime:
        """The time a signature claims (the workflows' clock: see ``clock``)."""
        return await self._clock() if self._clock else datetime.now(UTC)

    async def _decide(
        self, request_id: str, update: str, message: Review | Edit, key: SigningKey | None
    ) -> ReviewReceipt:
        try:
            async with asyncio.timeout(self.decide_within.total_seconds()):
                signed = await self.sign(request_id, message, key)
                receipt: ReviewReceipt = await self.handle(request_id).execute_update(
                    update, signed, result_type=ReviewReceipt, rpc_timeout=self.decide_within
                )
            return receipt
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            raise ReviewRejected(
                "no_answer",
                f"{request_id} did not take the verdict within {self.decide_within} (no worker "
                "serving it?); it may still be taken while its signature is fresh: "
                f"tether approvals show {request_id}",
            ) from None
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.details:
                code = str(cause.details[0])
                raise ReviewRejected(code, cause.message.removeprefix(f"{code}: ")) from None
            raise
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:  # finished, or never existed
                raise ReviewRejected("nothing_pending", f"{request_id}: {err.message}") from None
            raise

    async def approve(
        self, request_id: str, *, approver: str, reason: str = "", **shown: Unpack[Shown]
    ) -> ReviewReceipt:
        return await self.review(
            request_id, approver=approver, verdict="approve", reason=reason, **shown
        )

    async def reject(
        self, request_id: str, *, approver: str, reason: str, **shown: Unpack[Shown]
    ) -> ReviewReceipt:
        return await self.review(
            request_id, approver=approver, verdict="reject", reason=reason, **shown
        )

    async def ingest(
        self,
        location: str,
        *,
        domain: str | None = None,
        source: str | None = None,
        max_age_days: int = 30,
        valid_until: datetime | None = None,
    ) -> IngestReport:
        """Index a directory or an HTTP(S) URL into a domain's knowledge now; the report.
        Without ``source``, the name is the pack's own for its own knowledge, else one unique
        to the location (``knowledge.source_name``)."""
        handle = await self.start_ingest(
            location,
            domain=domain,
            source=source,
            max_age_days=max_age_days,
            valid_until=valid_until,
        )
        return await handle.result()

    async def ingest_pack(self, domain: str | None = None) -> list[IngestReport]:
        """Index every knowledge source the pack ships."""
        pack = self.pack(domain)
        return [
            await self.ingest(
                str(k.location), domain=pack.name, source=k.source, max_age_days=k.max_age_days
            )
            for k in pack.knowledge
        ]

    async def start_ingest(
        self,
        location: str,
        *,
        domain: str | None = None,
        source: str | None = None,
        max_age_days: int = 30,
        valid_until: datetime | None = None,
    ) -> WorkflowHandle[Any, IngestReport]:
        inp = self.source(
            location,
            domain=self.pack(domain).name,
            source=source,
            max_age_days=max_age_days,
            valid_until=valid_until,
        )
        digest = hashlib.sha256(location.encode()).hexdigest()[:12]
        return await self.client.start_workflow(
            names.KNOWLEDGE_INGEST,
            inp,
            id=f"knowledge-ingest-{inp.domain}-{inp.source}-{digest}",
            task_queue=self.settings.task_queue,
            result_type=IngestReport,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    async def ingest_progress(self, handle: WorkflowHandle[Any, Any]) -> tuple[int, int] | None:
        """(chunks embedded, chunks to embed) from the running ingest's last heartbeat."""
        described = await handle.describe()
        for pending in described.raw_description.pending_activities:
            details = pending.heartbeat_details.payloads
            if len(details) == 2:
                done, total = await self.client.data_converter.decode(details, [int, int])
                return int(done), int(total)
        return None

    @staticmethod
    def source(
        location: str,
        *,
        domain: str,
        source: str | None = None,
        max_age_days: int = 30,
        valid_until: datetime | None = None,
    ) -> IngestInput:
        """One source of ``domain``'s knowledge; named as ``ingest`` says when unnamed."""
        if source is None:
            try:
                own = [(k.location, k.source) for k in packs.get(domain).knowledge]
            except packs.UnknownDomain:
                own = []
            source = source_name(location, own)
        where = (
            {"url": location}
            if location.startswith(("http://", "https://"))
            else {"path": location}
        )
        try:
            return IngestInput.model_validate(
                {
                    "domain": domain,
                    "source": source,
                    "max_age_days": max_age_days,
                    "valid_until": valid_until,
                    **where,
                }
            )
        except ValidationError as err:
            raise invalid(err, "source") from None

    async def schedule_refresh(self, sources: list[IngestInput], every: timedelta) -> str:
        """Refresh these sources every ``every`` on a Temporal Schedule of their own: one per
        domain and set of source names, so scheduling one domain's (or one source's) refresh
        leaves the others' schedules alone; the same set again updates its schedule in place.
        Overlapping runs are skipped. Returns the schedule id."""
        domains = "-".join(sorted({s.domain for s in sources}))
        named = short_hash("\n".join(sorted({f"{s.domain}/{s.source}" for s in sources})))
        action = ScheduleActionStartWorkflow(
            names.KNOWLEDGE_REFRESH,
            RefreshInput(sources=sources),
            id=f"knowledge-refresh-{domains}-{named}",
            task_queue=self.settings.task_queue,
        )
        return await self._schedule(f"{REFRESH_SCHEDULE}-{domains}-{named}", action, every)

    async def evaluate(self, inp: EvaluationInput | None = None) -> EvaluationReport:
        """Score the sampled share of recent outcomes now; returns the window's report."""
        report: EvaluationReport = await self.client.execute_workflow(
            names.LIVE_EVALUATION,
            inp or EvaluationInput(),
            id=f"live-evaluation-{datetime.now(UTC):%Y%m%dT%H%M%S%f}",
            task_queue=self.settings.task_queue,
            result_type=EvaluationReport,
        )
        return report

    async def shadow(
        self,
        dataset: str,
        candidate: Candidate,
        *,
        domain: str | None = None,
        version: int | None = None,
    ) -> ShadowReport:
        """Replay a dataset's cases of one domain against a candidate, with no side effects;
        what changed."""
        pack = self.pack(domain)
        report: ShadowReport = await self.client.execute_workflow(
            names.SHADOW_EVALUATION,
            ShadowInput(
                domain=pack.name,
                dataset=DatasetRef(name=dataset, version=version),
                candidate=candidate,
                model_queue=self.settings.model_queue,
                timeouts=self.settings.timeouts,
            ),
            id=f"shadow-{pack.name}-{dataset}-{candidate.name}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}",
            task_queue=self.settings.task_queue,
            result_type=ShadowReport,
        )
        return report

    async def schedule_evaluation(
        self,
        inp: EvaluationInput,
        every: timedelta,
        *,
        replace: bool = True,
        interval_only: bool = False,
    ) -> str:
        """The live evaluation on a schedule; ``replace`` False keeps one that exists (what
        `tether up` asks at each start: an operator's own schedule stays as they made it);
        ``interval_only`` changes how often one that exists runs, and keeps what it runs (its
        domain, window, sample and webhook)."""
        action = ScheduleActionStartWorkflow(
            names.LIVE_EVALUATION,
            inp,
            id="live-evaluation",
            task_queue=self.settings.task_queue,
        )
        return await self._schedule(
            EVALUATION_SCHEDULE, action, every, replace=replace, interval_only=interval_only
        )

    async def _schedule(
        self,
        schedule_id: str,
        action: ScheduleActionStartWorkflow,
        every: timedelta,
        *,
        replace: bool = True,
        interval_only: bool = False,
    ) -> str:
        """Create the schedule, or update it in place (unless not ``replace``; only its
        interval with ``interval_only``); overlapping runs are skipped."""
        spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)])
        schedule = Schedule(
            action=action, spec=spec, policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP)
        )

        def updated(existing: ScheduleUpdateInput) -> ScheduleUpdate:
            if not interval_only:
                return ScheduleUpdate(schedule=schedule)
            kept = existing.description.schedule  # its action's input stays as it was sent
            kept.spec = spec
            return ScheduleUpdate(schedule=kept)

        try:
            await self.client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:
            if replace:
                await self.client.get_schedule_handle(schedule_id).update(updated)
        return schedule_id

    async def feedback(
        self,
        request_id: str,
        *,
        kind: str,
        detail: str,
        source: str = "api",
        at: datetime | None = None,
        reporter: str | None = None,
        key: SigningKey | None = None,
    ) -> str | None:
        """Attach what happened later (a complaint, a reversal, a correction) to the outcome of
        ``request_id``; sending the same feedback again is harmless. Returns who vouched for
        it: ``reporter``, whose entry in the domain's approver directory signs it (with
        ``key``, else their key from ``Settings.keyring``; ``key`` alone names its holder),
        or None when no reporter is named: then it is kept on the record, unverified, and nothing that learns (live
        evaluation, datasets, calibration, candidates) counts it. Raises FeedbackRefused when
        the worker cannot verify the signature; nothing is kept then."""
        try:
            item = LaterFeedback.model_validate(
                {
                    "request_id": request_id,
                    "kind": kind,
                    "detail": detail,
                    "source": source,
                    "at": at,
                }
            )
        except ValidationError as err:
            raise invalid(err, "feedback") from None
        reporter = reporter or (key.approver if key else None)  # a key says whose it is
        if reporter is not None:
            key = key or self.keys().get(reporter)
            if key is None or key.approver != reporter:
                raise InvalidRequest(
                    [
                        f"reporter: no key of {reporter}'s held (Settings.keyring, or "
                        "key=): `tether keys new` makes one for the directory"
                    ]
                )
            item = key.vouch(item, await self._now())
        digest = hashlib.sha256(item.model_dump_json().encode()).hexdigest()[:16]
        try:
            vouched_by: str | None = await self.client.execute_workflow(
                names.FEEDBACK,
                item,
                id=f"feedback-{request_id}-{digest}",
                task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                result_type=str | None,  # type: ignore[arg-type]
            )
        except WorkflowFailureError as err:
            cause = err.cause.cause if isinstance(err.cause, ActivityError) else err.cause
            if isinstance(cause, ApplicationError) and cause.type == "UnknownRequest":
                raise InvalidRequest([f"request_id: {cause.message}"]) from None
            if isinstance(cause, ApplicationError) and cause.type == errors.FEEDBACK_REFUSED:
                code = str(cause.details[0]) if cause.details else "refused"
                raise FeedbackRefused(code, cause.message.removeprefix(f"{code}: ")) from None
            raise
        return vouched_by

    def ui_link(self, request_id: str) -> str:
        return (
            f"{self.settings.ui_url}/namespaces/{self.settings.temporal_namespace}"
            f"/workflows/{workflow_id_for(request_id)}"
        )
