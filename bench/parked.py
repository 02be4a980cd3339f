"""Requests parked for a person: N approval-bound refunds waiting at once. What they cost the
workflow worker and the Temporal server in memory (RSS before and after), how long
`Tether.pending_page` takes for the first page and `pending()` for the whole list, and how long
a signed approval takes to become an outcome while the rest wait.

    python -m bench.parked [--requests 10000] [--max-cached-workflows 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.deployment import spawn
from tether.client import Tether, connect
from tether.config import Settings
from tether.contracts import Request
from tether.domains.support import PACK as SUPPORT
from tether.domains.support.business import BusinessServer
from tether.signing import directory_for
from tether.stack import TemporalDevServer, free_port

RESULTS = Path(__file__).parent / "results" / "parked.json"
TEXT = "Please refund $120.00 on ORD-1003, the tent pole snapped on the first night."
LEAD = "lead@northwind.example"
APPROVALS = 20


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def main(requests: int, cached: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        business = BusinessServer(root / "business.db").start()
        temporal = TemporalDevServer(root / "temporal.db", port=free_port(), ui_port=free_port())
        await temporal.start()
        keys = root / "keys"
        # No refund tally: the same customer's thousands of waiting refunds would add up to
        # a rejection, and this measures waiting, not the customer limit.
        policy = {"approvers": directory_for(SUPPORT.demo_approvers, keys), "tally_windows": {}}
        settings = Settings(
            data_dir=root / "data",
            temporal_address=temporal.address,
            domains=["support"],
            systems={"shop": business.url},
            keyring=keys,
            compute_queue="tether-compute",
        )
        env = {
            **os.environ,
            "TETHER_DATA_DIR": str(settings.data_dir),
            "TETHER_TEMPORAL_ADDRESS": temporal.address,
            "TETHER_DOMAINS": '["support"]',
            "TETHER_SYSTEMS": json.dumps(settings.systems),
            "TETHER_COMPUTE_QUEUE": "tether-compute",
            "TETHER_POLICIES": json.dumps({"support": policy}, default=str),
            "TETHER_MAX_CACHED_WORKFLOWS": str(cached),
        }
        compute = await spawn("compute", env)
        workflow = await spawn("workflow", env)
        try:
            tether = Tether(await connect(settings), settings)
            await tether.ingest_pack("support")
            report = await measure(tether, requests, workflow.pid, temporal.pid)
        finally:
            for process in (workflow, compute):
                process.terminate()
                await process.wait()
            temporal.stop()
            business.stop()
    report["max_cached_workflows"] = cached
    return report


async def measure(tether: Tether, requests: int, worker: int, server: int) -> dict[str, Any]:
    worker_before, server_before = rss_mb(worker), rss_mb(server)
    slots = asyncio.Semaphore(50)
    ids = [f"park-{i:05d}-{os.urandom(3).hex()}" for i in range(requests)]

    async def park(rid: str) -> None:
        async with slots:
            await tether.submit(
                Request(request_id=rid, subject="C-102", requester="C-102", text=TEXT)
            )

    started = time.perf_counter()
    await asyncio.gather(*(park(rid) for rid in ids))
    waiting = 0
    while waiting < requests:  # every one at the gate
        await asyncio.sleep(2)
        count = await tether.client.count_workflows(
            "TetherStage = 'awaiting_approval' AND ExecutionStatus = 'Running'"
        )
        waiting = count.count
    parked_in = time.perf_counter() - started
    t0 = time.perf_counter()
    page, _ = await tether.pending_page(page_size=50)
    first_page = time.perf_counter() - t0
    t0 = time.perf_counter()
    everything = await tether.pending()
    whole = time.perf_counter() - t0
    approve: list[float] = []
    for status in page[:APPROVALS]:
        t0 = time.perf_counter()
        await tether.review(status.request_id, approver=LEAD, verdict="approve", reason="bench")
        await tether.handle(status.request_id).result()
        approve.append(time.perf_counter() - t0)
    return {
        "requests": requests,
        "parked_in_s": round(parked_in, 1),
        "worker_rss_mb": {"before": round(worker_before), "after": round(rss_mb(worker))},
        "server_rss_mb": {"before": round(server_before), "after": round(rss_mb(server))},
        "pending_first_page_50_s": round(first_page, 2),
        "pending_all_s": round(whole, 1),
        "pending_all_found": len(everything),
        "approve_to_outcome_s": {
            "p50": round(statistics.median(approve), 2),
            "max": round(max(approve), 2),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--max-cached-workflows", type=int, default=600)
    args = parser.parse_args()
    report = asyncio.run(main(args.requests, args.max_cached_workflows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
