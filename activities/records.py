"""Outcome recording: what was attempted, why it was allowed, what changed."""

from __future__ import annotations

from temporalio import activity

from tether.contracts import Outcome
from tether.store import Store


class RecordActivities:
    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn
    def record_outcome(self, outcome: Outcome) -> None:
        self._store.record_outcome(outcome)
