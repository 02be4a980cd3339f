"""Evidence-aware proposal reuse against the real dev server, workers and local model: a
repeated question takes the first one's proposal (no model call in its history), still
verified and decided; an updated document makes the next one ask the model again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id, replay_and_keep, ticket
from tests.deployments import Deployment, own_deployment
from tether import names
from tether.config import Settings
from tether.contracts import DecisionAction, Outcome
from tether.embeddings import Embedder

pytestmark = pytest.mark.integration

QUESTION = "How long does standard shipping take?"
SHIPPING = "shipping-options.md"


@pytest.fixture
async def deployment(
    tmp_path: Path, temporal_env: WorkflowEnvironment, settings: Settings, embedder: Embedder
) -> AsyncIterator[Deployment]:
    """A deployment of its own whose support policy reuses proposals for an hour, over a
    copy of the handbook this test may edit."""
    reuse = {"proposal_reuse": "PT1H"}
    async with own_deployment(tmp_path, temporal_env, settings, embedder, reuse) as deployed:
        yield deployed


async def asked_the_model(handle: WorkflowHandle[object, Outcome]) -> bool:
    history = await handle.fetch_history()
    return any(
        e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == names.PROPOSE
        for e in history.events
    )


async def ask(d: Deployment, text: str, subject: str, history: str = "") -> tuple[Outcome, bool]:
    """The outcome, and whether the run called the model. Its history replays (the lookup's
    recorded answer included); kept under tests/histories as ``history`` when recording."""
    handle = await d.tether.submit(ticket(text, subject))
    outcome = await handle.result()
    await replay_and_keep(handle, history or new_id("reuse"))
    return outcome, await asked_the_model(handle)


async def test_a_repeated_question_reuses_the_proposal_until_its_evidence_changes(
    deployment: Deployment,
) -> None:
    first, asked = await ask(deployment, QUESTION, "C-101", "reuse-first")
    assert asked and first.reused_from is None and first.reuse_key is not None
    assert first.proposal is not None and first.decision.action is DecisionAction.AUTO
    cited = [p for p in first.evidence.passages if p.passage_id in first.proposal.citations]  # type: ignore[union-attr]
    assert any(p.doc_id == "shipping-options" for p in cited), first.proposal.citations

    # The same subject, the same question in other case and punctuation: the proposal is
    # taken, not asked for; it is verified and decided again, to the same decision.
    second, asked = await ask(
        deployment, "how long does STANDARD shipping take??", "C-101", "reuse-hit"
    )
    assert not asked
    assert second.reused_from == first.request_id
    assert second.proposal == first.proposal and second.model == first.model
    assert second.verification is not None and second.decision.action is DecisionAction.AUTO

    # Another subject: the plan replies to C-101 by id, so it is not theirs to take.
    assert first.proposal.tool_calls[0].arguments["customer_id"] == "C-101"
    other, asked = await ask(deployment, QUESTION, "C-102")
    assert asked and other.reused_from is None

    # The document it cited changes: the next one asks the model again.
    doc = deployment.kb / SHIPPING
    text = doc.read_text()
    doc.write_text(
        text.replace("version: 2", "version: 3").replace(
            "3 to 7 business days", "2 to 5 business days"
        )
    )
    report = await deployment.tether.ingest(str(deployment.kb), domain="support", source="kb")
    assert report.embedded > 0
    third, asked = await ask(deployment, QUESTION, "C-101")
    assert asked and third.reused_from is None
    now = {
        p.passage_id: p.version for p in third.evidence.passages if p.doc_id == "shipping-options"
    }  # type: ignore[union-attr]
    assert now and set(now.values()) == {3}

    # ... and the one after it takes that fresh proposal.
    fourth, asked = await ask(deployment, QUESTION, "C-101")
    assert not asked and fourth.reused_from == third.request_id


async def test_a_record_that_changed_is_asked_about_afresh(deployment: Deployment) -> None:
    """The records read are part of the match: the same words about the same record match
    while the record is as it was, and not once the business system changed it."""
    question = "Where is my order ORD-1001? It has not arrived yet."
    first, asked = await ask(deployment, question, "C-100")
    assert asked and first.context and first.reused_from is None
    again, asked = await ask(deployment, question, "C-100")
    assert not asked and again.reused_from == first.request_id
    with deployment.business.db._write() as conn:
        conn.execute("UPDATE orders SET status = 'delivered' WHERE order_id = 'ORD-1001'")
    changed, asked = await ask(deployment, question, "C-100")
    assert asked and changed.reused_from is None
