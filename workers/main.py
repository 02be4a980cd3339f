"""Worker entry point: which workflows and activities run on which task queue, for every
domain pack this deployment serves.

Expensive things (embedding model, vector stores, HTTP pools, store) are built once here and
handed to the activity classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from tether import capacity, errors, migrations, packs, queuedepth
from tether.activities.model import ModelActivities, QueueActivities
from tether.activities.policy import PolicyActivities
from tether.activities.records import RecordActivities
from tether.activities.retrieval import RetrievalActivities
from tether.activities.shadowstart import ShadowStarts
from tether.activities.tools import ToolActivities
from tether.activities.verification import VerificationActivities
from tether.config import LLMConfig, Settings
from tether.contracts import ModelIdentity, ProposeInput, RawProposal
from tether.domain import DomainPack
from tether.embeddings import DIMENSIONS, Embedder
from tether.eventlog import EventWriter, watch_circuit
from tether.intents import IntentReader
from tether.ledger import Ledger
from tether.localmodel import LocalModel
from tether.metrics import runtime_for, watch_breaker
from tether.openai_compat import OpenAICompatible
from tether.policystore import PolicyStore
from tether.providers import ModelProvider
from tether.sandbox import workflow_runner
from tether.sentencevectors import SentenceVectors
from tether.shadowguard import ShadowGuard
from tether.stages import StageLatency
from tether.store import Store
from tether.vectorstore import EdgeStore, QdrantStore, VectorStore
from tether.workflows.evaluation import LiveEvaluationWorkflow
from tether.workflows.feedback import FeedbackWorkflow
from tether.workflows.knowledge import KnowledgeIngestWorkflow, KnowledgeRefreshWorkflow
from tether.workflows.resolution import ResolutionWorkflow
from tether.workflows.shadow import LiveShadowWorkflow, ShadowEvaluationWorkflow

log = logging.getLogger(__name__)

WORKFLOWS = [
    ResolutionWorkflow,
    KnowledgeIngestWorkflow,
    KnowledgeRefreshWorkflow,
    FeedbackWorkflow,
    LiveEvaluationWorkflow,
    ShadowEvaluationWorkflow,
    LiveShadowWorkflow,
]

READY = "tether worker serving"  # logged once every queue of the role is polled
Role = Literal["all", "workflow", "compute", "model", "shadow"]
ROLES: tuple[Role, ...] = ("all", "workflow", "compute", "model", "shadow")


def vector_store(settings: Settings, domain: str) -> VectorStore:
    """One domain's knowledge: a collection (or an Edge shard) of its own."""
    if settings.qdrant_url:
        return QdrantStore(settings.collection(domain), DIMENSIONS, url=settings.qdrant_url)
    path = settings.resolved_qdrant_path(domain)
    if settings.vector_backend == "local":
        return QdrantStore(settings.collection(domain), DIMENSIONS, path=path)
    return EdgeStore(DIMENSIONS, path)


def system_urls(settings: Settings, served: Sequence[DomainPack]) -> dict[tuple[str, str], str]:
    """Every business system of every pack, by (domain, system), at its configured address
    (Settings.systems: ``<domain>.<system>``, else ``<system>``) or its default."""
    urls: dict[tuple[str, str], str] = {}
    for pack in served:
        for system in pack.systems:
            given = settings.systems.get(f"{pack.name}.{system.name}")
            urls[pack.name, system.name] = given or settings.systems.get(system.name, system.url)
    return urls


def register_policy(
    store: PolicyStore, pack: DomainPack, settings: Settings, *, warn: bool = True
) -> None:
    """The configured policy as a version (active if none is); what an operator must know
    about the one that governs is logged (``warn``: by a process that decides, once)."""
    stored = store.register(pack, settings, by="worker")
    active = store.active(pack.name)
    assert active is not None  # register activates when none is
    if not warn:
        return
    if active.sha256 != stored.sha256:
        # Not an instruction to activate it: the configured policy is often the pack's own,
        # older than what operators activated since (their approver directory, say).
        loses = active.policy.approvers and not stored.policy.approvers
        log.warning(
            "%s: %s stays active; this worker's configured policy differs from it (stored as "
            "%s: `tether policy diff %s --domain %s` shows how)%s",
            pack.name,
            active.version,
            stored.version,
            stored.version,
            pack.name,
            "; it has no approver directory: activated, it would refuse every request that "
            "needs a person"
            if loses
            else "",
        )
    if not active.policy.approvers:
        log.warning(
            "%s policy %s has no approver directory: every request needing a person is "
            "refused (no_approver)",
            pack.name,
            active.version,
        )


