"""What governance costs, one request at a time and under load: the same ticket through
ResolutionWorkflow (pin policy, retrieve, read the order, propose, validate, verify, decide,
act, record) and through an ungoverned baseline (retrieve, propose, act), at concurrency 1, 20
and 50, in one run against one dev server and the same worker processes, deployed as `tether
up` deploys them: a workflow process (--role workflow) and a compute process (--role compute:
retrieval, verification, the local model). The client is this process.

Then the orchestration's ceiling: the governed request with an instant model (a fixed valid
proposal) against a bare workflow running as many do-nothing activities. And a profile by
stage, from the governed requests' own histories: time waiting for a worker, time running.

    make bench        # or: python -m bench.governance_overhead [--scale 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.deployment import deployment
from bench.ungoverned import BareWorkflow, BaselineInput, UngovernedWorkflow
from bench.worker import INSTANT_QUEUE
from tether.client import Tether
from tether.config import Settings
from tether.contracts import Request, ResolutionInput
from tether.names import workflow_id_for

TICKET = "Where is my order ORD-1001? It has not arrived."
LEVELS = {1: 30, 20: 120, 50: 200}  # concurrency -> requests per kind
RESULTS = Path(__file__).parent / "results" / "throughput.json"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def batch(
    run_one: Callable[[int], Awaitable[None]], requests: int, concurrency: int
) -> tuple[list[float], float]:
    """Latencies (ms) and wall time (s) of ``requests`` calls, ``concurrency`` in flight."""
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with slots:
            t0 = time.perf_counter()
            await run_one(i)
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    return latencies, time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dev_server_pid() -> int | None:
    """The Temporal dev server this process started (a child, found by its command line)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                status = (entry / "status").read_text()
            except OSError:
                continue
            parent = next(
                (line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), ""
            )
            if b"start-dev" in cmdline and parent == str(os.getpid()):
                return int(entry.name)
    return None


def request() -> Request:
    rid = f"b-{uuid.uuid4().hex[:10]}"
    return Request(request_id=rid, subject="C-100", requester="C-100", text=TICKET)


