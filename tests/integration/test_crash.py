"""Side effects under crashes: the worker is a real process, killed with SIGKILL mid-flight and
restarted; the Temporal dev server (file database) is restarted mid-run. Every workflow must
complete and the business system must hold exactly one effect per intended effect."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import new_id
from tests.processes import WorkerProcess
from tether.client import Tether, connect
from tether.config import Settings, Timeouts
from tether.contracts import DecisionAction, Mode, Outcome
from tether.domains.support.business import BusinessServer
from tether.stack import TemporalDevServer, free_port

pytestmark = pytest.mark.integration

REQUESTS = 50
KILLS = 5
ORDER, CUSTOMER, CENTS = "ORD-1005", "C-100", 100  # 50 x $1.00 fits the order's $65.00


@dataclass
class Rig:
    settings: Settings
    business: BusinessServer
    temporal: TemporalDevServer
    log: Path


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    business = BusinessServer(tmp_path / "business.db").start()
    temporal = TemporalDevServer(tmp_path / "temporal.db", port=free_port(), ui_port=free_port())
    await temporal.start()
    queue = new_id("crash")
    settings = Settings(
        data_dir=tmp_path / "data",
        temporal_address=temporal.address,
        systems={"shop": business.url},
        task_queue=queue,
        model_queue=f"{queue}-model",
        # Short activity timeouts: a killed worker's activities are retried within seconds.
        # Proposals may wait for the restarting worker (~8 s to load the model each time):
        # this test is about side effects, test_resolution covers the outage fallback.
        timeouts=Timeouts(
            model_schedule_to_start=timedelta(minutes=2),
            retrieval=timedelta(seconds=5),
            model_start_to_close=timedelta(seconds=5),
            verification=timedelta(seconds=5),
            tool=timedelta(seconds=5),
            record=timedelta(seconds=5),
        ),
    )
    yield Rig(settings, business, temporal, tmp_path / "worker.log")
    temporal.stop()
    business.stop()


def ticket(i: int) -> dict[str, str]:
    return {
        "request_id": f"crash-{i:03d}-{new_id()}",
        "subject": CUSTOMER,
        "requester": CUSTOMER,
        "text": f"Please refund $1.00 on {ORDER}, item {i} was missing from the box.",
    }


def effects(business: BusinessServer) -> int:
    return len(business.db.rows("refunds")) + len(business.db.rows("messages"))


async def wait_for_progress(business: BusinessServer, since: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while effects(business) <= since:
        if time.monotonic() > deadline:
            raise AssertionError("no progress after restart")
        await asyncio.sleep(0.05)


def assert_exactly_once(business: BusinessServer, outcomes: list[Outcome]) -> tuple[int, int]:
    """The business system holds exactly the effects the recorded outcomes say happened: no
    duplicate, none lost, none unrecorded. Returns (effects expected, requests degraded)."""
    expected = Counter(a.idempotency_key for o in outcomes for a in o.actions if a.ok)
    rows = business.db.rows("refunds") + business.db.rows("messages")
    found = Counter(str(r["idempotency_key"]) for r in rows)
    assert found == expected, (found - expected, expected - found)
    refunds = sum(1 for o in outcomes for a in o.actions if a.ok and a.tool == "issue_refund")
    assert business.db.order(ORDER)["refunded_cents"] == CENTS * refunds  # type: ignore[index]
    degraded = 0
    for o in outcomes:  # every request ends in a defined state
        if o.decision.action is DecisionAction.AUTO:
            assert [(a.tool, a.ok) for a in o.actions] == [
                ("issue_refund", True),
                ("send_reply", True),
            ], o
        else:  # a model attempt killed on every retry: the designed fallback, no actions
            assert o.mode is Mode.RETRIEVAL_ONLY and o.actions == [] and o.followup_required, o
            degraded += 1
    return sum(expected.values()), degraded


async def submit_all(rig: Rig) -> tuple[Tether, list[dict[str, str]], list[asyncio.Task[Outcome]]]:
    tether = Tether(await connect(rig.settings), rig.settings)
    await tether.ingest_pack("support")
    requests = [ticket(i) for i in range(REQUESTS)]
    handles = [await tether.submit(r) for r in requests]
    return tether, requests, [asyncio.create_task(h.result()) for h in handles]


async def test_worker_killed_mid_flight_never_acts_twice(rig: Rig) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    worker = WorkerProcess(rig.settings, rig.log)
    worker.start()
    try:
        _, requests, results = await submit_all(rig)
        for _ in range(KILLS):
            before = effects(rig.business)
            await wait_for_progress(rig.business, before)  # kill while effects are landing
            await asyncio.sleep(rng.uniform(0.0, 0.6))
            worker.kill()
            worker.start()
        outcomes = await asyncio.wait_for(asyncio.gather(*results), timeout=180)
    finally:
        worker.stop()
    expected, degraded = assert_exactly_once(rig.business, outcomes)
    print(
        f"seed {seed}: {KILLS} SIGKILLs, {len(requests)} requests, {expected} effects, {degraded} degraded"
    )
    # Each kill costs an activity at most one of its 6 model attempts, and proposals wait for
    # the restarted worker: nothing should degrade.
    assert len(outcomes) == len(requests) and degraded == 0


async def test_temporal_server_restarted_mid_run(rig: Rig) -> None:
    worker = WorkerProcess(rig.settings, rig.log)
    worker.start()
    try:
        _, requests, results = await submit_all(rig)
        await wait_for_progress(rig.business, effects(rig.business))
        rig.temporal.stop()  # same port, same database file
        await rig.temporal.start()
        outcomes = await asyncio.wait_for(asyncio.gather(*results), timeout=180)
    finally:
        worker.stop()
    expected, degraded = assert_exactly_once(rig.business, outcomes)
    print(
        f"server restarted: {len(requests)} requests, {expected} effects expected and found, {degraded} degraded"
    )
    assert len(outcomes) == len(requests) and degraded == 0
