"""The incident timeline from a real run: a model worker built as `tether worker` builds one
(Resources) calls a failing endpoint (the fault model server), its circuit opens and closes,
the worker records each move, and `tether incident` shows them among the outcomes around
them, with the mode switches and the model fingerprint change those outcomes show."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id
from tests.fault_model import FaultModelServer
from tests.integration.test_model_faults import TIMEOUTS, llm_for, run_one
from tests.processes import tether_cli
from tether.client import Tether
from tether.config import Settings
from tether.contracts import Mode
from tether.eventlog import worker_name
from tether.localmodel import LocalModel
from tether.workers.main import Resources, model_worker

pytestmark = pytest.mark.integration


@pytest.fixture
async def failing(local_model: LocalModel) -> AsyncIterator[FaultModelServer]:
    server = FaultModelServer(local_model, fault_rate=0.0, seed=random.randrange(1 << 30))
    yield await server.start()
    await server.stop()


def worker_like(resources: Resources, settings: Settings) -> Resources:
    """The session's resources with another model configuration: the model and its circuit
    are built on the first call, as in a `tether worker`."""
    return Resources(
        settings=settings,
        packs=resources.packs,
        embedder=resources.embedder,
        store=resources.store,
        policies=resources.policies,
        ledger=resources.ledger,
        systems=resources.systems,
        executor=resources.executor,
    )


async def test_a_circuit_a_worker_opened_is_on_the_timeline_among_its_outcomes(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    resources: Resources,
    workers: None,
    failing: FaultModelServer,
) -> None:
    started = datetime.now(UTC)
    client = temporal_env.client
    queue = new_id("incident-model")
    llm = llm_for(failing, breaker_failures=3, breaker_reset=timedelta(seconds=2))
    res = worker_like(resources, settings.model_copy(update={"llm": llm, "model_queue": queue}))
    remote = Tether(
        client, settings.model_copy(update={"model_queue": queue, "timeouts": TIMEOUTS})
    )

    before = await run_one(Tether(client, settings))  # the session's local model
    failing.script = ["server_error"] * 3
    async with model_worker(client, res, task_queue=queue):
        tripped = await run_one(remote)  # three 500s open the circuit; then it fails fast
        await asyncio.sleep(2.1)
        recovered = await run_one(remote)  # half-open: one trial, it succeeds, closed
    await res.close_model()  # and what its circuit's events writer holds is written
    assert before.mode is Mode.NORMAL and before.model is not None
    assert tripped.mode is Mode.RETRIEVAL_ONLY and tripped.decision.codes() == ["circuit_open"]
    assert recovered.mode is Mode.NORMAL and recovered.model is not None

    since = f"{(datetime.now(UTC) - started).total_seconds() + 5:.0f}s"
    done = tether_cli(settings, "incident", "--since", since, "--domain", "support")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    times = [ln.split("\t")[0] for ln in lines]  # in time order; ties in any order
    assert times == sorted(times) and all(ln.count("\t") == 3 for ln in lines)
    # What changed at the first request depends on the session's outcomes before it.
    earlier = f"(from {before.request_id})"
    ours = [
        ln
        for ln in lines
        if (
            any(o.request_id in ln for o in (before, tripped, recovered))
            or ln.split("\t")[1] == "circuit"
        )
        and not ln.endswith(earlier)
        and f"; from {before.request_id})" not in ln
    ]
    print("\n".join(ours))
    shown = [ln.split("\t", 1)[1] for ln in ours]
    endpoint = f"({llm.model} at openai-compatible@127.0.0.1)"
    fingerprint = before.model.fingerprint
    first, down, back = (
        f"{o.request_id} {o.decision.action.value}" for o in (before, tripped, recovered)
    )
    expected = [
        f"outcome\tsupport\t{first} (normal)",
        f"circuit\t-\tmodel circuit closed -> open {endpoint}",
        f"mode_switch\tsupport\tmode normal -> retrieval_only (from {tripped.request_id})",
        f"outcome\tsupport\t{down} (retrieval_only): circuit_open, ",
        f"circuit\t-\tmodel circuit open -> half_open {endpoint}",
        f"circuit\t-\tmodel circuit half_open -> closed {endpoint}",
        f"mode_switch\tsupport\tmode retrieval_only -> normal (from {recovered.request_id})",
        f"model_fingerprint\tsupport\tmodel fingerprint {fingerprint} -> fp_fault_1 (",
        f"outcome\tsupport\t{back} (normal)",
    ]
    assert len(shown) == len(expected), shown
    for line, start in zip(shown, expected, strict=True):
        assert line.startswith(start), (line, start)

    recorded = resources.store.events_between(started, datetime.now(UTC))
    circuits = [e for e in recorded if e.kind == "circuit"]
    assert {e.source for e in circuits} == {worker_name()}  # this process's worker
    assert circuits[0].detail["failures"] == 3 and circuits[0].detail["reset_after_s"] == 2.0
