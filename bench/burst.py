"""A burst: 1,200 requests submitted at once, from a client process of their own, to the
deployment `tether up` runs (a workflow process, a compute process that runs the local model).
Counted from the histories: workflow tasks timed out or failed, workflow task execution time
(started to completed, p50/p99/max), requests degraded while the model worker served; and the
SDK's "Workflow task duration exceeded" warnings (TMPRL1104) in the workers' logs.

    python -m bench.burst [--requests 1200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, TimeoutType

from bench.deployment import deployment
from bench.governance_overhead import pct, request
from tether.contracts import Mode
from tether.names import workflow_id_for

RESULTS = Path(__file__).parent / "results" / "burst.json"


async def main(requests: int, workflow_processes: int) -> dict[str, Any]:
    async with deployment(["compute", *["workflow"] * workflow_processes]) as deployed:
        client, tether, logs = deployed.client, deployed.tether, deployed.logs
        batch = [request() for _ in range(requests)]
        started = time.perf_counter()
        handles = await asyncio.gather(*(tether.submit(r) for r in batch))
        submitted = time.perf_counter() - started
        outcomes = await asyncio.gather(*(h.result() for h in handles))
        wall = time.perf_counter() - started
        execution: list[float] = []
        timeouts: dict[str, int] = {}
        failures = 0
        for r in batch:
            history = await client.get_workflow_handle(
                workflow_id_for(r.request_id)
            ).fetch_history()
            begun = 0.0
            for event in history.events:
                at = event.event_time.ToMicroseconds() / 1000
                kind = event.event_type
                if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                    begun = at
                elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    execution.append(at - begun)
                elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                    # START_TO_CLOSE: a task ran too long and is run again (work lost);
                    # SCHEDULE_TO_START: a task waited past the sticky queue's timeout and
                    # moved to the shared queue (nothing lost, nothing run twice).
                    kind_of = TimeoutType.Name(
                        event.workflow_task_timed_out_event_attributes.timeout_type
                    ).removeprefix("TIMEOUT_TYPE_")
                    timeouts[kind_of] = timeouts.get(kind_of, 0) + 1
                elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    failures += 1
        warnings = sum(log.read_text(errors="replace").count("TMPRL1104") for log in logs)
    return {
        "requests": requests,
        "workflow_processes": workflow_processes,
        "submitted_in_s": round(submitted, 1),
        "all_done_in_s": round(wall, 1),
        "per_s": round(requests / wall, 2),
        "degraded": sum(1 for o in outcomes if o.mode is not Mode.NORMAL),
        "workflow_task_timeouts": timeouts,
        "workflow_task_failures": failures,
        "workflow_task_exec_ms": {
            "p50": round(pct(execution, 0.5), 1),
            "p99": round(pct(execution, 0.99), 1),
            "max": round(max(execution), 1),
        },
        "tmprl1104_warnings": warnings,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1200)
    parser.add_argument("--workflow-processes", type=int, default=1)
    args = parser.parse_args()
    report = asyncio.run(main(args.requests, args.workflow_processes))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
