"""Outcome recording: what was attempted, why it was allowed, what changed."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from tether import metrics
from tether.contracts import LaterFeedback, Outcome
from tether.store import Store


class RecordActivities:
    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn
    def record_outcome(self, outcome: Outcome) -> None:
        self._store.record_outcome(outcome)
        if activity.info().attempt == 1:  # count an outcome once, however often it is written
            metrics.record(outcome, activity.metric_meter())

    @activity.defn
    def attach_feedback(self, item: LaterFeedback) -> None:
        if not self._store.attach_feedback(item, datetime.now(UTC)):
            raise ApplicationError(
                f"no outcome for request {item.request_id}",
                type="UnknownRequest",
                non_retryable=True,
            )
