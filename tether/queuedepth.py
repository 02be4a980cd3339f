"""The approval queue's depth: runs waiting for a person, by domain and tier, as a gauge on the
worker's metrics endpoint. Counted by visibility from the search attributes the runs write
(TetherStage, TetherDomain, TetherQueue: the tier waited at), one count per (domain, tier):
visibility counts without listing the runs (GROUP BY takes only ExecutionStatus), so a round
costs the same however long the queue is.

Every workflow worker reports the same namespace-wide count: a dashboard takes the max across
instances, not the sum."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from temporalio.client import Client
from temporalio.common import MetricMeter

from tether import metrics, search
from tether.contracts import Stage
from tether.policystore import PolicyStore

log = logging.getLogger(__name__)
EVERY = 15.0  # seconds: Prometheus's default scrape interval


def query(domain: str, tier: str) -> str:
    for value in (domain, tier):
        if "'" in value or "\\" in value:
            raise ValueError(f"not a name a visibility query can quote: {value!r}")
    return (
        f"{search.STAGE.name} = '{Stage.AWAITING_APPROVAL.value}' AND "
        f"{search.DOMAIN.name} = '{domain}' AND {search.QUEUE.name} = '{tier}' AND "
        "ExecutionStatus = 'Running'"  # a run terminated while waiting keeps its attributes
    )


def ladders(policies: PolicyStore, domains: Sequence[str]) -> dict[str, list[str]]:
    """Each domain's tier names across every stored policy version: a run waits at a tier of
    the version it pinned, which need not be the active one."""
    return {
        d: list(dict.fromkeys(t.name for v in policies.versions(d) for t in v.policy.tiers))
        for d in domains
    }


async def depths(client: Client, ladder: dict[str, list[str]]) -> dict[tuple[str, str], int]:
    pairs = [(domain, tier) for domain, tiers in ladder.items() for tier in tiers]
    counts = await asyncio.gather(*(client.count_workflows(query(d, t)) for d, t in pairs))
    return {pair: count.count for pair, count in zip(pairs, counts, strict=True)}


async def report(
    client: Client,
    policies: PolicyStore,
    domains: Sequence[str],
    meter: MetricMeter,
    every: float = EVERY,
) -> None:
    """Set the gauge every ``every`` seconds, until cancelled. A round that fails (server or
    store unreachable) is logged and the gauge keeps its last values until one succeeds."""
    gauge = meter.create_gauge(metrics.QUEUE_DEPTH, "Runs waiting for a person, by tier")
    while True:
        try:
            ladder = await asyncio.to_thread(ladders, policies, domains)
            for (domain, tier), count in (await depths(client, ladder)).items():
                gauge.set(count, {"domain": domain, "tier": tier})
        except Exception as err:
            log.warning("approval queue depth not counted: %r", err)
        await asyncio.sleep(every)
