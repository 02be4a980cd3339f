"""Determinism replay against the live server: fetch recent histories and replay them with
today's workflow code, before that code is deployed. CI does the same over tests/histories/."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from tether.sandbox import workflow_runner


@dataclass
class ReplayReport:
    replayed: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # workflow id -> why


async def replay_recent(
    client: Client,
    workflows: Sequence[type],
    *,
    query: str = "",
    limit: int = 100,
) -> ReplayReport:
    """Replay up to ``limit`` executions matching the visibility ``query`` (default: all,
    running ones included: those are what a deploy would break). The domain packs those
    workflows name must be loaded (``tether.packs.load``): their rules decide on replay too."""
    report = ReplayReport()
    names = {w.__temporal_workflow_definition.name for w in workflows}  # type: ignore[attr-defined]
    ids: dict[str, str] = {}  # run id -> workflow id, to name failures

    async def histories() -> AsyncIterator[WorkflowHistory]:
        async for execution in client.list_workflows(query, limit=limit):
            if execution.workflow_type not in names:
                continue  # a type this code does not run
            ids[execution.run_id] = execution.id
            report.replayed += 1
            yield await client.get_workflow_handle(
                execution.id, run_id=execution.run_id
            ).fetch_history()

    replayer = Replayer(
        workflows=workflows,
        data_converter=client.data_converter,  # decrypts what the client's codec encrypted
        workflow_runner=workflow_runner(),
    )
    results = await replayer.replay_workflows(histories(), raise_on_replay_failure=False)
    for run_id, failure in results.replay_failures.items():
        report.failures[ids.get(run_id, run_id)] = f"{type(failure).__name__}: {failure}"[:500]
    return report