async def profile(client: Client, workflow_ids: list[str]) -> dict[str, Any]:
    """Per activity type: p50 ms waiting for a worker and running; and the workflow tasks'
    p50/p99/max ms from scheduled to completed."""
    waits: dict[str, list[float]] = defaultdict(list)
    runs: dict[str, list[float]] = defaultdict(list)
    tasks: list[float] = []
    by_position: dict[int, list[float]] = defaultdict(list)  # the n-th workflow task of a run
    activities = events = 0
    kinds: dict[str, int] = defaultdict(int)
    for wid in workflow_ids:
        history = await client.get_workflow_handle(wid).fetch_history()
        events += len(history.events)
        for event in history.events:
            kinds[EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")] += 1
        scheduled: dict[int, tuple[str, float]] = {}
        started: dict[int, float] = {}
        task_scheduled = 0.0
        position = 0
        for event in history.events:
            at = event.event_time.ToMicroseconds() / 1000
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                task_scheduled = at
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                tasks.append(at - task_scheduled)
                by_position[position].append(at - task_scheduled)
                position += 1
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[event.event_id] = (name, at)
                activities += 1
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                which = event.activity_task_started_event_attributes.scheduled_event_id
                name, then = scheduled[which]
                waits[name].append(at - then)
                started[which] = at
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                which = event.activity_task_completed_event_attributes.scheduled_event_id
                name, _ = scheduled[which]
                runs[name].append(at - started[which])
    return {
        "activities_per_request": activities / max(1, len(workflow_ids)),
        "events_per_request": events / max(1, len(workflow_ids)),
        "events_by_type": {k: v / max(1, len(workflow_ids)) for k, v in sorted(kinds.items())},
        "stages": {
            name: {
                "wait_p50_ms": round(statistics.median(waits[name]), 1),
                "run_p50_ms": round(statistics.median(runs[name]), 1) if runs[name] else None,
            }
            for name in sorted(waits)
        },
        "workflow_task_ms": {
            "p50": round(pct(tasks, 0.5), 1),
            "p99": round(pct(tasks, 0.99), 1),
            "max": round(max(tasks), 1),
            # Where a run's time goes between its activities: the first task (the pin and the
            # reads), the decision's, the record's.
            "p50_by_position": [
                round(statistics.median(by_position[i]), 1) for i in sorted(by_position)
            ],
        },
    }


async def main(
    scale: float, workflow_processes: int = 1, local_act: bool = False
) -> dict[str, Any]:
    roles = ["compute", *["workflow"] * workflow_processes, "instant"]
    async with deployment(roles) as deployed:
        watched = {
            "compute": deployed.processes[0].pid,
            "workflow": deployed.processes[1].pid,  # the ungoverned workflows' too
            "client": os.getpid(),  # this process: starts them and waits for their results
        }
        server = dev_server_pid()
        if server is not None:
            watched["temporal server"] = server
        return await measure(
            deployed.client, deployed.tether, deployed.settings, scale, watched, local_act
        )


async def measure(
    client: Client,
    tether: Tether,
    settings: Settings,
    scale: float,
    roles: dict[str, int],
    local_act: bool = False,
) -> dict[str, Any]:
    async def governed(_: int, model_queue: str = settings.model_queue) -> None:
        r = request()
        if model_queue == settings.model_queue:
            outcome = await tether.resolve(r)
        else:
            outcome = await Tether(
                client, settings.model_copy(update={"model_queue": model_queue})
            ).resolve(r)
        assert outcome.decision.action.value == "auto", outcome.decision
        ids.append(workflow_id_for(r.request_id))

    async def ungoverned(_: int) -> None:
        r = request()
        await client.execute_workflow(
            UngovernedWorkflow.run,
            BaselineInput(
                resolution=ResolutionInput(
                    domain="support", request=r, model_queue=settings.model_queue
                ),
                tool_queue=settings.task_queue,
                compute_queue=settings.compute_queue,
                local_act=local_act,
            ),
            id=f"ungoverned-{r.request_id}",
            task_queue=f"{settings.task_queue}-baseline",
        )

    ids: list[str] = []
    for _ in range(3):  # warm caches and connections; not counted
        await governed(0)
        await ungoverned(0)
    levels: dict[str, Any] = {}
    for concurrency, count in LEVELS.items():
        n = max(concurrency, int(count * scale)) // 2
        ids.clear()
        used = {role: cpu_seconds(pid) for role, pid in roles.items()}
        g1, gw1 = await batch(governed, n, concurrency)
        used = {role: cpu_seconds(pid) - used[role] for role, pid in roles.items()}
        baseline = {role: cpu_seconds(pid) for role, pid in roles.items()}
        u1, uw1 = await batch(ungoverned, n, concurrency)
        baseline = {role: cpu_seconds(pid) - baseline[role] for role, pid in roles.items()}
        u2, uw2 = await batch(ungoverned, n, concurrency)
        g2, gw2 = await batch(governed, n, concurrency)
        g, u = g1 + g2, u1 + u2
        g_rate, u_rate = len(g) / (gw1 + gw2), len(u) / (uw1 + uw2)
        levels[str(concurrency)] = {
            "requests": len(g),
            "governed": {
                "p50_ms": round(pct(g, 0.5), 1),
                "p95_ms": round(pct(g, 0.95), 1),
                "per_s": round(g_rate, 2),
            },
            "ungoverned": {
                "p50_ms": round(pct(u, 0.5), 1),
                "p95_ms": round(pct(u, 0.95), 1),
                "per_s": round(u_rate, 2),
            },
            "latency_ratio_p50": round(pct(g, 0.5) / pct(u, 0.5), 2),
            # CPU one governed request cost each process (its first batch), and its cores.
            "governed_cpu_ms_per_request": {
                role: round(1000 * seconds / len(g1), 1) for role, seconds in used.items()
            },
            "governed_cores": {role: round(seconds / gw1, 2) for role, seconds in used.items()},
            "ungoverned_cpu_ms_per_request": {
                role: round(1000 * seconds / len(u1), 1) for role, seconds in baseline.items()
            },
            "throughput_ratio": round(g_rate / u_rate, 2),
            "profile": await profile(client, ids[:: max(1, len(ids) // 20)]),
        }
        print(json.dumps({concurrency: levels[str(concurrency)]}, indent=1), flush=True)

    # The ceiling: no model work at all, against Temporal running as many empty activities.
    concurrency, n = 20, max(20, int(120 * scale)) // 2
    ids.clear()
    instant, i_wall = await batch(lambda i: governed(i, INSTANT_QUEUE), n * 2, concurrency)
    shape = await profile(client, ids[:10])
    steps = round(shape["activities_per_request"])

    async def bare(_: int) -> None:
        await client.execute_workflow(
            BareWorkflow.run,
            steps,
            id=f"bare-{uuid.uuid4().hex[:10]}",
            task_queue=f"{settings.task_queue}-baseline",
        )

    plain, p_wall = await batch(bare, n * 2, concurrency)
    ceiling = {
        "concurrency": concurrency,
        "activities": steps,
        "governed_instant_per_s": round(len(instant) / i_wall, 2),
        "bare_per_s": round(len(plain) / p_wall, 2),
        "cost_ratio": round((len(plain) / p_wall) / (len(instant) / i_wall), 2),
        "governed_instant_p50_ms": round(pct(instant, 0.5), 1),
        "bare_p50_ms": round(pct(plain, 0.5), 1),
    }
    print(json.dumps({"ceiling": ceiling}, indent=1), flush=True)
    return {"levels": levels, "ceiling": ceiling}


def summary(report: dict[str, Any]) -> str:
    lines = ["concurrency  governed p50 / req/s   ungoverned p50 / req/s   latency x  thruput x"]
    for level, row in report["levels"].items():
        g, u = row["governed"], row["ungoverned"]
        lines.append(
            f"{level:>11}  {g['p50_ms']:8.1f} ms {g['per_s']:6.2f}   "
            f"{u['p50_ms']:10.1f} ms {u['per_s']:6.2f}   "
            f"{row['latency_ratio_p50']:8.2f}  {row['throughput_ratio']:8.2f}"
        )
    c = report["ceiling"]
    lines.append(
        f"instant model, concurrency {c['concurrency']}: governed {c['governed_instant_per_s']}"
        f" req/s, bare workflow of {c['activities']} empty activities {c['bare_per_s']}/s: "
        f"cost {c['cost_ratio']}x"
    )
    for level, row in report["levels"].items():
        lines.append(
            f"concurrency {level}: CPU per governed request (cores used) "
            + ", ".join(
                f"{role} {ms} ms ({row['governed_cores'][role]})"
                for role, ms in row["governed_cpu_ms_per_request"].items()
            )
        )
    for level, row in report["levels"].items():
        g_cpu, u_cpu = row["governed_cpu_ms_per_request"], row["ungoverned_cpu_ms_per_request"]
        lines.append(
            f"concurrency {level}: CPU per request, governed / ungoverned: "
            + ", ".join(f"{role} {g_cpu[role]}/{u_cpu[role]} ms" for role in g_cpu)
            + f"; all {round(sum(g_cpu.values()), 1)}/{round(sum(u_cpu.values()), 1)} ms"
        )
    for level, row in report["levels"].items():
        tasks = row["profile"]["workflow_task_ms"]
        lines.append(
            f"concurrency {level}: workflow task p50 {tasks['p50']} ms, p99 {tasks['p99']} ms, "
            f"max {tasks['max']} ms, p50 by position {tasks['p50_by_position']} ms; "
            "by stage (wait/run p50 ms): "
            + ", ".join(
                f"{name} {s['wait_p50_ms']}/{s['run_p50_ms']}"
                for name, s in row["profile"]["stages"].items()
            )
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the requests")
    parser.add_argument(
        "--workflow-processes", type=int, default=1, help="as `tether up --workers N`"
    )
    parser.add_argument(
        "--local-act",
        action="store_true",
        help="the baseline calls its tools as local activities, as governed runs do",
    )
    args = parser.parse_args()
    report = asyncio.run(main(args.scale, args.workflow_processes, args.local_act))
    report["workflow_processes"] = args.workflow_processes
    report["baseline_local_act"] = args.local_act
    written = RESULTS.with_stem(f"{RESULTS.stem}_local_act") if args.local_act else RESULTS
    written.parent.mkdir(parents=True, exist_ok=True)
    written.write_text(json.dumps(report, indent=1) + "\n")
    print(summary(report))
