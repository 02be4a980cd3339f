"""Evidence-aware proposal reuse on a repeated-ticket workload: the same people asking the
same things again (a ticket re-sent, a question asked on two channels). The same workload
runs twice in one run, against a deployment whose support policy reuses proposals and one
whose policy does not (the default), each a fresh dev server, shop and workers as `tether up`
runs them (a compute process with the local model, a workflow process).

Counted from the histories and outcomes: model calls (propose activities scheduled), the hit
rate, the calls saved, and request latency (submit to outcome), for hits and misses.

    python -m bench.reuse [--repeats 5] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType

from bench.deployment import deployment
from bench.governance_overhead import pct
from tether import names
from tether.contracts import DecisionAction, Outcome, Request
from tether.names import workflow_id_for

RESULTS = Path(__file__).parent / "results" / "reuse.json"
# (subject, text): questions answered without a person, each about the asker's own records
# or the handbook.
ASKED = [
    ("C-100", "Where is my order ORD-1001? It has not arrived."),
    ("C-101", "How long does standard shipping take?"),
    ("C-102", "How long does a refund take to reach my card?"),
    ("C-103", "Can I change the email address on my account?"),
    ("C-104", "Do you ship to Canada, and how long does it take?"),
    ("C-105", "What does the warranty cover?"),
]
REUSE = json.dumps({"support": {"proposal_reuse": "PT1H"}})


def workload(repeats: int) -> list[tuple[str, str]]:
    """Each question ``repeats`` times, in a fixed shuffled order (seeded: both runs alike)."""
    asked = [q for q in ASKED for _ in range(repeats)]
    random.Random(7).shuffle(asked)
    return asked


async def run(repeats: int, concurrency: int, reuse: bool) -> dict[str, Any]:
    env = {"TETHER_POLICIES": REUSE} if reuse else {}
    async with deployment(["compute", "workflow"], **env) as deployed:
        tether, client = deployed.tether, deployed.client
        slots = asyncio.Semaphore(concurrency)
        results: list[tuple[Outcome, float]] = []

        async def one(subject: str, text: str) -> None:
            rid = f"reuse-{uuid.uuid4().hex[:10]}"
            async with slots:
                t0 = time.perf_counter()
                handle = await tether.submit(
                    Request(request_id=rid, subject=subject, requester=subject, text=text)
                )
                outcome = await asyncio.wait_for(handle.result(), 300)
                results.append((outcome, (time.perf_counter() - t0) * 1000))

        started = time.perf_counter()
        await asyncio.gather(*(one(s, t) for s, t in workload(repeats)))
        wall = time.perf_counter() - started
        calls = 0
        for outcome, _ in results:
            history = await client.get_workflow_handle(
                workflow_id_for(outcome.request_id)
            ).fetch_history()
            calls += sum(
                1
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                and e.activity_task_scheduled_event_attributes.activity_type.name == names.PROPOSE
            )
    hits = [ms for o, ms in results if o.reused_from is not None]
    misses = [ms for o, ms in results if o.reused_from is None]
    everyone = [ms for _, ms in results]
    actions: dict[str, int] = {}
    for o, _ in results:
        actions[o.decision.action.value] = actions.get(o.decision.action.value, 0) + 1
    return {
        "requests": len(results),
        "model_calls": calls,
        "hits": len(hits),
        "hit_rate": round(len(hits) / len(results), 3),
        "actions": actions,
        "auto_share": round(actions.get(DecisionAction.AUTO.value, 0) / len(results), 3),
        "latency_ms": {"p50": round(pct(everyone, 0.5)), "p95": round(pct(everyone, 0.95))},
        "hit_latency_ms_p50": round(pct(hits, 0.5)) if hits else None,
        "miss_latency_ms_p50": round(pct(misses, 0.5)) if misses else None,
        "requests_per_s": round(len(results) / wall, 2),
    }


async def main(repeats: int, concurrency: int) -> dict[str, Any]:
    without = await run(repeats, concurrency, reuse=False)
    with_reuse = await run(repeats, concurrency, reuse=True)
    saved = without["model_calls"] - with_reuse["model_calls"]
    return {
        "workload": {
            "distinct_questions": len(ASKED),
            "repeats": repeats,
            "concurrency": concurrency,
        },
        "without_reuse": without,
        "with_reuse": with_reuse,
        "model_calls_saved": saved,
        "model_calls_saved_share": round(saved / max(without["model_calls"], 1), 3),
        "latency_p50_ratio": round(
            with_reuse["latency_ms"]["p50"] / max(without["latency_ms"]["p50"], 1), 2
        ),
        "throughput_ratio": round(
            with_reuse["requests_per_s"] / max(without["requests_per_s"], 0.01), 2
        ),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    result = asyncio.run(main(args.repeats, args.concurrency))
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
