"""Duplicate deliveries across two worker processes on one task queue, sharing the
PostgreSQL ledger: a slow payment system makes Temporal time out the first attempt of every
refund and deliver it again, to either worker, while the first is still acting. Each
intended effect must still happen exactly once. (The first attempt runs beside the workflow, a
local activity; the attempts after it are dispatched: steps.LOCAL_TOOLS.)"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import FRESHNESS_AS_OF, new_id
from tests.processes import WorkerProcess
from tether.client import Tether
from tether.config import RetrievalConfig, Settings, Timeouts
from tether.contracts import DecisionAction
from tether.domains.support.business import BusinessServer
from tether.embeddings import Embedder
from tether.ledger import Ledger
from tether.workers.main import Resources, resolution_worker

pytestmark = pytest.mark.integration

REQUESTS = 8
ORDER, CUSTOMER, CENTS = "ORD-1003", "C-102", 100
TOOL_TIMEOUT = timedelta(seconds=2)
PAYMENT_TAKES = 4.0  # seconds: longer than the tool timeout, so every refund is redelivered


async def ingest_once(settings: Settings, embedder: Embedder, env: WorkflowEnvironment) -> None:
    """Index the handbook into the first worker's vector store (the embedded store is one
    process per directory), then release it."""
    res = Resources.build(settings, embedder=embedder)
    try:
        async with resolution_worker(env.client, res):
            await Tether(env.client, settings).ingest_pack("support")
    finally:
        await res.close()


@pytest.fixture
def business(tmp_path: Path) -> Iterator[BusinessServer]:
    server = BusinessServer(tmp_path / "business.db").start()
    yield server
    server.stop()


async def test_two_workers_duplicate_deliveries_act_once(
    tmp_path: Path,
    temporal_env: WorkflowEnvironment,
    embedder: Embedder,
    postgres_url: str,
    business: BusinessServer,
) -> None:
    queue = new_id("dup")
    settings = Settings(
        data_dir=tmp_path / "worker-a",
        temporal_address=temporal_env.client.service_client.config.target_host,
        domains=["support"],
        systems={"shop": business.url},
        task_queue=queue,
        model_queue=f"{queue}-model",
        store_url=postgres_url,  # outcomes and the side-effect ledger, shared by both workers
        retrieval=RetrievalConfig(freshness_as_of=FRESHNESS_AS_OF),
        timeouts=Timeouts(tool=TOOL_TIMEOUT),
    )
    await ingest_once(settings, embedder, temporal_env)
    second = settings.model_copy(update={"data_dir": tmp_path / "worker-b"})
    shutil.copytree(
        settings.resolved_qdrant_path("support"), second.resolved_qdrant_path("support")
    )
    workers = [
        WorkerProcess(s, tmp_path / f"{name}.log", TETHER_STORE_URL=postgres_url)
        for name, s in (("a", settings), ("b", second))
    ]
    business.db.delays["/refunds"] = [PAYMENT_TAKES] * REQUESTS
    try:
        for worker in workers:
            worker.start()
        tether = Tether(temporal_env.client, settings)
        requests = [
            {
                "request_id": new_id(f"dup{i}"),
                "subject": CUSTOMER,
                "requester": CUSTOMER,
                "text": f"Please refund $1.00 on {ORDER}, part {i} arrived broken.",
            }
            for i in range(REQUESTS)
        ]
        handles = [await tether.submit(r) for r in requests]
        outcomes = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 180)
    finally:
        for worker in workers:
            worker.stop()

    # Every request refunded and replied, each effect exactly once.
    for outcome in outcomes:
        assert outcome.decision.action is DecisionAction.AUTO, outcome.decision.reasons
        assert [(a.tool, a.ok) for a in outcome.actions] == [
            ("issue_refund", True),
            ("send_reply", True),
        ]
    expected = Counter(a.idempotency_key for o in outcomes for a in o.actions)
    rows = business.db.rows("refunds") + business.db.rows("messages")
    assert Counter(str(r["idempotency_key"]) for r in rows) == expected
    assert business.db.order(ORDER)["refunded_cents"] == CENTS * REQUESTS  # type: ignore[index]

    # The duplicates were real: every refund was claimed again after its first delivery timed
    # out, and the two processes both acted on at least one of the same keys.
    ledger = Ledger(postgres_url)
    claims = {
        e["key"]: e["claims"]
        for r in requests
        for e in ledger.entries(r["request_id"])
        if e["tool"] == "issue_refund"
    }
    ledger.close()
    assert len(claims) == REQUESTS and all(n > 1 for n in claims.values()), claims
    logs = [w.log.read_text() for w in workers]
    seen = [set(re.findall(r"ledger (\S+/issue_refund): act", log)) for log in logs]
    assert seen[0] & seen[1], "no refund key was acted on by both workers"
    # ...and the payment system itself saw duplicates while the first was still in flight.
    answered = business.db.answered
    assert answered["processed"] == 2 * REQUESTS and answered["idempotency_in_progress"] > 0
    print(
        f"{REQUESTS} requests, {sum(expected.values())} effects expected and found; "
        f"claims per refund {sorted(claims.values())}; keys seen by both workers "
        f"{len(seen[0] & seen[1])}; the payment system answered {dict(answered)}"
    )
