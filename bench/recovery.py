"""Recovery with default settings: how long a restarted worker of each role takes to poll its
queues, and what a SIGKILL of the only worker during 30 in-flight requests costs them
(degraded, duplicated, lost), with every timeout as shipped.

    python -m bench.recovery
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
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
from tether.workers.main import READY

REQUESTS = 30
RESULTS = Path(__file__).parent / "results" / "recovery.json"


class Worker:
    def __init__(self, role: str, env: dict[str, str], log: Path) -> None:
        self.role, self.env, self.log = role, env, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> float:
        """Seconds from exec to every queue of the role polled."""
        started = time.perf_counter()
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tether.cli", "worker", "--role", self.role,
                env=self.env, stdout=out, stderr=out,
            )  # fmt: skip
        seen = self.log.stat().st_size
        while READY not in self.log.read_bytes()[seen:].decode(errors="replace"):
            if self.process.returncode is not None:
                raise RuntimeError(self.log.read_text()[-3000:])
            await asyncio.sleep(0.05)
        return time.perf_counter() - started

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()


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
            report = await measure(root, settings, env, business)
        finally:
            temporal.stop()
            business.stop()
    return report


async def measure(
    root: Path, settings: Settings, env: dict[str, str], business: BusinessServer
) -> dict[str, Any]:
    split = {**env, "TETHER_COMPUTE_QUEUE": "tether-compute"}
    startup: dict[str, list[float]] = {}
    for role in ("workflow", "compute", "all"):
        for _ in range(2):  # the first compute start exports the ONNX model: not counted
            worker = Worker(role, split if role != "all" else env, root / f"{role}.log")
            seconds = await worker.start()
            await worker.stop()
            startup.setdefault(role, []).append(round(seconds, 2))
    worker = Worker("all", env, root / "all.log")
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
    restart = await worker.start()
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