@dataclass
class Resources:
    settings: Settings
    packs: list[DomainPack]
    embedder: Embedder
    store: Store
    policies: PolicyStore
    ledger: Ledger
    systems: dict[tuple[str, str], httpx.AsyncClient]
    executor: ThreadPoolExecutor
    _vectors: dict[str, VectorStore] = field(default_factory=dict, repr=False)
    _vectors_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _model: ModelProvider | None = field(default=None, repr=False)
    _model_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _events: EventWriter | None = field(default=None, repr=False)
    _intents: IntentReader | None = field(default=None, repr=False)
    _intents_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(
        cls, settings: Settings, *, embedder: Embedder | None = None, warn: bool = True
    ) -> Resources:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Before any store opens: a clear error if a database cannot be used, and the schema
        # at head (once, under a lock, however many workers start together).
        for url in migrations.databases(settings):
            migrations.upgrade(url)
        served = packs.load(settings.domains)
        policies = PolicyStore(settings.resolved_store_url())
        for pack in served:
            register_policy(policies, pack, settings, warn=warn)
        return cls(
            settings=settings,
            packs=served,
            embedder=embedder
            or Embedder(
                batch_size=settings.embedding_batch_size, backend=settings.embedding_backend
            ),
            store=Store(settings.resolved_store_url()),
            policies=policies,
            ledger=Ledger(settings.resolved_store_url()),
            systems={
                key: httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10.0))
                for key, url in system_urls(settings, served).items()
            },
            executor=ThreadPoolExecutor(max_workers=settings.activity_threads),
        )

    def vectors(self, domain: str) -> VectorStore:
        """The domain's vector store, opened on first use (by this process only)."""
        if domain not in {p.name for p in self.packs}:
            raise ApplicationError(
                f"this worker serves no domain {domain!r}",
                type=errors.UNKNOWN_DOMAIN,
                non_retryable=True,
            )
        with self._vectors_lock:
            if domain not in self._vectors:
                self._vectors[domain] = vector_store(self.settings, domain)
            return self._vectors[domain]

    def model(self) -> ModelProvider:
        """The configured provider, built once: the local model, or an OpenAI-compatible
        endpoint (its circuit breaker lives as long as this worker)."""
        with self._model_lock:
            return self._build_model()

    def _build_model(self) -> ModelProvider:
        if self._model is None:
            if self.settings.llm.provider == "openai":
                remote = OpenAICompatible(self.settings.llm)
                runtime = runtime_for(self.settings.metrics_address)
                if runtime is not None:
                    watch_breaker(remote.breaker, runtime.metric_meter, "model")
                # Its moves into the incident timeline, written by a thread of their own.
                self._events = EventWriter(self.store)
                known = remote.identity()
                endpoint = f"{known.model} at {known.provider}"
                watch_circuit(remote.breaker, self._events, endpoint=endpoint)
                self._model = remote
            else:
                self._model = LocalModel(
                    self.embedder, self.packs, sentence_vectors=self.sentences, intents=self.intents
                )
        return self._model

    @property
    def intents(self) -> IntentReader:
        """The packs' labelled examples, read by the local model and again by the verifier
        (one reader per process: the examples are embedded once)."""
        with self._intents_lock:
            if self._intents is None:
                self._intents = IntentReader(self.embedder, self.packs)
            return self._intents

    @property
    def sentences(self) -> SentenceVectors:
        return SentenceVectors(self.embedder, self.vectors)

    def warm(self, role: Role) -> None:
        """Load what the role's first activities need, so that they do not wait for it."""
        if role in ("all", "compute", "model"):
            self.model()
        if role in ("all", "compute"):
            self.embedder.encode_uncached(["warm up"])
            self.intents.warm()  # the verifier's reading of each request's intent

    async def close_model(self) -> None:
        """The remote model's connections, and its circuit's events written."""
        if isinstance(self._model, OpenAICompatible):
            await self._model.close()
        if self._events is not None:
            await asyncio.to_thread(self._events.close)

    async def close(self) -> None:
        await self.close_model()
        for http in self.systems.values():
            await http.aclose()
        for vectors in self._vectors.values():
            vectors.close()
        self.store.close()
        self.policies.close()
        self.ledger.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def resolution_worker(
    client: Client,
    res: Resources,
    *,
    task_queue: str | None = None,
    extra_workflows: Sequence[type] = (),
    compute: bool = True,
) -> Worker:
    """Workflows plus the activities that wait on I/O (tools, records, policy) and, with
    ``compute`` (one process serves everything), the CPU-heavy ones as well."""
    tools = ToolActivities(res.packs, res.systems, res.ledger)
    records = RecordActivities(res.store, res.policies)
    # Where this worker's workflows send CPU-heavy work: here, or the compute queue.
    elsewhere = None if compute else res.settings.compute_queue
    policy = PolicyActivities(
        res.policies,
        elsewhere,
        res.settings.shadow_queue,
        overlays=res.store.overlays,
        resolved=res.store.resolved_at,
        model_queue=res.settings.model_queue,
        model_queues=res.settings.model_queues,
    )
    queues = QueueActivities(elsewhere)
    return Worker(
        client,
        task_queue=task_queue or res.settings.task_queue,
        workflows=[*WORKFLOWS, *extra_workflows],
        workflow_runner=workflow_runner(),
        # Latency by stage (tether_stage_latency_seconds); shadow runs refused any tool.
        interceptors=[StageLatency(), ShadowGuard()],
        activities=[
            *(compute_activities(res) if compute else []),
            *tools.activities(),
            records.record_outcome,
            records.hold_tally,
            records.reusable_proposal,
            records.active_overlay,
            records.record_shadow,
            ShadowStarts(res.store).start_shadow,
            records.attach_feedback,
            records.evaluate_recent,
            records.carve_datasets,
            records.load_dataset,
            policy.pin_policy,
            policy.key_revoked_at,
            queues.model_queue_state,
            queues.compute_queue,
        ],
        activity_executor=res.executor,
        # No more activities than threads: a sync activity queued for a thread would burn
        # its start-to-close time waiting.
        max_concurrent_activities=res.settings.activity_threads,
        max_cached_workflows=res.settings.max_cached_workflows,
        max_concurrent_workflow_tasks=res.settings.workflow_task_slots,
        sticky_queue_schedule_to_start_timeout=res.settings.sticky_queue_timeout,
    )


