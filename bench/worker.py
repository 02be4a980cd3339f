"""A benchmark worker process: a Tether role (as `tether worker --role` runs it) plus what the
benchmarks compare it with: the ungoverned baseline and a bare workflow on the workflow role,
and an instant model (a fixed valid proposal, no computation) on a queue of its own.

    python -m bench.worker workflow|compute|instant     (settings from TETHER_* variables)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys

from temporalio.worker import Worker

from bench.ungoverned import BareWorkflow, UngovernedWorkflow, noop
from tether.activities.tools import ToolActivities
from tether.client import connect
from tether.config import LLMConfig, Settings
from tether.contracts import ModelIdentity, ProposeInput, RawProposal
from tether.sandbox import workflow_runner
from tether.workers.main import READY, Resources, model_worker_for, workers_for

INSTANT_QUEUE = "bench-instant-model"


class InstantModel:
    """The orchestration's ceiling: a valid proposal at once, the answer a cited sentence."""

    def identity(self) -> ModelIdentity:
        return ModelIdentity(provider="bench", model="instant", fingerprint="instant")

    async def propose(self, inp: ProposeInput) -> RawProposal:
        passage = inp.evidence.passages[0] if inp.evidence.passages else None
        answer = passage.text.split(". ")[0].rstrip(".") + "." if passage else "Thank you."
        body = {
            "intent": inp.intents[0] if inp.intents else "question",
            "answer": answer,
            "citations": [passage.passage_id] if passage else [],
            "tool_calls": [],
            "confidence": 0.95,
        }
        return RawProposal(content=json.dumps(body), model=self.identity())


async def main(role: str) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {role} %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per tool call otherwise
    settings = Settings()
    client = await connect(settings)
    res = Resources.build(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if role == "instant":
        llm = LLMConfig(max_concurrent=64)
        workers = [model_worker_for(client, InstantModel(), llm, INSTANT_QUEUE)]
    elif role == "workflow":
        workers = workers_for(client, res, "workflow")
        workers.append(
            Worker(
                client,
                task_queue=f"{settings.task_queue}-baseline",
                workflows=[UngovernedWorkflow, BareWorkflow],
                workflow_runner=workflow_runner("bench.ungoverned"),
                # The tools too, for a baseline that calls them as local activities.
                activities=[noop, *ToolActivities(res.packs, res.systems, res.ledger).activities()],
            )
        )
    elif role == "shadow":
        workers = workers_for(client, res, "shadow")
    else:
        workers = workers_for(client, res, "compute")
        await asyncio.to_thread(res.model)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for worker in workers:
                await stack.enter_async_context(worker)
            logging.info("%s", READY)
            await stop.wait()
    finally:
        await res.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
