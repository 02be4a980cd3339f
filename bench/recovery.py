"""Recovery with default settings: how long a restarted worker of each role takes to poll its
queues, and what a SIGKILL of the only worker during 30 in-flight requests costs them
(degraded, duplicated, lost), with every timeout as shipped.

    python -m bench.recovery
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tether.client import Tether, connect
from tether.config import Settings
from tether.contracts import Mode
from tether.domains.support.business import BusinessServer
from tether.stack import TemporalDevServer, free_port
from tether.workers.stack import WorkerProcess

REQUESTS = 30
RESULTS = Path(__file__).parent / "results" / "recovery.json"


async def started(worker: WorkerProcess) -> float:
    """Seconds from exec to every queue of the worker's role polled."""
    begun = time.perf_counter()
    await worker.start()
    return time.perf_counter() - begun


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        business = BusinessServer(root / "business.db").start()
        temporal = TemporalDevServer(root / "temporal.db", port=free_port(), ui_port=free_port())
        await temporal.start()
        settings = Settings(
            data_dir=root / "data", temporal_address=temporal.address,
            domains=["support"], systems={"shop": business.url},
        )  # fmt: skip
        env = {
            **os.environ,
            "TETHER_DATA_DIR": str(settings.data_dir),
            "TETHER_TEMPORAL_ADDRESS": temporal.address,
            "TETHER_DOMAINS": '["support"]',
            "TETHER_SYSTEMS": json.dumps(settings.systems),
        }
        try:
            report = await measure(settings, env, business)
        finally:
            temporal.stop()
            business.stop()
    return report


async def measure(
    settings: Settings, env: dict[str, str], business: BusinessServer
) -> dict[str, Any]:
    split = {**env, "TETHER_COMPUTE_QUEUE": "tether-compute"}
    startup: dict[str, list[float]] = {}
    for role in ("workflow", "compute", "all"):
        for _ in range(2):  # the first compute start exports the ONNX model: not counted
            worker = WorkerProcess(role, 0, split if role != "all" else env)
            seconds = await started(worker)
            await worker.stop()
            startup.setdefault(role, []).append(round(seconds, 2))
    worker = WorkerProcess("all", 1, env)
    await worker.start()
    tether = Tether(await connect(settings), settings)
    await tether.ingest_pack("support")
    requests = [
        {
            "request_id": f"recover-{i:03d}",
            "subject": "C-100",
            "requester": "C-100",
            "text": f"Please refund $1.00 on ORD-1005, item {i} was missing from the box.",
        }
        for i in range(REQUESTS)
    ]
    handles = [await tether.submit(r) for r in requests]
    results = [asyncio.create_task(h.result()) for h in handles]
    while not business.db.rows("refunds"):  # kill while effects are landing
        await asyncio.sleep(0.02)
    await worker.kill()
    killed_at = time.perf_counter()
    restart = await started(worker)
    outcomes = await asyncio.gather(*results)
    finished = time.perf_counter() - killed_at
    await worker.stop()
    keys = Counter(str(r["idempotency_key"]) for r in business.db.rows("refunds"))
    expected = {a.idempotency_key for o in outcomes for a in o.actions if a.tool == "issue_refund"}
    return {
        "startup_seconds": startup,
        "requests": REQUESTS,
        "restart_to_polling_s": round(restart, 2),
        "kill_to_all_done_s": round(finished, 1),
        "degraded": sum(1 for o in outcomes if o.mode is not Mode.NORMAL),
        "duplicated": sum(n - 1 for n in keys.values() if n > 1),
        "lost": len(expected - set(keys)) + (REQUESTS - len(outcomes)),
    }


if __name__ == "__main__":
    report = asyncio.run(main())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