def shadow_worker(client: Client, res: Resources, *, compute: bool = False) -> Worker:
    """Live candidates' shadow runs on their own queue (Settings.shadow_queue): their workflow
    tasks in a process of their own, never beside a live request's. It registers no tool at
    all, and refuses a shadow any activity but the decision ones (tether/shadowguard.py).
    With ``compute`` (one process serves everything) it verifies here too."""
    queue = res.settings.shadow_queue
    assert queue, "a shadow worker serves Settings.shadow_queue"
    records = RecordActivities(res.store)
    elsewhere = None if compute else res.settings.compute_queue
    policy = PolicyActivities(res.policies, elsewhere)
    return Worker(
        client,
        task_queue=queue,
        workflows=[LiveShadowWorkflow],
        workflow_runner=workflow_runner(),
        interceptors=[StageLatency(), ShadowGuard()],
        activities=[
            *(compute_activities(res) if compute else []),
            records.record_shadow,
            policy.pin_policy,
        ],
        activity_executor=res.executor,
        max_concurrent_activities=res.settings.activity_threads,
        max_cached_workflows=res.settings.max_cached_workflows,
        max_concurrent_workflow_tasks=res.settings.workflow_task_slots,
    )


def compute_activities(res: Resources) -> list[Callable[..., Any]]:
    """Embedding, search and verification: CPU-bound, and (embedded store) the shard's."""
    retrieval = RetrievalActivities(res.embedder, res.vectors, res.store, res.settings.retrieval)
    verification = VerificationActivities(
        res.embedder,
        res.packs,
        grounding_similarity=res.settings.grounding_similarity,
        sentence_vectors=res.sentences,
        intents=res.intents,
    )
    return [retrieval.retrieve_evidence, retrieval.ingest_documents, verification.verify_proposal]


def compute_worker(client: Client, res: Resources, *, task_queue: str | None = None) -> Worker:
    """The CPU-heavy activities on their own queue (Settings.compute_queue), in a process that
    runs no resolution workflow: it may hold the GIL for a whole batch without delaying
    anyone's workflow task."""
    queue = task_queue or res.settings.compute_queue
    assert queue, "a compute worker serves Settings.compute_queue"
    return Worker(
        client,
        task_queue=queue,
        activities=compute_activities(res),
        activity_executor=res.executor,
        max_concurrent_activities=res.settings.activity_threads,
    )


class LazyModel:
    """The provider, built on its first call (or by ``Resources.warm`` meanwhile): a restarted
    worker polls its queues at once, not after the model has loaded, and the proposals that
    arrive first wait for the load inside their start-to-close instead of in the queue."""

    def __init__(self, build: Callable[[], ModelProvider]) -> None:
        self._build = build

    def identity(self) -> ModelIdentity:
        return self._build().identity()

    async def propose(self, inp: ProposeInput) -> RawProposal:
        return await (await asyncio.to_thread(self._build)).propose(inp)


