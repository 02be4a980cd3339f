"""A scripted traffic run with a known injected regression: the same tickets, first through
today's model, then through a candidate served by a new model build that writes its own
facts. The drift check fires (grounding, fingerprint), the quality budget burns, and the
shadow replay of the baseline names the cases the candidate would decide differently. And
Tether protects itself: the first evaluation run after the candidate's traffic switches the
domain to the conservative overlay, and from then on nothing is written without a person,
even by today's model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id
from tests.fault_model import FaultModelServer
from tether.client import Tether
from tether.config import LLMConfig, Settings
from tether.contracts import Outcome
from tether.datasets import Case
from tether.domains.support.business import BusinessServer
from tether.drift import DriftConfig, detect
from tether.evaluation import EvaluationConfig, EvaluationInput, evaluate
from tether.localmodel import LocalModel
from tether.openai_compat import OpenAICompatible
from tether.overlay import CODE, TETHER
from tether.shadow import Candidate
from tether.workers.main import Resources, model_worker_for

pytestmark = pytest.mark.integration

LEAD = "lead@northwind.example"
TICKETS = [
    ("C-100", "Where is my order ORD-1001? It has not arrived yet."),
    ("C-101", "How long does standard shipping take to Ohio?"),
    ("C-100", "How long does standard shipping take?"),
]
PER_WINDOW = 30


@pytest.fixture
async def candidate_server(local_model: LocalModel) -> AsyncIterator[FaultModelServer]:
    server = await FaultModelServer(local_model).start()
    server.script = ["ungrounded"] * 1_000
    yield server
    await server.stop()


async def traffic(tether: Tether, tag: str) -> list[Outcome]:
    """The tickets in order; one a person must decide is declined by the lead at once."""
    outcomes = []
    for i in range(PER_WINDOW):
        customer, text = TICKETS[i % len(TICKETS)]
        rid = new_id(tag)
        handle = await tether.submit(
            {"request_id": rid, "subject": customer, "requester": customer, "text": text}
        )
        while (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
            if (await tether.status(rid)).pending is not None:
                await tether.reject(rid, approver=LEAD, reason="drill: declined")
                break
            await asyncio.sleep(0.05)
        outcomes.append(await handle.result())
    return outcomes


async def test_an_injected_regression_is_detected_three_ways(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    workers: None,
    resources: Resources,
    business: BusinessServer,
    candidate_server: FaultModelServer,
) -> None:
    client = temporal_env.client
    baseline = await traffic(Tether(client, settings), "base")

    queue = new_id("candidate-model")
    llm = LLMConfig(provider="openai", base_url=candidate_server.url, model="northwind-next")
    provider = OpenAICompatible(llm)
    async with model_worker_for(client, provider, llm, queue):
        since = datetime.now(UTC)
        current = await traffic(
            Tether(client, settings.model_copy(update={"model_queue": queue})), "cand"
        )
        # 0. One evaluation run over the candidate's traffic switches support to the
        # conservative overlay (the run judges its window fast: it is shorter than an hour).
        run = await Tether(client, settings).evaluate(
            EvaluationInput(domain="support", since=since, config=EvaluationConfig(sample_rate=1.0))
        )
        [switch] = run.overlays
        assert switch.on and (switch.overlay.domain, switch.overlay.intent) == ("support", None)
        assert switch.overlay.set_by == TETHER and switch.overlay.evidence is not None
        assert "grounded" in {b.scorer for b in switch.overlay.evidence.budgets}
        assert resources.store.overlay_for("support", "order_status") == switch.overlay

        # 1. Drift: grounding shifted, and a model fingerprint the baseline never had.
        drift = detect(baseline, current, DriftConfig())
        assert "grounding" in drift.fired and "model_fingerprint" in drift.fired, drift
        assert drift.fingerprints_new == ["fp_fault_1"]

        # 2. The quality budget on groundedness burns.
        _, report = evaluate(current, resources.store.later, EvaluationConfig(sample_rate=1.0))
        grounded = next(b for b in report.budgets if b.scorer == "grounded")
        assert grounded.fired and grounded.good_share < 0.5, grounded
        _, calm = evaluate(baseline, resources.store.later, EvaluationConfig(sample_rate=1.0))
        assert not any(b.fired for b in calm.budgets), calm.budgets

        # 3. Shadow replay of the baseline against the candidate names what would change.
        resources.store.save_dataset(
            "drill-baseline", [Case(outcome=o) for o in baseline], baseline[-1].finished_at
        )
        before = len(business.db.rows("messages")), len(business.db.rows("refunds"))
        shadow = await Tether(client, settings).shadow(
            "drill-baseline", Candidate(name="northwind-next", model_queue=queue)
        )
        assert (len(business.db.rows("messages")), len(business.db.rows("refunds"))) == before
    await provider.close()

    # 4. After the switch, today's model again: what it did on its own before now waits for
    # a person (the drill's lead declines each at once), and the shop is not written to.
    shop = len(business.db.rows("messages")), len(business.db.rows("refunds"))
    after = await traffic(Tether(client, settings), "after")
    assert (len(business.db.rows("messages")), len(business.db.rows("refunds"))) == shop
    assert not any(o.decision.action.value == "auto" and o.actions for o in after)
    held = [o for o in after if CODE in o.decision.codes()]
    assert len(held) >= sum(1 for o in baseline if o.decision.action.value == "auto")
    assert all(o.decision.tier == 0 and o.mode.value == "read_only" for o in held)
    auto_before = {o.request_id for o in baseline if o.decision.action.value == "auto"}
    assert auto_before and set(shadow.changed) >= auto_before  # none of them stays automatic
    worse = [c for c in shadow.cases if c.request_id in auto_before]
    assert all(c.candidate.startswith("approval") for c in worse)
    assert all((c.grounding_candidate or 0) < (c.grounding_recorded or 0) for c in worse)
    print(
        f"drift fired {drift.fired}; grounded budget burn {grounded.burn_rate}x; "
        f"shadow changed {len(shadow.changed)} of {len(shadow.cases)}; overlay on after one "
        f"run ({switch.overlay.reason}); after it {len(held)} of {len(after)} held for a "
        "person, none written alone"
    )
