"""What an operator watches, under real traffic: a worker serving /metrics resolves an automatic
request, one that waits for a person (rejected), one whose every approval SLA runs out, two
that meet an open model circuit, then an evaluation runs. The new metrics say exactly what
happened, and every metric the Grafana dashboard and the Prometheus rules in deploy/ query is
in the scrape: a dashboard cannot query a metric the code does not export."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id, ticket
from tests.fault_model import FaultModelServer
from tests.integration.test_resolution import LEAD, MANAGER, wait_pending
from tether import metrics, queuedepth
from tether.capacity import Sample, parse
from tether.client import Tether, connect
from tether.config import LLMConfig, Retry, Settings, Timeouts
from tether.contracts import DecisionAction, Mode
from tether.domains.support.business import BusinessServer
from tether.drift import DriftConfig
from tether.evaluation import EvaluationConfig, EvaluationInput
from tether.localmodel import LocalModel
from tether.stack import free_port
from tether.workers.main import Resources, model_worker, resolution_worker

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).parents[2] / "deploy"
# Fast model retries: three 500s open the circuit within a second (tests/test_model_faults.py).
TIMEOUTS = Timeouts(
    model_start_to_close=timedelta(seconds=5),
    model_budget=timedelta(seconds=30),
    model_retry=Retry(maximum_attempts=6, initial=timedelta(milliseconds=100)),
)
REFUND = "I'd like a refund of $120 for ORD-1003, the jacket doesn't fit."  # tier lead
# The console's own metrics (tether.metrics.ConsoleCounters): tests/integration/test_console.py
# finds every one the rules and the dashboard query on the console's /metrics.
CONSOLE = "tether_console_"

# --- metric names in PromQL -------------------------------------------------------------

# Aggregations may take their grouping first (`sum by (x) (...)`); every other function is an
# identifier followed by "(", which a series name never is.
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count"}
AGGREGATIONS |= {"count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
KEYWORDS |= {"and", "or", "unless", "inf", "nan"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_DURATIONS = re.compile(r"\[[^\]]*\]")
_VARIABLES = re.compile(r"\$\{?\w+\}?")  # Grafana's: $__rate_interval, ${datasource}
_FUNCTIONS = re.compile(r"(?<![\w:])[a-zA-Z_][a-zA-Z0-9_]*\s*\(")
_NAMES = re.compile(r"(?<![\w:.])[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The series names an expression selects: its identifiers, less strings, label names
    (in matchers and groupings), durations, functions, aggregations and keywords."""
    text = expr
    for pattern in (_STRINGS, _MATCHERS, _GROUPINGS, _DURATIONS, _VARIABLES, _FUNCTIONS):
        text = pattern.sub(" ", text)
    return set(_NAMES.findall(text)) - AGGREGATIONS - KEYWORDS


