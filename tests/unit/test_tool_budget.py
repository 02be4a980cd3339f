"""A tool call run as a local activity keeps its step's budget itself (its schedule-to-close):
Temporal's core retries a local activity past it. A failure whose retry would start past the
budget is final, as it is, and past the budget no attempt starts."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tether import errors
from tether.activities.tools import within_budget
from tether.contracts import ToolResult

DONE = ToolResult(tool="t", idempotency_key="k", arguments={}, ok=True)
POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2,
    maximum_interval=timedelta(seconds=10),
)


def env(
    *, local: bool, started_ago: float, budget: float = 10, attempt: int = 1
) -> ActivityEnvironment:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info,
        is_local=local,
        attempt=attempt,
        scheduled_time=datetime.now(UTC) - timedelta(seconds=started_ago),
        schedule_to_close_timeout=timedelta(seconds=budget),
        retry_policy=POLICY,
    )
    return environment


def failing(err: BaseException) -> Callable[[], Awaitable[ToolResult]]:
    async def attempt() -> ToolResult:
        raise err

    return attempt


async def succeeding() -> ToolResult:
    return DONE


async def test_an_activity_is_left_to_the_server() -> None:
    unavailable = ApplicationError("503", type=errors.UPSTREAM_UNAVAILABLE)
    with pytest.raises(ApplicationError) as raised:
        await env(local=False, started_ago=60).run(within_budget, failing(unavailable))
    assert raised.value is unavailable and not raised.value.non_retryable


async def test_within_the_budget_a_failure_is_retried() -> None:
    unavailable = ApplicationError("503", type=errors.UPSTREAM_UNAVAILABLE)
    with pytest.raises(ApplicationError) as raised:
        # 1 s in, the next attempt 1 s later: well inside 10 s
        await env(local=True, started_ago=1).run(within_budget, failing(unavailable))
    assert raised.value is unavailable and not raised.value.non_retryable
    assert await env(local=True, started_ago=1).run(within_budget, succeeding) == DONE


async def test_a_failure_whose_retry_would_start_past_the_budget_is_final() -> None:
    unavailable = ApplicationError("POST /refunds -> 503", type=errors.UPSTREAM_UNAVAILABLE)
    # attempt 4 waits 8 s before the next: 3 s in, that is past a 10 s budget
    with pytest.raises(ApplicationError) as raised:
        await env(local=True, started_ago=3, attempt=4).run(within_budget, failing(unavailable))
    final = raised.value
    assert final.non_retryable and final.type == errors.UPSTREAM_UNAVAILABLE
    assert "POST /refunds -> 503" in final.message and "budget" in final.message
    # an error that is not Temporal's keeps its kind in the type
    with pytest.raises(ApplicationError) as raised:
        lost = httpx.ConnectError("refused")
        await env(local=True, started_ago=9.5).run(within_budget, failing(lost))
    assert raised.value.non_retryable and raised.value.type == "ConnectError"


async def test_past_the_budget_no_attempt_starts() -> None:
    called = []

    async def attempt() -> ToolResult:
        called.append(1)
        return DONE

    with pytest.raises(ApplicationError) as raised:
        await env(local=True, started_ago=11, attempt=7).run(within_budget, attempt)
    assert raised.value.type == errors.BUDGET_SPENT and raised.value.non_retryable
    assert called == []


async def test_a_refusal_stays_as_it_is() -> None:
    refused = ApplicationError("no", type=errors.PRECONDITION_FAILED, non_retryable=True)
    with pytest.raises(ApplicationError) as raised:
        await env(local=True, started_ago=9.9).run(within_budget, failing(refused))
    assert raised.value is refused
