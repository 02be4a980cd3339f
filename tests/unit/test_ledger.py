"""The side-effect ledger on SQLite and PostgreSQL, and duplicate deliveries of one activity
to two workers, each with its own connection to the PostgreSQL ledger."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tether import errors
from tether.activities.tools import ToolActivities
from tether.contracts import ToolInvocation, ToolResult
from tether.domains.support import PACK
from tether.domains.support.business import BusinessServer
from tether.ledger import Ledger

LEASE = timedelta(seconds=30)


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    book = Ledger(database_url)
    yield book
    book.close()


def test_claim_settle_replay_conflict(ledger: Ledger) -> None:
    args = {"order_id": "ORD-1", "amount_cents": 500}
    assert ledger.claim("k1", "issue_refund", "r1", args, lease=LEASE).outcome == "act"
    assert ledger.claim("k1", "issue_refund", "r1", args, lease=LEASE).outcome == "in_progress"
    ledger.settle("k1", '{"done": true}')
    replay = ledger.claim("k1", "issue_refund", "r1", args, lease=LEASE)
    assert (replay.outcome, replay.result) == ("settled", '{"done": true}')
    assert (
        ledger.claim("k1", "issue_refund", "r1", {**args, "amount_cents": 900}, lease=LEASE).outcome
        == "conflict"
    )
    assert [e["status"] for e in ledger.entries("r1")] == ["settled"]
    # The same key from another request, or for another tool, is not a replay of this one:
    # a run started under a finished request's workflow id must not take its effects.
    for tool, request in (("issue_refund", "r-other"), ("send_reply", "r1")):
        assert ledger.claim("k1", tool, request, args, lease=LEASE).outcome == "conflict"


def test_a_dead_claim_is_taken_over_after_its_lease(ledger: Ledger) -> None:
    args = {"x": 1}
    assert ledger.claim("k2", "send_reply", "r2", args, lease=timedelta(0)).outcome == "act"
    takeover = ledger.claim("k2", "send_reply", "r2", args, lease=LEASE)
    assert (takeover.outcome, takeover.claims) == ("act", 2)
    assert ledger.claim("k2", "send_reply", "r2", args, lease=LEASE).outcome == "in_progress"


def test_concurrent_claims_let_exactly_one_act(ledger: Ledger) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(
            pool.map(lambda _: ledger.claim("k3", "t", "r3", {}, lease=LEASE).outcome, range(16))
        )
    assert outcomes.count("act") == 1 and outcomes.count("in_progress") == 15


@pytest.fixture
def business(tmp_path: Path) -> Iterator[BusinessServer]:
    server = BusinessServer(tmp_path / "biz.db").start()
    yield server
    server.stop()


async def deliver(worker: ToolActivities, call: ToolInvocation) -> ToolResult:
    """One delivery, retried on InProgress as Temporal's retry policy would."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, start_to_close_timeout=LEASE)
    for _ in range(100):
        try:
            return await env.run(worker.execute, call)
        except ApplicationError as err:
            if err.type != errors.IN_PROGRESS:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError("never settled")


async def test_duplicate_deliveries_to_two_workers_act_once(
    postgres_url: str, business: BusinessServer
) -> None:
    ledgers = [Ledger(postgres_url), Ledger(postgres_url)]  # two workers, two connection pools
    async with (
        httpx.AsyncClient(base_url=business.url) as h1,
        httpx.AsyncClient(base_url=business.url) as h2,
    ):
        workers = [
            ToolActivities([PACK], {("support", "shop"): h}, book)
            for h, book in zip((h1, h2), ledgers, strict=True)
        ]
        calls = [
            ToolInvocation(
                domain="support",
                tool="issue_refund",
                arguments={"order_id": "ORD-1007", "amount_cents": 100, "reason": "r"},
                idempotency_key=f"wf-{i}/1/issue_refund",
                request_id=f"r-{i}",
                granted=["refunds:issue"],
            )
            for i in range(20)
        ]
        results = await asyncio.gather(*(deliver(w, c) for c in calls for w in workers))
    for ledger in ledgers:
        ledger.close()
    refunds = business.db.rows("refunds")
    assert len(refunds) == 20 and len({r["idempotency_key"] for r in refunds}) == 20
    assert business.db.order("ORD-1007")["refunded_cents"] == 2_000  # type: ignore[index]
    by_key: dict[str, set[str]] = {}
    for result in results:
        by_key.setdefault(result.idempotency_key, set()).add(result.output["refund_id"])
    assert all(len(ids) == 1 for ids in by_key.values())  # both deliveries saw the same refund