def test_metric_names_are_read_out_of_promql() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, stage) (rate(tether_stage_latency_seconds_bucket"
        '{stage=~"retrieval|acting"}[$__rate_interval]))) > on (stage) group_left() '
        "tether:slo:error_budget * 14.4 and max without (instance) (tether_circuit_state) == 2"
    )
    assert metric_names(expr) == {
        "tether_stage_latency_seconds_bucket",
        "tether:slo:error_budget",
        "tether_circuit_state",
    }


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "tether.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "tether.yml").read_text())
    return [rule for group in groups["groups"] for rule in group["rules"]]


def queried() -> dict[str, set[str]]:
    """Every series name the dashboard and the rules select, by where it is used."""
    used: dict[str, set[str]] = {}
    for where, exprs in (("dashboard", dashboard_exprs()), ("rules", [r["expr"] for r in rules()])):
        for expr in exprs:
            for name in metric_names(str(expr)):
                used.setdefault(name, set()).add(where)
    return used


# --- scraping -----------------------------------------------------------------------------


class Scrape:
    def __init__(self, address: str) -> None:
        self.url = f"http://{address}/metrics"

    def samples(self) -> list[Sample]:
        return parse(httpx.get(self.url, timeout=5).text)

    def value(self, name: str, **labels: str) -> float:
        """The sum over every series of ``name`` carrying ``labels``."""
        return sum(
            s.value
            for s in self.samples()
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    async def until(
        self, name: str, ok: Callable[[float], bool], within: float = 30, **labels: str
    ) -> float:
        """The exporter publishes on its own schedule: poll until ``ok`` holds."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            value = self.value(name, **labels)
            if ok(value) or asyncio.get_running_loop().time() > deadline:
                assert ok(value), f"{name}{labels} = {value}"
                return value
            await asyncio.sleep(0.1)


@dataclasses.dataclass
class Deployment:
    tether: Tether
    scrape: Scrape
    faults: FaultModelServer
    resources: Resources


@pytest.fixture(scope="module")
async def deployment(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    resources: Resources,
    workers: None,
    local_model: LocalModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Deployment]:
    """A workflow worker and a model worker (an OpenAI-compatible endpoint, its circuit opening
    after 3 failures for 2 s) on one metrics endpoint, and the approval queue counted. Its
    own shop: the refund that waits for a person must find its order as seeded, whatever
    other tests refunded on the shared one."""
    shop = BusinessServer(tmp_path_factory.mktemp("deploy") / "business.db").start()
    own = httpx.AsyncClient(base_url=shop.url, timeout=httpx.Timeout(10.0))
    acting = dataclasses.replace(resources, systems={**resources.systems, ("support", "shop"): own})
    faults = await FaultModelServer(local_model).start()
    address = f"127.0.0.1:{free_port()}"
    queue = new_id("deploy")
    llm = LLMConfig.model_validate(
        {"provider": "openai", "base_url": faults.url, "model": "support-model"}
        | {"read_timeout": 5.0, "breaker_failures": 3, "breaker_reset": "PT2S"}
    )
    local = settings.model_copy(
        update={
            "temporal_address": temporal_env.client.service_client.config.target_host,
            "metrics_address": address,
            "task_queue": queue,
            "model_queue": f"{queue}-model",
            "timeouts": TIMEOUTS,
            "llm": llm,
        }
    )
    client = await connect(local, serve_metrics=True)
    # The shared stores, this deployment's settings: the model is built (and its breaker
    # watched) as a worker builds it.
    remote = dataclasses.replace(
        resources, settings=local, _model=None, _model_lock=threading.Lock()
    )
    runtime = metrics.runtime_for(address)
    assert runtime is not None
    counting = asyncio.create_task(
        queuedepth.report(client, resources.policies, ["support"], runtime.metric_meter, 0.2)
    )
    async with (
        resolution_worker(client, acting, task_queue=queue),
        model_worker(client, remote, task_queue=f"{queue}-model"),
    ):
        yield Deployment(Tether(client, local), Scrape(address), faults, resources)
    counting.cancel()
    await remote.model().close()  # type: ignore[attr-defined]
    await faults.stop()
    await own.aclose()
    shop.stop()


@pytest.fixture
def quick_slas(resources: Resources) -> Iterator[None]:
    """A support policy version whose every tier's SLA is one second, active meanwhile."""
    store = resources.policies
    before = store.active("support")
    assert before is not None
    tiers = [t.model_dump(mode="json") | {"sla": "PT1S"} for t in before.policy.tiers]
    quick = before.policy.merged({"version": f"quick-sla-{new_id()}", "tiers": tiers})
    store.add("support", quick, by="test")
    store.activate("support", quick.version, by="test", reason="SLA drill")
    yield
    store.activate("support", before.version, by="test", reason="drill over")


async def test_an_automatic_request_times_each_stage(deployment: Deployment) -> None:
    scrape = deployment.scrape
    stages = ("retrieval", "proposal", "verification", "acting")
    before = {s: scrape.value("tether_stage_latency_seconds_count", stage=s) for s in stages}
    sums = {s: scrape.value("tether_stage_latency_seconds_sum", stage=s) for s in stages}
    outcome = await deployment.tether.resolve(
        ticket("Where is my order ORD-1001? It has not arrived yet.", "C-100")
    )
    assert outcome.decision.action is DecisionAction.AUTO
    for stage in stages:
        await scrape.until(
            "tether_stage_latency_seconds_count", lambda v, s=stage: v == before[s] + 1, stage=stage
        )
    # Each stage within the request's own time, the stages together too (they do not overlap).
    total = (outcome.finished_at - outcome.started_at).total_seconds()
    spent = {s: scrape.value("tether_stage_latency_seconds_sum", stage=s) - sums[s] for s in stages}
    # Microsecond sums in floating point: equal can come out a hair over.
    assert all(v > 0 for v in spent.values()) and sum(spent.values()) <= total + 1e-6, (
        spent,
        total,
    )
    assert scrape.value("tether_decisions", action="auto", domain="support") >= 1
    # Buckets fit for the values (tether.metrics.BUCKETS), not the SDK's 50 ms to 10 s.
    names = {(s.name, s.labels.get("le")) for s in scrape.samples()}
    assert ("tether_stage_latency_seconds_bucket", "0.025") in names
    assert ("tether_stage_latency_seconds_bucket", "86400") in names
    assert ("tether_grounding_bucket", "0.75") in names


async def test_the_queue_counts_a_waiting_run_until_it_is_reviewed(
    deployment: Deployment,
) -> None:
    tether, scrape = deployment.tether, deployment.scrape
    # The tier it waits at depends on what the subject's earlier requests add up to (other
    # tests' refunds): read it once pending, against every tier's count from before.
    tiers = {"lead": LEAD, "manager": MANAGER}
    base = {
        t: await scrape.until(metrics.QUEUE_DEPTH, lambda v: v >= 0, domain="support", tier=t)
        for t in tiers
    }
    waits = scrape.value("tether_stage_latency_seconds_count", stage="approval_wait")
    waited = scrape.value("tether_stage_latency_seconds_sum", stage="approval_wait")
    breaches = scrape.value(metrics.SLA_BREACHES)
    submitted = asyncio.get_running_loop().time()
    req = ticket(REFUND, "C-102")
    handle = await tether.submit(req)
    await wait_pending(tether, req["request_id"])
    pending = asyncio.get_running_loop().time()
    waiting = (await tether.status(req["request_id"])).pending
    assert waiting is not None
    tier = waiting.tier_name
    at = {"domain": "support", "tier": tier}
    await scrape.until(metrics.QUEUE_DEPTH, lambda v: v == base[tier] + 1, **at)
    reviewed = asyncio.get_running_loop().time()
    await tether.reject(req["request_id"], approver=tiers[tier], reason="not this time")
    outcome = await handle.result()
    finished = asyncio.get_running_loop().time()
    assert outcome.decision.action is DecisionAction.APPROVAL and not outcome.actions
    await scrape.until(metrics.QUEUE_DEPTH, lambda v: v == base[tier], **at)
    await scrape.until(
        "tether_stage_latency_seconds_count", lambda v: v == waits + 1, stage="approval_wait"
    )
    # The gate waited from before it was seen pending until after the review was sent.
    wait = scrape.value("tether_stage_latency_seconds_sum", stage="approval_wait") - waited
    assert reviewed - pending - 0.05 <= wait <= finished - submitted, (wait, reviewed - pending)
    assert scrape.value(metrics.SLA_BREACHES) == breaches  # a review in time breaches nothing


async def test_each_expired_tier_is_one_sla_breach(
    deployment: Deployment, quick_slas: None
) -> None:
    scrape = deployment.scrape
    before = {t: scrape.value(metrics.SLA_BREACHES, tier=t) for t in ("lead", "manager")}
    outcome = await deployment.tether.resolve(ticket(REFUND, "C-102"))
    assert outcome.mode is Mode.SAFE_DEFAULT
    # It starts at lead, or at manager when the subject's earlier refunds (other tests')
    # already add up past lead's limit; every tier from there on expires.
    expired = [(r.verdict, r.tier) for r in outcome.reviews]
    assert expired in ([("expired", 0), ("expired", 1)], [("expired", 1)])
    breached = {("lead", "manager")[i] for _, i in expired}
    for tier in breached:
        await scrape.until(
            metrics.SLA_BREACHES, lambda v, t=tier: v == before[t] + 1, tier=tier, domain="support"
        )
    await asyncio.sleep(0.5)  # and no more than once
    for tier, count in before.items():
        assert scrape.value(metrics.SLA_BREACHES, tier=tier) == count + (tier in breached)


async def test_the_circuit_state_follows_the_breaker(deployment: Deployment) -> None:
    tether, scrape, faults = deployment.tether, deployment.scrape, deployment.faults
    model = {"breaker": "model"}
    opened = await scrape.until(metrics.CIRCUIT_OPENINGS, lambda v: v >= 0, **model)
    assert scrape.value(metrics.CIRCUIT_STATE, **model) == 0
    faults.script = ["server_error"] * 3
    tripped = await tether.resolve(ticket("How long does standard shipping take?", "C-101"))
    assert tripped.mode is Mode.RETRIEVAL_ONLY and tripped.decision.codes() == ["circuit_open"]
    await scrape.until(metrics.CIRCUIT_STATE, lambda v: v == 2, **model)
    await scrape.until(metrics.CIRCUIT_OPENINGS, lambda v: v == opened + 1, **model)
    await asyncio.sleep(2.1)  # reset_after: the next call is the trial, and it succeeds
    recovered = await tether.resolve(ticket("How long does standard shipping take?", "C-101"))
    assert recovered.mode is Mode.NORMAL
    await scrape.until(metrics.CIRCUIT_STATE, lambda v: v == 0, **model)
    assert scrape.value(metrics.CIRCUIT_OPENINGS, **model) == opened + 1


async def test_every_metric_the_dashboard_and_the_rules_query_is_exported(
    deployment: Deployment,
) -> None:
    """After the traffic above (run alone: a request of each kind first), an evaluation of
    the last minutes against what came before exports the burn rates and drift."""
    tether, scrape = deployment.tether, deployment.scrape
    if scrape.value("tether_decisions") == 0:
        await test_an_automatic_request_times_each_stage(deployment)
    boundary = datetime.now(UTC)
    await asyncio.sleep(0.2)
    await tether.resolve(ticket("Where is my order ORD-1001? It has not arrived yet.", "C-100"))
    since = (datetime.now(UTC) - boundary).total_seconds() + 1
    report = await tether.evaluate(
        EvaluationInput(
            since_hours=since / 3600,
            baseline_days=1,
            config=EvaluationConfig(sample_rate=1.0),
            drift=DriftConfig(min_outcomes=1),
        )
    )
    assert report.drift is not None and report.drift.metrics and report.budgets
    used = queried()
    recorded = {r["record"] for r in rules() if "record" in r}
    scraped: set[str] = set()
    missing: dict[str, set[str]] = {}
    theirs = {n for n in used if n.startswith(CONSOLE)}  # the console's, checked where it runs
    assert theirs, "the rules alert on refused sign-ins"
    for _ in range(100):
        scraped = {s.name for s in scrape.samples()} | theirs
        missing = {n: where for n, where in used.items() if n not in recorded and n not in scraped}
        if not missing:
            break
        await asyncio.sleep(0.2)
    assert not missing, f"queried but not exported: {missing}"
    # A recording rule's name is the rules' own; the dashboard may use only those defined.
    assert {n for n in used if ":" in n} <= recorded
    assert len(used) >= 12  # the parse found the queries
    # The evaluation's gauges say what its report says, the burn rate by its window.
    for metric in report.drift.metrics:
        assert scrape.value("tether_drift_psi", signal=metric.name, domain="all") == metric.psi
    window = f"{since / 3600:g}h"
    for budget in report.budgets:
        burn = scrape.value("tether_quality_burn_rate", scorer=budget.scorer, window=window)
        assert burn == budget.burn_rate
