"""Knowledge workflows: index one source now, or refresh every configured source on a Temporal
Schedule. An embedded shard has one owning process, so indexing runs as an activity in the
worker that holds it (on the compute queue, when the workers have one), not in the CLI."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from tether import names
    from tether.activities.model import QueueActivities
    from tether.activities.retrieval import RetrievalActivities
    from tether.contracts import IngestInput, IngestReport, RefreshInput


async def _compute_queue() -> str | None:
    """Where the workers embed and own the shards (histories from before: the own queue)."""
    if not workflow.patched("compute-queue"):
        return None
    return await workflow.execute_activity_method(
        QueueActivities.compute_queue,
        start_to_close_timeout=timedelta(seconds=15),
        retry_policy=RetryPolicy(maximum_attempts=0, maximum_interval=timedelta(seconds=30)),
    )


async def _ingest(source: IngestInput, queue: str | None) -> IngestReport:
    return await workflow.execute_activity_method(
        RetrievalActivities.ingest_documents,
        source,
        task_queue=queue,
        start_to_close_timeout=timedelta(minutes=30),
        # Heartbeats carry progress (one per group of chunks, seconds apart); a killed worker's
        # ingest is retried after this long and resumes from what it had written.
        heartbeat_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(
            maximum_attempts=5, non_retryable_error_types=["InvalidDocument", "UnknownDomain"]
        ),
        summary=f"refresh {source.domain}/{source.source}: {source.path or source.url}"[:200],
    )


@workflow.defn(name=names.KNOWLEDGE_INGEST)
class KnowledgeIngestWorkflow:
    """One source, now (`tether ingest`); fails if the source cannot be read."""

    @workflow.run
    async def run(self, inp: IngestInput) -> IngestReport:
        return await _ingest(inp, await _compute_queue())


@workflow.defn(name=names.KNOWLEDGE_REFRESH)
class KnowledgeRefreshWorkflow:
    """Every source, one after the other; a source that fails is reported, the rest go on
    (its chunks stay, and its age shows in the evidence until a refresh succeeds)."""

    @workflow.run
    async def run(self, inp: RefreshInput) -> list[IngestReport]:
        reports = []
        queue = await _compute_queue()
        for source in inp.sources:
            try:
                reports.append(await _ingest(source, queue))
            except ActivityError as err:
                reports.append(
                    IngestReport(
                        domain=source.domain,
                        documents=0,
                        chunks=0,
                        embedded=0,
                        removed=0,
                        refreshed_at=workflow.now(),
                        source=source.source,
                        error=str(err.cause)[:500],
                    )
                )
        return reports
