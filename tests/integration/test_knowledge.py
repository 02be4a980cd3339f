"""Knowledge refresh on a Temporal Schedule, and an ingest surviving a killed worker, against
the real dev server and workers."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import ScheduleActionExecutionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from tests.conftest import SUPPORT_KB, new_id
from tests.processes import WorkerProcess
from tether.client import Tether
from tether.config import Settings
from tether.contracts import IngestReport
from tether.embeddings import DIMENSIONS
from tether.vectorstore import EdgeStore

pytestmark = pytest.mark.integration


async def test_sources_are_refreshed_on_a_schedule(
    tether: Tether, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    kb = tether.source(str(SUPPORT_KB), domain="support", source="kb")
    schedule_id = await tether.schedule_refresh([kb], timedelta(seconds=2))
    schedule = temporal_env.client.get_schedule_handle(schedule_id)
    try:
        for _ in range(100):
            recent = (await schedule.describe()).info.recent_actions
            if recent:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the schedule never started a refresh")
        started = recent[0].action
        assert isinstance(started, ScheduleActionExecutionStartWorkflow)
        handle = temporal_env.client.get_workflow_handle(
            started.workflow_id, result_type=list[IngestReport]
        )
        reports = await handle.result()
        [report] = reports
        assert report.source == "kb" and report.error is None
        assert report.embedded == 0 and report.documents > 0  # unchanged: nothing re-embedded
        # Scheduling again updates the same schedule rather than adding another.
        assert await tether.schedule_refresh([kb], timedelta(hours=1)) == schedule_id
        spec = (await schedule.describe()).schedule.spec
        assert [i.every for i in spec.intervals] == [timedelta(hours=1)]
    finally:
        await schedule.delete()


def write_corpus(target: Path, documents: int) -> int:
    """Documents of three sections each; returns the number of chunks."""
    target.mkdir()
    for i in range(documents):
        sections = "\n".join(
            f"## Part {j}\n\nItem {i} part {j} ships from warehouse {i * 7 + j} within {j + 2} "
            f"days, packed in box size {i % 5} with {j + 1} inserts."
            for j in range(3)
        )
        (target / f"item-{i:03d}.md").write_text(f"# Item {i}\n\n{sections}\n")
    return documents * 3


async def test_an_ingest_killed_with_its_worker_resumes_without_duplicates(
    temporal_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    """`tether worker` is SIGKILLed after its first group of chunks is written; the retried
    activity, on the restarted worker, embeds only the rest and stores each chunk once."""
    corpus = tmp_path / "corpus"
    chunks = write_corpus(corpus, 300)  # 900 chunks: four groups of 256
    queue = new_id("ingest")
    local = settings.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "temporal_address": temporal_env.client.service_client.config.target_host,
            "task_queue": queue,
            "model_queue": f"{queue}-model",
        }
    )
    worker = WorkerProcess(local, tmp_path / "worker.log")
    tether = Tether(temporal_env.client, local)
    worker.start()
    try:
        handle = await tether.start_ingest(str(corpus), source="corpus")
        written = None
        for _ in range(1200):
            written = await tether.ingest_progress(handle)
            if written is not None and written[0] > 0:
                break
            await asyncio.sleep(0.05)
        assert written is not None and 0 < written[0] < chunks, written
        worker.kill()
        worker.start()
        report = await asyncio.wait_for(handle.result(), timeout=180)
    finally:
        worker.stop()
    assert report.chunks == chunks and 0 < report.embedded < chunks  # not all of it again
    store = EdgeStore(DIMENSIONS, local.resolved_qdrant_path("support"))
    try:
        stored = store.hashes("corpus")
    finally:
        store.close()
    assert len(stored) == chunks  # every chunk once: no duplicate, none missing
    print(f"killed after {written[0]} of {chunks} chunks; the retry embedded {report.embedded}")