def model_worker(client: Client, res: Resources, *, task_queue: str | None = None) -> Worker:
    """The model on its own task queue, so it can be scaled, limited or lost on its own."""
    return model_worker_for(
        client, LazyModel(res.model), res.settings.llm, task_queue or res.settings.model_queue
    )


def model_worker_for(
    client: Client, provider: ModelProvider, llm: LLMConfig, task_queue: str
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        activities=[ModelActivities(provider).propose_resolution],
        max_concurrent_activities=llm.max_concurrent,
        # Enforced by the Temporal server for the whole queue, across every model worker.
        max_task_queue_activities_per_second=llm.rate_limit_per_second,
    )


def workers_for(client: Client, res: Resources, role: Role) -> list[Worker]:
    """What one process serves. ``all``: everything (a compute queue too, if one is set).
    ``workflow``: workflows and I/O activities, nothing CPU-heavy (run as many as needed).
    ``compute``: the compute queue and the model queue; with the embedded store, exactly one
    such process owns each shard. ``model``: the model queue only (a remote provider, or the
    local model beside a shared Qdrant server). ``shadow``: live candidates' shadow runs
    (Settings.shadow_queue), verified on the compute queue."""
    settings = res.settings
    if role == "all":
        workers = [resolution_worker(client, res), model_worker(client, res)]
        if settings.compute_queue:
            workers.append(compute_worker(client, res))
        if settings.shadow_queue:
            workers.append(shadow_worker(client, res, compute=not settings.compute_queue))
        return workers
    if role == "shadow":
        missing = []
        if not settings.shadow_queue:
            missing.append("--role shadow serves TETHER_SHADOW_QUEUE: set it")
        if not settings.compute_queue:
            missing.append(
                "--role shadow runs no verification: set TETHER_COMPUTE_QUEUE and run a "
                "--role compute worker on it"
            )
        if missing:
            raise errors.ConfigurationError(missing)
        return [shadow_worker(client, res)]
    if role == "workflow":
        if not settings.compute_queue:
            raise errors.ConfigurationError(
                [
                    "--role workflow runs no retrieval or verification: set "
                    "TETHER_COMPUTE_QUEUE and run a --role compute worker on it"
                ]
            )
        return [resolution_worker(client, res, compute=False)]
    if role == "compute":
        if not settings.compute_queue:
            raise errors.ConfigurationError(["--role compute serves TETHER_COMPUTE_QUEUE: set it"])
        return [compute_worker(client, res), model_worker(client, res)]
    return [model_worker(client, res)]


async def report_cpu(settings: Settings, role: Role, every: float = 2.0) -> None:
    """This process's CPU seconds, by role, on its metrics endpoint: what `tether capacity`
    sizes a deployment from."""
    runtime = runtime_for(settings.metrics_address)
    if runtime is None:
        return
    gauge = runtime.metric_meter.create_gauge_float(
        capacity.CPU, "CPU seconds this worker process has used", "s"
    )
    labels = {"role": role, "pid": str(os.getpid())}
    while True:
        gauge.set(time.process_time(), labels)
        await asyncio.sleep(every)


async def report_queue(client: Client, res: Resources, role: Role) -> None:
    """The approval queue's depth on this process's metrics endpoint, from the processes that
    run resolution workflows (tether/queuedepth.py)."""
    runtime = runtime_for(res.settings.metrics_address)
    if runtime is None or role not in ("all", "workflow"):
        return
    domains = [p.name for p in res.packs]
    await queuedepth.report(client, res.policies, domains, runtime.metric_meter)


async def run(settings: Settings, stop: asyncio.Event, role: Role = "all") -> None:
    """Serve ``role`` until ``stop`` is set."""
    from tether.client import connect

    client = await connect(settings, serve_metrics=True)
    # Only a process that decides says what governs it: not each of `tether up`'s others.
    res = Resources.build(settings, warn=role in ("all", "workflow"))
    try:
        async with contextlib.AsyncExitStack() as stack:
            workers = workers_for(client, res, role)
            for worker in workers:
                await stack.enter_async_context(worker)
            queues = ", ".join(w.task_queue for w in workers)
            log.info("%s (role %s): %s", READY, role, queues)
            # Polling already; the model and the embeddings load meanwhile, off the loop.
            warming = asyncio.create_task(asyncio.to_thread(res.warm, role))
            reporting = asyncio.create_task(report_cpu(settings, role))
            counting = asyncio.create_task(report_queue(client, res, role))
            await stop.wait()
            warming.cancel()
            reporting.cancel()
            counting.cancel()
    finally:
        await res.close()
