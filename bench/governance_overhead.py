"""What governance costs: the same ticket through ResolutionWorkflow (retrieve, order lookup,
propose, validate, verify, policy, act, record, search attributes) and through an ungoverned
baseline (retrieve, propose, act), interleaved in one run against one dev server.

    make bench            # or: python -m bench.governance_overhead --rounds 30
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.ungoverned import UngovernedWorkflow
from tether import search
from tether.client import Tether
from tether.config import Settings
from tether.contracts import Request, ResolutionInput
from tether.domains.support.business import BusinessServer
from tether.stack import FAST_DYNAMIC_CONFIG, temporal_binary
from tether.workers.main import Resources, model_worker, resolution_worker

TICKET = "Where is my order ORD-1001? It has not arrived."


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        business = BusinessServer(Path(tmp) / "business.db").start()
        settings = Settings(
            data_dir=Path(tmp),
            systems={"shop": business.url},
            task_queue="bench",
            model_queue="bench-model",
        )
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            dev_server_extra_args=FAST_DYNAMIC_CONFIG,
            search_attributes=search.ALL,
            data_converter=pydantic_data_converter,
        )
        res = Resources.build(settings)
        client = env.client
        tether = Tether(client, settings)
        try:
            async with (
                resolution_worker(client, res, extra_workflows=[UngovernedWorkflow]),
                model_worker(client, res),
            ):
                await tether.ingest_pack("support")
                governed: list[float] = []
                baseline: list[float] = []
                for i in range(rounds + 3):  # the first three warm caches and are discarded
                    request = Request(
                        request_id=f"b-{uuid.uuid4().hex[:8]}",
                        subject="C-100",
                        requester="C-100",
                        text=TICKET,
                    )
                    t0 = time.perf_counter()
                    outcome = await tether.resolve(request)
                    t1 = time.perf_counter()
                    await client.execute_workflow(
                        UngovernedWorkflow.run,
                        ResolutionInput(
                            domain="support",
                            request=request.model_copy(
                                update={"request_id": request.request_id + "-u"}
                            ),
                            model_queue=settings.model_queue,
                        ),
                        id=f"ungoverned-{request.request_id}",
                        task_queue=settings.task_queue,
                    )
                    t2 = time.perf_counter()
                    assert outcome.decision.action.value == "auto", outcome.decision
                    if i >= 3:
                        governed.append((t1 - t0) * 1000)
                        baseline.append((t2 - t1) * 1000)
        finally:
            await res.close()
            await env.shutdown()
            business.stop()
    g50, b50 = statistics.median(governed), statistics.median(baseline)
    print(f"rounds: {rounds} (same ticket, interleaved, one dev server, 2 cores)")
    print(f"ungoverned  p50 {b50:7.1f} ms   p95 {_pct(baseline, 0.95):7.1f} ms")
    print(f"governed    p50 {g50:7.1f} ms   p95 {_pct(governed, 0.95):7.1f} ms")
    print(
        f"ratio governed/ungoverned p50: {g50 / b50:.2f}x   p95: {_pct(governed, 0.95) / _pct(baseline, 0.95):.2f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    asyncio.run(main(parser.parse_args().rounds))
