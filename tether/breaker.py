"""A circuit breaker for the model endpoint, one per worker process.

closed    -> calls pass; ``failures`` consecutive failures open it
open      -> calls fail fast (CircuitOpen) until ``reset_after`` has passed
half_open -> one trial call passes, the rest fail fast; its success closes the circuit,
             its failure opens it again for another ``reset_after``
Per process on purpose: each worker judges the endpoint from the calls it makes, and a
fleet-wide limit is the task queue's rate limit, enforced by Temporal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

State = Literal["closed", "open", "half_open"]
log = logging.getLogger(__name__)


class CircuitOpen(Exception):
    """The endpoint failed too often lately; not called."""


@dataclass
class CircuitBreaker:
    failures: int
    reset_after: float  # seconds
    clock: Callable[[], float] = time.monotonic
    state: State = "closed"
    transitions: list[tuple[State, State]] = field(default_factory=list)
    # Told of every move (old, new), under the lock, so quick: the metrics' gauge
    # (tether.metrics.watch_breaker), the incident log's queue (tether.eventlog). See listen.
    listeners: list[Callable[[State, State], None]] = field(default_factory=list, repr=False)
    _consecutive: int = 0
    _opened_at: float = 0.0
    _trial_running: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def before_call(self) -> None:
        """Raise CircuitOpen, or let the call through (as the trial, when half-open)."""
        with self._lock:
            if self.state == "open":
                waited = self.clock() - self._opened_at
                if waited < self.reset_after:
                    raise CircuitOpen(
                        f"circuit open after {self.failures} consecutive failures; "
                        f"next trial in {self.reset_after - waited:.1f} s"
                    )
                self._move("half_open")
            if self.state == "half_open":
                if self._trial_running:
                    raise CircuitOpen("circuit half-open: a trial call is in flight")
                self._trial_running = True

    def success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._trial_running = False
            if self.state != "closed":
                self._move("closed")

    def failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            self._trial_running = False
            if self.state == "half_open" or (
                self.state == "closed" and self._consecutive >= self.failures
            ):
                self._opened_at = self.clock()
                self._move("open")

    def listen(self, listener: Callable[[State, State], None]) -> None:
        """Tell ``listener`` of every move from now on. One that raises is logged; the call
        that moved the circuit goes on as if it had not been told."""
        self.listeners.append(listener)

    def release(self) -> None:
        """The call ended without a verdict on the endpoint (e.g. it was cancelled)."""
        with self._lock:
            self._trial_running = False

    def _move(self, to: State) -> None:
        log.warning("model circuit %s -> %s", self.state, to)
        self.transitions.append((self.state, to))
        for listener in self.listeners:
            try:
                listener(self.state, to)
            except Exception:
                log.exception("circuit listener %r failed on %s -> %s", listener, self.state, to)
        self.state = to
