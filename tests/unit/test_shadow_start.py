"""ShadowStarts.start_shadow when the candidate's id is taken: which holder is the live run's
own (left alone), which is someone else's (replaced), and which attempt may replace nothing.
The client is a stand-in that records what the activity asks of Temporal."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import PayloadCodec
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.testing import ActivityEnvironment

from tether import names
from tether.activities.shadowstart import ShadowStarts
from tether.candidates import input_digest
from tether.contracts import (
    Evidence,
    Facts,
    FreshnessReport,
    LiveCandidate,
    LiveShadowInput,
    Request,
    ShadowStart,
)
from tether.store import Store

QUEUE = "shadow-q"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def start(text: str = "Where is ORD-1001?") -> ShadowStart:
    facts = Facts(
        domain="support",
        request=Request(request_id="r-1", subject="C-1", requester="C-1", text=text),
        evidence=Evidence(
            query="q",
            passages=[],
            freshness=FreshnessReport(
                index_refreshed_at=None, index_age_seconds=None, stale_index=False
            ),
        ),
    )
    shadow = LiveShadowInput(
        domain="support",
        candidate=LiveCandidate(name="own", model_queue="mq", share=1.0),
        facts=facts,
        model_queue="mq",
        decided_at=NOW,
    )
    return ShadowStart(
        workflow_id=names.live_shadow_id("own", "r-1"), task_queue=QUEUE, input=shadow, priority=5
    )


class Holder:
    """The run holding the id, as its history's first event shows it."""

    def __init__(self, workflow_type: str, queue: str, payloads: Sequence[Payload]) -> None:
        event = HistoryEvent()
        started = event.workflow_execution_started_event_attributes
        started.workflow_type.name = workflow_type
        started.task_queue.name = queue
        started.input.payloads.extend(payloads)
        self.event = event

    async def fetch_history_events(self) -> AsyncIterator[HistoryEvent]:
        yield self.event


class Temporal:
    """A client whose first start finds the id taken by ``holder``."""

    def __init__(self, holder: Holder, codec: PayloadCodec | None = None) -> None:
        self.holder = holder
        self.data_converter = dataclasses.replace(pydantic_data_converter, payload_codec=codec)
        self.starts: list[dict[str, Any]] = []

    async def start_workflow(self, workflow: str, arg: object, **options: Any) -> None:
        self.starts.append(options)
        if len(self.starts) == 1:
            raise WorkflowAlreadyStartedError(options["id"], workflow)

    def get_workflow_handle(self, workflow_id: str) -> Holder:
        return self.holder


def payloads(value: object) -> list[Payload]:
    return pydantic_data_converter.payload_converter.to_payloads([value])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    kept = Store(f"sqlite:///{tmp_path}/store.db")
    yield kept
    kept.close()


async def started(store: Store, temporal: Temporal, inp: ShadowStart) -> bool:
    starts = ShadowStarts(store)
    result: bool = await ActivityEnvironment(client=temporal).run(starts.start_shadow, inp)  # type: ignore[arg-type]
    return result


@pytest.mark.parametrize(
    ("holder", "replaced"),
    [
        # The live run's own run, started by an earlier attempt: left alone.
        (lambda inp: Holder(names.LIVE_SHADOW, QUEUE, payloads(inp.input)), False),
        # Someone's run on other facts, another type, or a queue no shadow worker polls.
        (lambda inp: Holder(names.LIVE_SHADOW, QUEUE, payloads(start("other").input)), True),
        (lambda inp: Holder("NotAShadow", QUEUE, payloads(inp.input)), True),
        (lambda inp: Holder(names.LIVE_SHADOW, "elsewhere", payloads(inp.input)), True),
        # An input that is no candidate's, or none at all.
        (lambda inp: Holder(names.LIVE_SHADOW, QUEUE, payloads("anything")), True),
        (lambda inp: Holder(names.LIVE_SHADOW, QUEUE, []), True),
    ],
)
async def test_who_holds_the_id(store: Store, holder: Any, replaced: bool) -> None:
    inp = start()
    temporal = Temporal(holder(inp))
    assert await started(store, temporal, inp) is replaced
    assert len(temporal.starts) == (2 if replaced else 1)
    if replaced:
        assert (
            temporal.starts[1]["id_conflict_policy"] is WorkflowIDConflictPolicy.TERMINATE_EXISTING
        )
    assert store.expected_shadow("r-1", "own") == input_digest(inp.input)


async def test_an_attempt_on_other_facts_replaces_nothing(store: Store) -> None:
    """The live run reset and gathered its facts again: only the input first written down is
    ever recorded, so a run on the new facts would record nothing. The holder stays."""
    first = start()
    store.expect_shadow("r-1", "own", input_digest(first.input), NOW)
    again = start("Where is ORD-1001? (asked again)")
    temporal = Temporal(Holder("NotAShadow", QUEUE, payloads("anything")))
    assert await started(store, temporal, again) is False
    assert len(temporal.starts) == 1


class Locked(PayloadCodec):
    """A codec whose key this worker lacks."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        raise ValueError("unknown key")


async def test_a_holder_it_cannot_decrypt_is_not_taken_for_someone_elses(store: Store) -> None:
    inp = start()
    temporal = Temporal(Holder(names.LIVE_SHADOW, QUEUE, payloads(inp.input)), Locked())
    with pytest.raises(ValueError, match="unknown key"):
        await started(store, temporal, inp)
    assert len(temporal.starts) == 1  # nothing terminated: the attempt fails, to be retried


def test_an_input_written_down_before_a_field_was_added_keeps_its_digest() -> None:
    """An earlier worker wrote the digest of an input without ``read`` (a live run recorded
    before the verifier read intents): read back by today's code, its digest is the same, so
    the candidate's run still records its decision."""
    earlier = start().input.model_dump_json(exclude={"read"})
    assert '"read"' not in earlier
    again = LiveShadowInput.model_validate_json(earlier)
    assert again.read is False
    assert input_digest(again) == hashlib.sha256(earlier.encode()).hexdigest()
    assert input_digest(again.model_copy(update={"read": True})) != input_digest(again)
