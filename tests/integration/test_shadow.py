"""Datasets carved from failure history, replayed in shadow mode against candidates: the cases
whose decision changes are named, and the business system is not touched."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import new_id
from tether.client import Tether
from tether.domains.support.business import BusinessServer
from tether.evaluation import EvaluationConfig, EvaluationInput
from tether.shadow import Candidate
from tether.workers.main import Resources

pytestmark = pytest.mark.integration

LEAD = "lead@northwind.example"


def snapshot(business: BusinessServer) -> tuple[int, int, int]:
    db = business.db
    return len(db.rows("refunds")), len(db.rows("messages")), len(db.rows("reversals"))


async def test_escalations_replay_against_a_candidate_policy_without_side_effects(
    tether: Tether, business: BusinessServer, resources: Resources
) -> None:
    rids = []
    for _ in range(2):
        rid = new_id("shadow")
        await tether.submit(
            {
                "request_id": rid,
                "subject": "C-114",
                "requester": "C-114",
                "text": "Please refund $120.00 on ORD-1017, the tent pole snapped on the first night.",
            }
        )
        for _ in range(200):
            if (await tether.status(rid)).pending is not None:
                break
            await asyncio.sleep(0.05)
        await tether.reject(rid, approver=LEAD, reason="pole was fine on inspection")
        await tether.handle(rid).result()
        rids.append(rid)
    report = await tether.evaluate(
        EvaluationInput(since_hours=1, config=EvaluationConfig(sample_rate=1.0))
    )
    assert report.datasets["escalations"] >= 1
    version, cases = resources.store.dataset("escalations")
    assert set(rids) <= {c.request_id for c in cases}
    case = next(c for c in cases if c.request_id == rids[0])
    assert case.outcome.evidence is not None and case.outcome.request is not None  # as it was
    assert [r.verdict for r in case.outcome.reviews] == ["reject"]  # what the human did

    before = snapshot(business)
    same = await tether.shadow("escalations", Candidate(name="unchanged"))
    # A candidate version, stored beside the active one (tether policy add) and never activated.
    active = resources.policies.active("support")
    assert active is not None
    lenient = active.policy.merged(  # pays up to $500 alone, trusts a far less sure model
        {
            "version": f"lenient-{new_id()}",
            # Both limits: a customer's total binds their first refund too.
            "rules": {"auto_limit_cents": 50_000, "customer_auto_limit_cents": 50_000},
            "min_auto_confidence": 0.05,
        }
    )
    resources.policies.add("support", lenient, by="test")
    generous = await tether.shadow(
        "escalations",
        Candidate(name="lenient", policy_version=lenient.version),
        version=version,
    )
    assert generous.policy_version == lenient.version and same.policy_version == active.version
    assert resources.policies.active("support") == active  # a candidate governs nothing live
    assert snapshot(business) == before  # shadow mode acted on nothing

    assert not set(rids) & set(same.changed)  # the same configuration decides the same
    assert set(rids) <= set(generous.changed), generous.cases  # the candidate would pay these out
    ours = [c for c in generous.cases if c.request_id in rids]
    assert all(c.recorded.startswith("approval") and c.candidate.startswith("auto") for c in ours)
    assert all(c.human == "reject" for c in ours)  # against what the human decided
