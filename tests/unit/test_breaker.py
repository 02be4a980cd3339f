"""The model endpoint's circuit breaker, on a clock the test moves."""

from __future__ import annotations

import pytest

from tether.breaker import CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(failures=3, reset_after=10.0, clock=clock)


def test_opens_after_consecutive_failures_only() -> None:
    b = breaker(Clock())
    for _ in range(2):
        b.before_call()
        b.failure()
    b.before_call()
    b.success()  # a success in between resets the count
    for _ in range(2):
        b.before_call()
        b.failure()
    assert b.state == "closed"
    b.before_call()
    b.failure()
    assert b.state == "open"
    with pytest.raises(CircuitOpen, match="3 consecutive failures"):
        b.before_call()


def test_half_open_lets_one_trial_through_then_closes_on_success() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.before_call()
        b.failure()
    clock.now = 9.9
    with pytest.raises(CircuitOpen):
        b.before_call()
    clock.now = 10.0
    b.before_call()  # the trial
    assert b.state == "half_open"
    with pytest.raises(CircuitOpen, match="trial"):
        b.before_call()  # everyone else still fails fast
    b.success()
    assert b.state == "closed"
    b.before_call()
    assert b.transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_trial_opens_it_again_for_a_full_period() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.before_call()
        b.failure()
    clock.now = 10.0
    b.before_call()
    b.failure()
    assert b.state == "open"
    clock.now = 19.0
    with pytest.raises(CircuitOpen):
        b.before_call()
    clock.now = 20.0
    b.before_call()
    assert b.state == "half_open"


def test_a_cancelled_trial_frees_the_slot() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.before_call()
        b.failure()
    clock.now = 10.0
    b.before_call()
    b.release()
    b.before_call()  # another trial may go
    assert b.state == "half_open"
