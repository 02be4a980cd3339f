"""KnowledgeIngestWorkflow: (re)index a knowledge directory in the worker that owns the index."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.retrieval import RetrievalActivities
    from tether.contracts import IngestInput, IngestReport


@workflow.defn
class KnowledgeIngestWorkflow:
    @workflow.run
    async def run(self, inp: IngestInput) -> IngestReport:
        # Qdrant local mode allows one process per index, so ingest runs as an activity in
        # the worker that already holds it, not in the CLI.
        return await workflow.execute_activity_method(
            RetrievalActivities.ingest_documents,
            inp,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(
                maximum_attempts=3, non_retryable_error_types=["InvalidDocument"]
            ),
        )
