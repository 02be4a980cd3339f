"""Knowledge workflows: index one source now, or refresh every configured source on a Temporal
Schedule. Qdrant local mode allows one process per index, so indexing runs as an activity in
the worker that already holds it, not in the CLI."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from tether import names
    from tether.activities.retrieval import RetrievalActivities
    from tether.contracts import IngestInput, IngestReport, RefreshInput


async def _ingest(source: IngestInput) -> IngestReport:
    return await workflow.execute_activity_method(
        RetrievalActivities.ingest_documents,
        source,
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
        return await _ingest(inp)


@workflow.defn(name=names.KNOWLEDGE_REFRESH)
class KnowledgeRefreshWorkflow:
    """Every source, one after the other; a source that fails is reported, the rest go on
    (its chunks stay, and its age shows in the evidence until a refresh succeeds)."""

    @workflow.run
    async def run(self, inp: RefreshInput) -> list[IngestReport]:
        reports = []
        for source in inp.sources:
            try:
                reports.append(await _ingest(source))
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
