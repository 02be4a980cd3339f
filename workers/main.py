"""Worker entry point: which workflows and activities run on which task queue.

Expensive things (embedding model, Qdrant client, HTTP pool, store) are built once here
and handed to the activity classes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities.model import ModelActivities
from activities.records import RecordActivities
from activities.retrieval import RetrievalActivities
from activities.tools import ToolActivities
from activities.verification import VerificationActivities
from domains.support.tools import REGISTRY
from tether.config import LLMConfig, Settings
from tether.embeddings import DIMENSIONS, Embedder
from tether.ledger import Ledger
from tether.localmodel import LocalModel, load_intents
from tether.openai_compat import OpenAICompatible
from tether.providers import ModelProvider
from tether.store import Store
from tether.vectorstore import EdgeStore, QdrantStore, VectorStore
from workflows.evaluation import LiveEvaluationWorkflow
from workflows.feedback import FeedbackWorkflow
from workflows.knowledge import KnowledgeIngestWorkflow, KnowledgeRefreshWorkflow
from workflows.resolution import ResolutionWorkflow
from workflows.shadow import ShadowEvaluationWorkflow

WORKFLOWS = [
    ResolutionWorkflow,
    KnowledgeIngestWorkflow,
    KnowledgeRefreshWorkflow,
    FeedbackWorkflow,
    LiveEvaluationWorkflow,
    ShadowEvaluationWorkflow,
]


def vector_store(settings: Settings) -> VectorStore:
    if settings.qdrant_url:
        return QdrantStore(settings.collection, DIMENSIONS, url=settings.qdrant_url)
    if settings.vector_backend == "local":
        return QdrantStore(settings.collection, DIMENSIONS, path=settings.resolved_qdrant_path())
    return EdgeStore(DIMENSIONS, settings.resolved_qdrant_path())


@dataclass
class Resources:
    settings: Settings
    embedder: Embedder
    vectors: VectorStore
    store: Store
    ledger: Ledger
    http: httpx.AsyncClient
    executor: ThreadPoolExecutor
    _model: ModelProvider | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, *, embedder: Embedder | None = None) -> Resources:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            embedder=embedder
            or Embedder(
                batch_size=settings.embedding_batch_size, backend=settings.embedding_backend
            ),
            vectors=vector_store(settings),
            store=Store(settings.resolved_store_url()),
            ledger=Ledger(settings.resolved_store_url()),
            http=httpx.AsyncClient(base_url=settings.business_url, timeout=httpx.Timeout(10.0)),
            executor=ThreadPoolExecutor(max_workers=settings.activity_threads),
        )

    def model(self) -> ModelProvider:
        """The configured provider, built once: the local model, or an OpenAI-compatible
        endpoint (its circuit breaker lives as long as this worker)."""
        if self._model is None:
            if self.settings.llm.provider == "openai":
                self._model = OpenAICompatible(self.settings.llm)
            else:
                self._model = LocalModel(self.embedder, load_intents(self.settings.intents_path))
        return self._model

    async def close(self) -> None:
        if isinstance(self._model, OpenAICompatible):
            await self._model.close()
        await self.http.aclose()
        self.vectors.close()
        self.store.close()
        self.ledger.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def resolution_worker(
    client: Client,
    res: Resources,
    *,
    task_queue: str | None = None,
    extra_workflows: Sequence[type] = (),
) -> Worker:
    """Workflows plus every activity except the model's."""
    retrieval = RetrievalActivities(res.embedder, res.vectors, res.store, res.settings.retrieval)
    verification = VerificationActivities(
        res.embedder, grounding_similarity=res.settings.grounding_similarity
    )
    tools = ToolActivities(REGISTRY, res.http, res.ledger)
    records = RecordActivities(res.store)
    return Worker(
        client,
        task_queue=task_queue or res.settings.task_queue,
        workflows=[*WORKFLOWS, *extra_workflows],
        activities=[
            retrieval.retrieve_evidence,
            retrieval.ingest_documents,
            verification.verify_proposal,
            *tools.activities(),
            records.record_outcome,
            records.attach_feedback,
            records.evaluate_recent,
            records.carve_datasets,
            records.load_dataset,
        ],
        activity_executor=res.executor,
        # No more activities than threads: a sync activity queued for a thread would burn
        # its start-to-close time waiting.
        max_concurrent_activities=res.settings.activity_threads,
    )


def model_worker(client: Client, res: Resources, *, task_queue: str | None = None) -> Worker:
    """The model on its own task queue, so it can be scaled, limited or lost on its own."""
    return model_worker_for(
        client, res.model(), res.settings.llm, task_queue or res.settings.model_queue
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


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run both workers until ``stop`` is set."""
    from tether.client import connect

    client = await connect(settings, serve_metrics=True)
    res = Resources.build(settings)
    try:
        workers = [resolution_worker(client, res), model_worker(client, res)]
        async with workers[0], workers[1]:
            await stop.wait()
    finally:
        await res.close()
