"""Load is not an outage: a proposal that waits for a busy model worker waits in line (its
stage says so) and gets the model's answer; only a model queue nobody polls degrades the
request to retrieval-only. Real dev server, real workers, the real local model behind a
deliberately slow, one-at-a-time model worker."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id, ticket
from tether.client import Tether
from tether.config import LLMConfig, Settings, Timeouts
from tether.contracts import (
    DecisionAction,
    Mode,
    ModelIdentity,
    ProposeInput,
    RawProposal,
    Request,
    Stage,
)
from tether.localmodel import LocalModel
from tether.workers.main import model_worker_for

pytestmark = pytest.mark.integration

QUESTION = "How long does standard shipping take to Ohio?"


class SlowModel:
    """The local model, ``delay`` seconds per call: a model that is busy, not down."""

    def __init__(self, model: LocalModel, delay: float) -> None:
        self._model, self._delay = model, delay

    def identity(self) -> ModelIdentity:
        return self._model.identity()

    async def propose(self, inp: ProposeInput) -> RawProposal:
        await asyncio.sleep(self._delay)
        return await self._model.propose(inp)


async def stages_seen(tether: Tether, rids: list[str], until: asyncio.Event) -> set[Stage]:
    seen: set[Stage] = set()
    while not until.is_set():
        for rid in rids:
            with contextlib.suppress(RPCError):  # not started yet
                seen.add((await tether.status(rid)).stage)
        await asyncio.sleep(0.1)
    return seen


async def test_a_backlog_on_a_served_model_queue_waits_in_line_and_degrades_nobody(
    temporal_env: WorkflowEnvironment, settings: Settings, workers: None, local_model: LocalModel
) -> None:
    """Six requests, one model slot, 1 s a call, and 1 s allowed to wait for a worker: all
    but the first outwait model_schedule_to_start, none is degraded."""
    queue = new_id("busy-model")
    client = temporal_env.client
    tether = Tether(
        client,
        settings.model_copy(
            update={
                "model_queue": queue,
                "timeouts": Timeouts(model_schedule_to_start=timedelta(seconds=1)),
            }
        ),
    )
    llm = LLMConfig(max_concurrent=1)
    requests = [
        Request.model_validate(ticket(QUESTION, "C-101", rid=new_id("line"))) for _ in range(6)
    ]
    async with model_worker_for(client, SlowModel(local_model, 1.0), llm, queue):
        done = asyncio.Event()
        watching = asyncio.create_task(stages_seen(tether, [r.request_id for r in requests], done))
        handles = [await tether.submit(r) for r in requests]
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(h.result() for h in handles)), timeout=120
        )
        done.set()
        seen = await watching
    assert [o.mode for o in outcomes] == [Mode.NORMAL] * 6, [o.decision for o in outcomes]
    assert all(o.decision.action is not DecisionAction.DEGRADED for o in outcomes)
    assert Stage.WAITING_FOR_MODEL in seen, seen


async def test_a_model_queue_whose_worker_is_gone_degrades_once_it_stops_polling(
    temporal_env: WorkflowEnvironment, settings: Settings, workers: None, local_model: LocalModel
) -> None:
    """The worker served the queue, then went away: its last poll ages past the model's
    start-to-close (+10 s), and the request then answers from passages only."""
    queue = new_id("gone-model")
    client = temporal_env.client
    timeouts = Timeouts(
        model_schedule_to_start=timedelta(seconds=1), model_start_to_close=timedelta(seconds=2)
    )
    tether = Tether(
        client, settings.model_copy(update={"model_queue": queue, "timeouts": timeouts})
    )
    async with model_worker_for(client, local_model, LLMConfig(), queue):
        served = await tether.resolve(Request.model_validate(ticket(QUESTION, "C-101")))
    assert served.mode is Mode.NORMAL
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await asyncio.wait_for(
        tether.resolve(Request.model_validate(ticket(QUESTION, "C-101"))), timeout=90
    )
    assert outcome.mode is Mode.RETRIEVAL_ONLY
    assert "model_unavailable" in outcome.decision.codes()
    assert loop.time() - started >= 1.0  # it waited, then judged
