"""A candidate beside live traffic, against the real dev server, workers, local model and shop:
it decides on every live request's facts, never reaches the business system (the worker
refuses it any tool), is compared with the live decisions and people, and is promoted
through the audited policy path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from typer.testing import CliRunner

from tests.conftest import new_id, replay_and_keep, ticket
from tests.deployments import Deployment, own_deployment
from tests.processes import environment
from tether import names
from tether.activities.tools import ToolActivities
from tether.cli.apps import app
from tether.config import Settings
from tether.contracts import (
    DecisionAction,
    Facts,
    LiveCandidate,
    LiveShadowInput,
    Outcome,
    ShadowDecision,
    Stage,
    ToolInvocation,
)
from tether.embeddings import Embedder
from tether.policystore import PolicyStore
from tether.shadowguard import SHADOW_REFUSED, ShadowGuard
from tether.store import Store

pytestmark = pytest.mark.integration

SMALL = ("C-100", "Please refund $40 for the headlamp on ORD-1005, it's too dim.")
LARGE = ("C-102", "I'd like a refund of $120 for ORD-1003, the jacket doesn't fit.")
STATUS = ("C-100", "Hi, where is my order ORD-1001? I need it before my trip.")
LENIENT = {"auto_limit_cents": 50_000, "customer_auto_limit_cents": 50_000}


def lenient(policies: PolicyStore) -> str:
    """A stored version that lets refunds up to $500 act on their own."""
    active = policies.active("support")
    assert active is not None
    rules = {**active.policy.rules, **LENIENT}
    version = active.policy.model_copy(update={"version": "lenient/1", "rules": rules})
    return policies.add("support", version, by="test", note="a candidate").version


async def shadows(store: Store, name: str, count: int) -> list[ShadowDecision]:
    for _ in range(600):
        found = store.shadow_decisions("support", name)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(found)} shadow decisions of {count}")


def rows(deployment: Deployment, table: str) -> list[dict[str, object]]:
    return deployment.business.db.rows(table)


def acted(outcomes: list[Outcome], tool: str) -> int:
    return sum(1 for o in outcomes for a in o.actions if a.tool == tool and a.ok)


def cli(deployment: Deployment, *args: str) -> str:
    env = environment(deployment.settings)
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


async def test_a_candidate_decides_beside_live_traffic_and_never_acts(
    deployed: Deployment,
) -> None:
    res, tether = deployed.resources, deployed.tether
    version = lenient(res.policies)
    cli(deployed, "candidate", "start", "lenient", "--domain", "support",
        "--policy-version", version, "--share", "1", "--by", "carol")  # fmt: skip

    small = await tether.submit(ticket(SMALL[1], SMALL[0]))
    status = await tether.submit(ticket(STATUS[1], STATUS[0]))
    large = await tether.submit(ticket(LARGE[1], LARGE[0]))  # live: waits for a person
    live = [await small.result(), await status.result()]
    found = {s.request_id: s for s in await shadows(res.store, "lenient", 3)}

    # Live acted; the candidate decided the same requests and acted on none of them: every
    # row in the shop is one a live outcome accounts for.
    assert live[0].decision.action is DecisionAction.AUTO and acted(live, "issue_refund") == 1
    assert len(rows(deployed, "refunds")) == acted(live, "issue_refund")
    assert len(rows(deployed, "messages")) == acted(live, "send_reply")
    waiting = large.id.removeprefix("resolution-")
    assert (await tether.status(waiting)).stage is Stage.AWAITING_APPROVAL
    candidate_large = found[waiting]
    assert candidate_large.policy_version == version
    assert candidate_large.action is DecisionAction.AUTO  # it would have refunded $120 ...
    assert "issue_refund" in candidate_large.planned
    assert not [
        r for r in rows(deployed, "refunds") if r["order_id"] == "ORD-1003"
    ]  # ... it did not
    for outcome in live:
        assert found[outcome.request_id].candidate == "lenient"

    # A run started by hand cannot write the candidate's decision: not under another id,
    # nor again under the one beside the live run.
    await forged_shadows_are_refused(deployed, live[0], found[live[0].request_id])

    # Its record against live and people: the two finished requests are compared.
    await tether.feedback(
        live[0].request_id,
        kind="confirmation",
        detail="it arrived",
        reporter="agent@northwind.example",
    )
    report = cli(deployed, "candidate", "status", "--domain", "support")
    print(report)  # docs/learning-loop.md shows it
    assert "shadowed 3, with a live outcome 2" in report
    assert "agrees with people: 1/1" in report

    # Promotion activates its version through the audited path and stops the shadowing.
    cli(deployed, "candidate", "promote", "--domain", "support", "--reason", "agrees",
        "--by", "carol")  # fmt: skip
    active = res.policies.active_activation("support")
    assert active is not None and active.version == version and active.by == "carol"
    assert "promoted candidate lenient" in active.reason
    assert res.policies.candidate("support") is None
    after = await tether.resolve(ticket(STATUS[1], STATUS[0]))
    await asyncio.sleep(1)
    assert after.request_id not in {
        s.request_id for s in res.store.shadow_decisions("support", "lenient")
    }
    await large.terminate("test over")


async def forged_shadows_are_refused(
    deployed: Deployment, outcome: Outcome, recorded: ShadowDecision
) -> None:
    candidate = deployed.resources.policies.candidate("support")
    assert candidate is not None and outcome.request is not None and outcome.evidence
    rid = outcome.request_id
    forged = LiveShadowInput(
        domain="support",
        candidate=candidate,
        facts=Facts(
            domain="support",
            request=outcome.request.model_copy(update={"text": "Where is ORD-1005?"}),
            evidence=outcome.evidence,
        ),
        model_queue=deployed.settings.model_queue,
        decided_at=outcome.finished_at,
    )
    # Started by hand before any live run of its request: no live run gave it its input.
    ahead = new_id("ahead")
    early = forged.model_copy(
        update={
            "facts": forged.facts.model_copy(
                update={"request": forged.facts.request.model_copy(update={"request_id": ahead})}
            )
        }
    )
    for wid, given, said in [
        (f"shadow-by-hand-{rid}", forged, "may not record lenient's decision"),
        (names.live_shadow_id("lenient", rid), forged, "did not run on the input the live run"),
        (names.live_shadow_id("lenient", ahead), early, "(the live run started none)"),
    ]:
        handle = await deployed.tether.client.start_workflow(
            names.LIVE_SHADOW,
            given,
            id=wid,
            task_queue=deployed.settings.shadow_queue or deployed.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        refused = failed.value.cause
        while refused is not None and not isinstance(refused, ApplicationError):
            refused = refused.cause
        assert isinstance(refused, ApplicationError) and refused.type == "ShadowRefused", failed
        assert said in refused.message
    [kept] = [
        s
        for s in deployed.resources.store.shadow_decisions("support", "lenient")
        if s.request_id == rid
    ]
    assert kept == recorded
    assert not any(
        s.request_id == ahead
        for s in deployed.resources.store.shadow_decisions("support", "lenient")
    )


@workflow.defn(name=names.LIVE_SHADOW)
class RogueShadow:
    """A shadow whose code tries to act: the worker must refuse it."""

    @workflow.run
    async def run(self, invocation: ToolInvocation) -> None:
        await workflow.execute_activity(
            names.tool_activity("support", "issue_refund"),
            invocation,
            start_to_close_timeout=timedelta(seconds=10),
        )


async def test_the_worker_refuses_a_shadow_any_tool(
    deployed: Deployment, temporal_env: WorkflowEnvironment
) -> None:
    """Enforced by the worker, not by the shadow's code: a workflow of a shadow type that
    calls a pack's tool, on a worker that has the tool, is refused, and the shop is untouched."""
    res = deployed.resources
    queue = new_id("rogue")
    tools = ToolActivities(res.packs, res.systems, res.ledger)
    before = rows(deployed, "refunds")
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[RogueShadow],
        activities=tools.activities(),
        interceptors=[ShadowGuard()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        invocation = ToolInvocation(
            domain="support",
            tool="issue_refund",
            arguments={"order_id": "ORD-1005", "amount_cents": 100, "reason": "rogue"},
            idempotency_key=f"rogue/{new_id()}/1",
            request_id=new_id("rogue"),
            subject="C-100",
            granted=["refunds:issue"],
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await temporal_env.client.execute_workflow(
                RogueShadow.run, invocation, id=new_id("rogue"), task_queue=queue
            )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == SHADOW_REFUSED
    assert "support.issue_refund" in str(cause)
    assert rows(deployed, "refunds") == before


@pytest.fixture
async def with_shadow_worker(
    tmp_path: Path, temporal_env: WorkflowEnvironment, settings: Settings, embedder: Embedder
) -> AsyncIterator[Deployment]:
    async with own_deployment(tmp_path, temporal_env, settings, embedder, shadow=True) as d:
        yield d


async def activities_of(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The activities a run's history holds: scheduled ones by type, local ones (markers) as
    ``local:type``, and patches as ``patch:id``."""
    found = []
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            found.append(event.activity_task_scheduled_event_attributes.activity_type.name)
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_local_activity":
                data = json.loads(marker.details["data"].payloads[0].data)
                found.append(f"local:{data['activity_type']}")
            elif marker.marker_name == "core_patch":
                patch = json.loads(marker.details["patch-data"].payloads[0].data)
                found.append(f"patch:{patch['id']}")
    return found


async def test_a_candidate_on_the_live_model_decides_in_the_run_another_in_the_shadow_worker(
    with_shadow_worker: Deployment, temporal_env: WorkflowEnvironment
) -> None:
    """A policy version alone decides inside the live run, on its proposal: no run of its own,
    no model call, no verification; its decision is kept before the live run waits for a
    person. One on a model queue of its own runs in the shadow worker's process (its own
    task queue), started by a local activity beside the outcome's record, and proposes and
    is verified there."""
    deployed, client = with_shadow_worker, temporal_env.client
    res, tether, settings = deployed.resources, deployed.tether, deployed.settings
    version = lenient(res.policies)
    policy_only = LiveCandidate(name="lenient", policy_version=version, share=1.0)
    res.policies.start_candidate("support", policy_only, by="carol")
    large = await tether.submit(ticket(LARGE[1], LARGE[0]))  # live: waits for a person
    rid = large.id.removeprefix("resolution-")
    [decided] = await shadows(res.store, "lenient", 1)
    assert decided.on_live_proposal and decided.action is DecisionAction.AUTO
    assert decided.policy_version == version
    assert "issue_refund" in decided.planned and not rows(deployed, "refunds")
    live = await tether.status(rid)
    assert live.stage is Stage.AWAITING_APPROVAL and live.pending is not None
    ran = await activities_of(large)
    assert "local:record_shadow" in ran
    assert ran.count(names.PROPOSE) == 1  # the live run's own, nothing more
    with pytest.raises(RPCError, match="not found"):
        await client.get_workflow_handle(f"shadow-lenient-{large.id}").describe()
    await large.terminate("test over")
    small = await tether.submit(ticket(SMALL[1], SMALL[0]))  # live acts on its own
    refunded = await small.result()
    assert refunded.decision.action is DecisionAction.AUTO
    await replay_and_keep(small, "shadow_in_run_auto")

    res.policies.stop_candidate("support", by="carol")
    own = LiveCandidate(
        name="own", policy_version=version, model_queue=settings.model_queue, share=1.0
    )
    res.policies.start_candidate("support", own, by="carol")
    # Someone takes the id the next request's candidate run will have, on facts of their
    # own, before its live run starts: their run is put aside, the request still shadowed.
    rid = new_id("preempted")
    assert refunded.request is not None and refunded.evidence is not None
    taken = await client.start_workflow(
        names.LIVE_SHADOW,
        LiveShadowInput(
            domain="support",
            candidate=own,
            facts=Facts(
                domain="support",
                request=refunded.request.model_copy(update={"request_id": rid}),
                evidence=refunded.evidence,
            ),
            model_queue=settings.model_queue,
            decided_at=refunded.finished_at,
        ),
        id=names.live_shadow_id("own", rid),
        task_queue=settings.shadow_queue or settings.task_queue,
    )
    status = await tether.resolve(ticket(STATUS[1], STATUS[0], rid=rid))
    [proposed] = await shadows(res.store, "own", 1)
    first = client.get_workflow_handle(taken.id, run_id=taken.result_run_id)
    assert (await first.describe()).status in (
        WorkflowExecutionStatus.FAILED,  # it ended first, refused: the live run started none
        WorkflowExecutionStatus.TERMINATED,  # replaced while it ran
    )
    assert not proposed.on_live_proposal and proposed.request_id == status.request_id
    # Kept on the input the live run wrote down when it started the run, and no other.
    given = res.store.expected_shadow(status.request_id, "own")
    assert given is not None and proposed.input_sha256 == given
    live_run = client.get_workflow_handle(f"resolution-{status.request_id}")
    assert "local:start_shadow" in await activities_of(live_run)  # not a child: no task
    await replay_and_keep(live_run, "shadow_started_beside")
    child = client.get_workflow_handle(f"shadow-own-resolution-{status.request_id}")
    await child.result()
    await replay_and_keep(child, "shadow_own_run")
    assert (await child.describe()).task_queue == settings.shadow_queue
    assert [a for a in await activities_of(child) if not a.startswith("patch:")] == [
        "local:pin_policy",
        names.PROPOSE,
        "verify_proposal",
        "local:record_shadow",
    ]
    assert len(rows(deployed, "refunds")) == 1  # the live small refund, nothing else

    # Taken by a run no worker takes (another type, on a queue nobody polls): still running
    # when the live run comes, so it is terminated, and the request shadowed all the same.
    again = new_id("preempted")
    squatter = await client.start_workflow(
        "NotAShadow",
        "anything",
        id=names.live_shadow_id("own", again),
        task_queue=new_id("nobody-polls"),
    )
    await tether.resolve(ticket(STATUS[1], STATUS[0], rid=again))
    assert again in {s.request_id for s in await shadows(res.store, "own", 2)}
    held = client.get_workflow_handle(squatter.id, run_id=squatter.result_run_id)
    assert (await held.describe()).status is WorkflowExecutionStatus.TERMINATED


async def test_a_candidate_policy_that_cannot_decide_leaves_the_live_request_alone(
    deployed: Deployment,
) -> None:
    """A stored version whose rules its pack cannot read (the store does not check them): the
    candidate's decision inside the live run is a reject for the pack's error, on the record,
    and the live request acts as it would have."""
    res, tether = deployed.resources, deployed.tether
    active = res.policies.active("support")
    assert active is not None
    rules = {**active.policy.rules, "auto_limit_cents": "lots"}
    broken = active.policy.model_copy(update={"version": "broken/1", "rules": rules})
    res.policies.add("support", broken, by="test", note="rules its pack cannot read")
    candidate = LiveCandidate(name="broken", policy_version="broken/1", share=1.0)
    res.policies.start_candidate("support", candidate, by="carol")
    outcome = await tether.resolve(ticket(SMALL[1], SMALL[0]))
    assert outcome.decision.action is DecisionAction.AUTO
    assert acted([outcome], "issue_refund") == 1
    [decided] = res.store.shadow_decisions("support", "broken")
    assert decided.action is DecisionAction.REJECT and decided.reasons == ["pack_error"]
