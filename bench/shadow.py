"""What a live candidate costs the live request: the same tickets with no candidate and with a
candidate sampling every request (share 1), in alternating rounds against one deployment as
`tether up` runs it (a compute process with the local model, a workflow process, a shadow
process for the candidates' runs), at concurrency 1 and 4. The candidate is a stored copy of
the active policy, in two settings:

- same_model: a policy version alone, on the live model: it decides inside the live run, on
  the live proposal and verification, and its decision is written beside the outcome;
- own_model: its model served elsewhere (the instant model, in a process of its own, standing
  in for a candidate model on other hardware): a run of its own in the shadow process, whose
  proposal is verified on the compute process the live requests use too.

Live latency is submit to outcome. The shadow runs it started are counted from the store.

    python -m bench.shadow [--rounds 6] [--per-round 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from bench.deployment import deployment
from bench.governance_overhead import pct
from bench.worker import INSTANT_QUEUE
from tether.contracts import LiveCandidate, Request
from tether.policystore import PolicyStore
from tether.store import Store

RESULTS = Path(__file__).parent / "results" / "shadow.json"
TICKET = ("C-100", "Where is my order ORD-1001? It has not arrived.")


async def main(rounds: int, per_round: int) -> dict[str, Any]:
    roles = ["compute", "shadow", "workflow", "instant"]
    async with deployment(roles, TETHER_SHADOW_QUEUE="bench-shadow") as deployed:
        tether, url = deployed.tether, deployed.settings.resolved_store_url()
        policies, store = PolicyStore(url), Store(url)
        active = policies.active("support")
        assert active is not None
        copy = active.policy.model_copy(update={"version": f"{active.version}-candidate"})
        policies.add("support", copy, by="bench", note="the active policy, as a candidate")
        settings = {
            "same_model": LiveCandidate(name="same", policy_version=copy.version, share=1.0),
            "own_model": LiveCandidate(
                name="own", policy_version=copy.version, model_queue=INSTANT_QUEUE, share=1.0
            ),
        }

        async def one() -> float:
            rid = f"shadow-{uuid.uuid4().hex[:10]}"
            subject, text = TICKET
            t0 = time.perf_counter()
            await tether.resolve(
                Request(request_id=rid, subject=subject, requester=subject, text=text)
            )
            return (time.perf_counter() - t0) * 1000

        async def burst(concurrency: int) -> list[float]:
            slots = asyncio.Semaphore(concurrency)

            async def slot() -> float:
                async with slots:
                    return await one()

            return list(await asyncio.gather(*(slot() for _ in range(per_round))))

        for _ in range(3):  # warm: the model and the embeddings loaded
            await one()
        result: dict[str, Any] = {}
        for setting, candidate in settings.items():
            for concurrency in (1, 4):
                off: list[float] = []
                on: list[float] = []
                for r in range(rounds):
                    shadowing = r % 2 == 1
                    if shadowing:
                        policies.start_candidate("support", candidate, by="bench")
                    (on if shadowing else off).extend(await burst(concurrency))
                    if shadowing:
                        policies.stop_candidate("support", by="bench")
                result[f"{setting}_concurrency_{concurrency}"] = {
                    "requests_each": len(off),
                    "without_ms": {"p50": round(pct(off, 0.5)), "p95": round(pct(off, 0.95))},
                    "with_ms": {"p50": round(pct(on, 0.5)), "p95": round(pct(on, 0.95))},
                    "p50_ratio": round(pct(on, 0.5) / pct(off, 0.5), 2),
                    "p95_ratio": round(pct(on, 0.95) / pct(off, 0.95), 2),
                }
            await asyncio.sleep(5)  # the last shadow runs finish
            recorded = store.shadow_decisions("support", candidate.name)
            result[f"{setting}_shadow_decisions_recorded"] = len(recorded)
        policies.close()
        store.close()
        return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=12)
    args = parser.parse_args()
    found = asyncio.run(main(args.rounds, args.per_round))
    RESULTS.write_text(json.dumps(found, indent=2) + "\n")
    print(json.dumps(found, indent=2))
