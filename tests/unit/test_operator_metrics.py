"""The operator's metrics without a Temporal server: the circuit's gauge and counter on a real
Prometheus endpoint, which stage an activity belongs to, and what the approval queue counts.
Under real traffic: tests/integration/test_deploy_metrics.py."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tether import metrics, queuedepth
from tether.breaker import CircuitBreaker
from tether.capacity import parse
from tether.contracts import ToolInvocation
from tether.domains.support import PACK
from tether.policystore import PolicyStore
from tether.stack import free_port
from tether.stages import stage_of


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_circuit_state_and_its_openings_are_exported() -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = metrics.runtime_for(address)
    assert runtime is not None
    clock = Clock()
    breaker = CircuitBreaker(failures=2, reset_after=10.0, clock=clock)
    metrics.watch_breaker(breaker, runtime.metric_meter, "model")

    def scraped() -> tuple[float, float]:
        samples = parse(httpx.get(f"http://{address}/metrics").text)
        found = {s.name: s.value for s in samples if s.labels.get("breaker") == "model"}
        return found[metrics.CIRCUIT_STATE], found[metrics.CIRCUIT_OPENINGS]

    assert scraped() == (0, 0)  # both there before anything happened
    for _ in range(2):
        breaker.before_call()
        breaker.failure()
    assert scraped() == (2, 1)
    clock.now = 10.0
    breaker.before_call()  # the trial
    assert scraped() == (1, 1)
    breaker.failure()  # fails: open again, a second opening
    assert scraped() == (2, 2)
    clock.now = 20.0
    breaker.before_call()
    breaker.success()
    assert scraped() == (0, 2)
    assert breaker.transitions[-1] == ("half_open", "closed")


def invocation(key: str) -> ToolInvocation:
    return ToolInvocation(
        domain="support", tool="lookup", arguments={}, idempotency_key=key, request_id="r"
    )


def test_each_activity_belongs_to_its_stage() -> None:
    assert stage_of("retrieve_evidence", []) == "retrieval"
    assert stage_of("propose_resolution", []) == "proposal"
    assert stage_of("model_queue_state", []) == "proposal"  # waiting in line for the model
    assert stage_of("verify_proposal", []) == "verification"
    assert stage_of("support.lookup", [invocation("wf/read/order:1")]) == "retrieval"
    assert stage_of("support.issue", [invocation("wf/1/issue")]) == "acting"
    assert stage_of("reconcile_tool", [invocation("wf/1/issue")]) == "acting"
    assert stage_of("support.undo", [invocation("wf/compensate/1/undo")]) == "acting"
    for bookkeeping in ("pin_policy", "hold_tally", "key_revoked_at", "record_outcome"):
        assert stage_of(bookkeeping, []) is None


def test_the_queue_is_counted_by_stage_domain_tier_and_running() -> None:
    assert queuedepth.query("support", "lead") == (
        "TetherStage = 'awaiting_approval' AND TetherDomain = 'support' AND "
        "TetherQueue = 'lead' AND ExecutionStatus = 'Running'"
    )
    with pytest.raises(ValueError, match="quote"):
        queuedepth.query("support", "lead' OR TetherStage = 'completed")


def test_every_tier_of_every_stored_version_is_counted(tmp_path: Path) -> None:
    """A run waits at a tier of the version it pinned: a tier since renamed still counts."""
    store = PolicyStore(f"sqlite:///{tmp_path / 'policies.db'}")
    store.add("support", PACK.policy, by="ops")
    tiers = [t.model_dump(mode="json") for t in PACK.policy.tiers]
    renamed = PACK.policy.merged(
        {"version": "renamed/1", "tiers": [tiers[0], {**tiers[1], "name": "director"}]}
    )
    store.add("support", renamed, by="ops")
    assert queuedepth.ladders(store, ["support", "itops"]) == {
        "support": ["lead", "manager", "director"],
        "itops": [],
    }
    store.close()
