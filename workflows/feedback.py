"""FeedbackWorkflow: attach later feedback to its outcome, in the worker that owns the store."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from tether import errors, names
    from tether.activities.records import RecordActivities
    from tether.contracts import LaterFeedback


@workflow.defn(name=names.FEEDBACK)
class FeedbackWorkflow:
    @workflow.run
    async def run(self, item: LaterFeedback) -> str | None:
        """Who vouched for it (None: kept unverified)."""
        # When it arrived: a signature is judged as of then, not after a worker outage.
        return await workflow.execute_activity_method(
            RecordActivities.attach_feedback,
            args=[item, workflow.info().start_time],
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=RetryPolicy(
                maximum_attempts=0,
                non_retryable_error_types=["UnknownRequest", errors.FEEDBACK_REFUSED],
            ),
        )
