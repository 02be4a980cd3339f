"""Side effects under crashes: the worker is a real process, killed with SIGKILL mid-flight and
restarted; the Temporal dev server (file database) is restarted mid-run. Every workflow must
complete and the business systems must hold exactly one effect per intended effect. Half the
requests are support refunds, half itops restarts: both packs' writes are drilled."""

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

from tests.conftest import new_id, policies
from tests.processes import WorkerProcess
from tether.client import Tether, connect
from tether.config import Settings, Timeouts
from tether.contracts import DecisionAction, Mode, Outcome
from tether.domains.itops.systems import ItopsSystems
from tether.domains.support.business import BusinessServer
from tether.stack import TemporalDevServer, free_port

pytestmark = pytest.mark.integration

REQUESTS = 50
KILLS = 5
ORDER, CUSTOMER, CENTS = "ORD-1005", "C-100", 100  # 25 x $1.00 fits the order's $65.00
HOST, SERVICE, EMPLOYEE = "stg-web-01", "svc-cart", "E-202"  # staging, the team's: automatic


@dataclass
class Rig:
    settings: Settings
    business: BusinessServer
    itops: ItopsSystems
    temporal: TemporalDevServer
    log: Path


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    business = BusinessServer(tmp_path / "business.db").start()
    itops = ItopsSystems.start(tmp_path / "itops.sqlite")
    temporal = TemporalDevServer(tmp_path / "temporal.db", port=free_port(), ui_port=free_port())
    await temporal.start()
    queue = new_id("crash")
    settings = Settings(
        data_dir=tmp_path / "data",
        temporal_address=temporal.address,
        domains=["support", "itops"],
        systems={
            "shop": business.url,
            "itops.cmdb": itops.cmdb.url,
            "itops.changes": itops.changes.url,
        },
        policies=policies(tmp_path / "keys", {"itops": {"rules": {"freeze_windows": []}}}),
        task_queue=queue,
        model_queue=f"{queue}-model",
        # Short activity timeouts: a killed worker's activities are retried within seconds.
        # How long a proposal waits for the restarting worker is the default's business.
        timeouts=Timeouts(
            retrieval=timedelta(seconds=5),
            model_start_to_close=timedelta(seconds=5),
            verification=timedelta(seconds=5),
            tool=timedelta(seconds=5),
            record=timedelta(seconds=5),
        ),
    )
    yield Rig(settings, business, itops, temporal, tmp_path / "worker.log")
    temporal.stop()
    business.stop()
    itops.stop()


def ticket(i: int) -> tuple[str, dict[str, str]]:
    """(domain, request): even ones a refund, odd ones a restart."""
    if i % 2:
        text = f"Please restart {SERVICE} on {HOST}, cart sessions drop (report {i})."
        return "itops", {
            "request_id": f"crash-{i:03d}-{new_id()}",
            "subject": EMPLOYEE,
            "requester": EMPLOYEE,
            "text": text,
        }
    return "support", {
        "request_id": f"crash-{i:03d}-{new_id()}",
        "subject": CUSTOMER,
        "requester": CUSTOMER,
        "text": f"Please refund $1.00 on {ORDER}, item {i} was missing from the box.",
    }


def effect_rows(rig: Rig) -> list[dict[str, object]]:
    shop, itops = rig.business.db, rig.itops.db
    return [
        *shop.rows("refunds"),
        *shop.rows("messages"),
        *itops.rows("restarts"),
        *itops.rows("notifications"),
    ]


def effects(rig: Rig) -> int:
    return len(effect_rows(rig))


async def wait_for_progress(rig: Rig, since: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while effects(rig) <= since:
        if time.monotonic() > deadline:
            raise AssertionError("no progress after restart")
        await asyncio.sleep(0.05)


PLANS = {
    "support": [("issue_refund", True), ("send_reply", True)],
    "itops": [("restart_service", True), ("notify_requester", True)],
}


def assert_exactly_once(rig: Rig, outcomes: list[Outcome]) -> tuple[int, int]:
    """The business systems hold exactly the effects the recorded outcomes say happened: no
    duplicate, none lost, none unrecorded. Returns (effects expected, requests degraded)."""
    expected = Counter(a.idempotency_key for o in outcomes for a in o.actions if a.ok)
    found = Counter(str(r["idempotency_key"]) for r in effect_rows(rig))
    assert found == expected, (found - expected, expected - found)
    done = Counter(a.tool for o in outcomes for a in o.actions if a.ok)
    assert rig.business.db.order(ORDER)["refunded_cents"] == CENTS * done["issue_refund"]  # type: ignore[index]
    assert rig.itops.db.service(HOST, SERVICE)["restarts"] == done["restart_service"]  # type: ignore[index]
    degraded = 0
    for o in outcomes:  # every request ends in a defined state
        if o.decision.action is DecisionAction.AUTO:
            assert [(a.tool, a.ok) for a in o.actions] == PLANS[o.domain], o
        else:  # a model attempt killed on every retry: the designed fallback, no actions
            assert o.mode is Mode.RETRIEVAL_ONLY and o.actions == [] and o.followup_required, o
            degraded += 1
    return sum(expected.values()), degraded


async def submit_all(rig: Rig) -> tuple[Tether, list[dict[str, str]], list[asyncio.Task[Outcome]]]:
    tether = Tether(await connect(rig.settings), rig.settings)
    await tether.ingest_pack("support")
    await tether.ingest_pack("itops")
    requests = [ticket(i) for i in range(REQUESTS)]
    handles = [await tether.submit(r, domain=domain) for domain, r in requests]
    return tether, [r for _, r in requests], [asyncio.create_task(h.result()) for h in handles]


async def test_worker_killed_mid_flight_never_acts_twice(rig: Rig) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    worker = WorkerProcess(rig.settings, rig.log)
    worker.start()
    try:
        _, requests, results = await submit_all(rig)
        for _ in range(KILLS):
            before = effects(rig)
            await wait_for_progress(rig, before)  # kill while effects are landing
            await asyncio.sleep(rng.uniform(0.0, 0.6))
            worker.kill()
            worker.start()
        outcomes = await asyncio.wait_for(asyncio.gather(*results), timeout=180)
    finally:
        worker.stop()
    expected, degraded = assert_exactly_once(rig, outcomes)
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
        await wait_for_progress(rig, effects(rig))
        rig.temporal.stop()  # same port, same database file
        await rig.temporal.start()
        outcomes = await asyncio.wait_for(asyncio.gather(*results), timeout=180)
    finally:
        worker.stop()
    expected, degraded = assert_exactly_once(rig, outcomes)
    print(
        f"server restarted: {len(requests)} requests, {expected} effects expected and found, {degraded} degraded"
    )
    assert len(outcomes) == len(requests) and degraded == 0
