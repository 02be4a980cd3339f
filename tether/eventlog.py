"""Events written from where they happen, off the path they happen on: a worker's model circuit
moves inside a model call, which must neither wait for the store nor fail because of it.

``EventWriter`` takes events on a bounded queue (never blocking, never raising) and writes
them to the outcome store from a thread of its own; a write that fails is logged and dropped,
as is an event that finds the queue full. ``watch_circuit`` puts a breaker's moves there.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from datetime import UTC, datetime
from typing import Protocol

from tether.breaker import CircuitBreaker, State
from tether.incident import Event, circuit_event

log = logging.getLogger(__name__)


def worker_name() -> str:
    """This process as an event's source: which worker's circuit it was."""
    return f"worker {socket.gethostname()}:{os.getpid()}"


class Recorder(Protocol):
    """Where events are kept: tether.store.Store."""

    def record_event(self, event: Event) -> None: ...


class EventWriter:
    def __init__(self, store: Recorder, *, capacity: int = 1_000) -> None:
        self._store = store
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._write, name="tether-events", daemon=True)
        self._thread.start()

    def put(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.error("event not recorded, the store is behind: %s", event.summary)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for up to ``timeout``), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.error("events not recorded at close: the store is behind")
            return
        self._thread.join(timeout)

    def _write(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self._store.record_event(event)
            except Exception:
                log.exception("event not recorded: %s", event.summary)


def watch_circuit(
    breaker: CircuitBreaker, writer: EventWriter, *, name: str = "model", endpoint: str = ""
) -> None:
    """Record each of ``breaker``'s moves as a ``circuit`` event, from this worker."""
    source = worker_name()

    def moved(old: State, new: State) -> None:
        writer.put(
            circuit_event(
                old,
                new,
                at=datetime.now(UTC),
                source=source,
                name=name,
                endpoint=endpoint,
                failures=breaker.failures,
                reset_after=breaker.reset_after,
            )
        )

    breaker.listen(moved)
