"""Commands that run things: the embedded stack, workers, the console, the demo, replay; and
what this installation serves."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import typer
from rich.table import Table

from tether.cli.apps import app
from tether.cli.output import (
    JSON,
    emit,
    err,
    fail,
    out,
    run,
    serve,
    until_interrupted,
    within,
)
from tether.config import Settings


@app.command()
def up(
    workers: int = typer.Option(
        1,
        min=0,
        max=32,
        help="worker processes for workflows (--role workflow), beside the one --role compute "
        "process that owns the knowledge and runs the model and the one --role shadow process "
        "for live candidates; 0: one process runs everything",
    ),
) -> None:
    """Run the embedded stack in the foreground (Temporal + UI, business systems, workers)."""
    from tether.workers.stack import EmbeddedStack

    async def main() -> None:
        settings = Settings()
        async with EmbeddedStack(settings, processes=workers) as stack:
            out.print(f"Temporal {settings.temporal_address}, UI {settings.ui_url}")
            if workers:
                out.print(
                    f"Workers: {workers} workflow process(es) on {settings.task_queue}, one "
                    f"compute process on {stack.settings.compute_queue} and {settings.model_queue}"
                    f", one shadow process on {stack.settings.shadow_queue}"
                )
            if settings.evaluation_every is not None:
                out.print(
                    f"Evaluating every {settings.evaluation_every} (Temporal Schedule): quality "
                    "budgets, drift and self-protection (TETHER_EVALUATION_EVERY=0: none)"
                )
            if stack.codec_url is not None:
                out.print(f"Codec server {stack.codec_url}: the UI decodes encrypted history")
            for name, system in stack.systems.items():
                pack, _, own = name.partition(".")  # "acme.acme": the acme pack's own system
                shown = pack if own == pack else f"{own} ({pack})"
                out.print(f"Business system {shown}: {getattr(system, 'url', '')}")
            for pack, version in stack.without_approvers():
                err.print(
                    f"{pack}: policy {version} has no approver directory, so requests that "
                    "need a person are refused (no_approver); see docs/security.md"
                )
            out.print("Ctrl-C stops everything.")
            await until_interrupted()
        out.print("stopped")

    run(main())


@app.command()
def worker(
    role: str = typer.Option(
        "all",
        help="all | workflow (workflows, I/O activities) | compute (retrieval, verification, "
        "the model; owns the embedded shard) | model (the model queue only) | shadow (live "
        "candidates' shadow runs)",
    ),
) -> None:
    """Run workers against an existing Temporal server (Ctrl-C stops)."""
    from tether.workers.main import ROLES
    from tether.workers.main import run as run_workers

    if role not in ROLES:
        raise typer.BadParameter(f"{role!r}: one of {', '.join(ROLES)}", param_hint="--role")

    level = os.environ.get("TETHER_LOG_LEVEL", "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        fail(f"TETHER_LOG_LEVEL {level!r}: one of DEBUG, INFO, WARNING, ERROR")
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per tool call
    # A line per revision and database at every first start; tether.migrations says it once.
    logging.getLogger("alembic").setLevel(logging.WARNING)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_workers(Settings(), stop, role))
        # Until interrupted, or until the workers end by themselves (no server to reach, a
        # crash): then the command ends too, with what ended them, and a supervisor sees it.
        interrupted = asyncio.create_task(until_interrupted())
        await asyncio.wait({task, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        interrupted.cancel()
        stop.set()
        await task

    run(main())


@app.command()
def domains(as_json: bool = JSON) -> None:
    """The domain packs this installation serves: what each one governs."""
    from tether import packs

    served = packs.load(Settings().domains)
    rows: list[dict[str, Any]] = [
        {
            "domain": pack.name,
            "title": pack.title,
            "subject": pack.subject_label,
            "references": [r.name for r in pack.references],
            "tools": [t.name for t in pack.tools if t.proposable],
            "intents": list(pack.intents),
            "tiers": [t.name for t in pack.policy.tiers],
        }
        for pack in served
    ]
    if as_json:
        emit(rows)
        return
    table = Table("domain", "what", "tools", "intents", "tiers")
    for row in rows:
        table.add_row(
            row["domain"],
            row["title"],
            ", ".join(row["tools"]),
            ", ".join(row["intents"]),
            ", ".join(row["tiers"]),
        )
    out.print(table)


@app.command("console")
def console_command(
    port: int | None = typer.Option(
        None, min=1, max=65535, help="default: TETHER_CONSOLE__PORT (8300)"
    ),
) -> None:
    """Serve the web operator console (approval queue, details, approve/reject/edit)."""
    from tether.client import connect
    from tether.console import create_app

    settings = Settings()
    if not settings.console.tokens and not settings.console.identity_header:
        err.print(
            "no TETHER_CONSOLE__TOKENS or TETHER_CONSOLE__IDENTITY_HEADER: nobody can sign in",
            style="yellow",
        )
    run(connect(settings))  # a server that does not answer: one line now, not a traceback later
    host, port = settings.console.host, port or settings.console.port
    out.print(f"console on http://{host}:{port} (sign in at /login; Ctrl-C stops it)")
    serve(create_app(settings), host, port)


@app.command("replay")
def replay_command(
    query: str = typer.Option("", help="which executions (Temporal visibility query; all)"),
    limit: int = typer.Option(100, min=1, help="at most this many histories"),
    as_json: bool = JSON,
) -> None:
    """Replay recent histories from the server against this code; exit 1 on any divergence."""
    from tether import packs
    from tether.client import connect
    from tether.replay import replay_recent
    from tether.workers.main import WORKFLOWS

    packs.load(Settings().domains)  # the workflows decide with the packs' rules

    async def main() -> None:
        report = await replay_recent(await connect(Settings()), WORKFLOWS, query=query, limit=limit)
        if as_json:
            emit({"replayed": report.replayed, "diverged": report.failures})
        else:
            for workflow_id, why in report.failures.items():
                err.print(f"{workflow_id}: {why}", style="red")
            out.print(f"replayed {report.replayed}, {len(report.failures)} diverged")
        if report.failures:
            raise typer.Exit(1)

    run(main())


@app.command()
def demo() -> None:
    """Start the embedded stack, ingest each pack's knowledge, run its demo tickets, stop."""
    from tether.workers.demo import run_demo

    run(run_demo())


@app.command("capacity")
def capacity_command(
    metrics: list[str] = typer.Option(
        [],
        "--metrics",
        help="a worker's metrics endpoint, host:port (repeat for each); default "
        "TETHER_METRICS_ADDRESS",
    ),
    seconds: float = typer.Option(10.0, min=1.0, max=3600.0, help="time between the two scrapes"),
    target: float | None = typer.Option(None, min=0.0, help="requests/s to size for"),
    as_json: bool = JSON,
) -> None:
    """Requests/s per worker role, the bottleneck, and the processes a target rate needs, from
    the workers' own metrics (under real traffic: idle workers say nothing)."""
    import dataclasses
    import time

    from tether import capacity

    if target is not None:
        within(target, "--target", 1e9, low=-1)
    endpoints = metrics or [a for a in [Settings().metrics_address] if a]
    if not endpoints:
        fail("no endpoint: pass --metrics host:port or set TETHER_METRICS_ADDRESS")
    try:
        before = capacity.scrape(endpoints)
        time.sleep(seconds)
        after = capacity.scrape(endpoints)
    except capacity.Unreadable as error:
        fail(f"cannot read the metrics at {error}")
    if not after.cpu:
        fail("no tether_process_cpu_seconds there: are these Tether workers' endpoints?")
    found = capacity.assess(before, after, seconds, target)
    if as_json:
        emit(dataclasses.asdict(found))
        return
    out.print(f"over {seconds:.0f} s: {found.requests_per_s:.2f} requests/s completed")
    table = Table("role", "processes", "cores used", "CPU ms/request", "req/s per process")
    if target:
        table.add_column(f"processes for {target:g}/s")
    for role in found.roles:
        row = [
            role.role,
            str(role.processes),
            f"{role.cores:.2f}",
            f"{role.cpu_ms_per_request:.1f}" if role.cpu_ms_per_request is not None else "-",
            f"{role.per_process_per_s:.1f}" if role.per_process_per_s is not None else "-",
        ]
        if target:
            row.append(str(role.needed) if role.needed is not None else "-")
        table.add_row(*row)
    out.print(table)
    if found.bottleneck:
        out.print(
            f"bottleneck: {found.bottleneck} (this deployment carries about "
            f"{found.ceiling_per_s:.1f} requests/s); the Temporal server's CPU is not counted"
        )
    else:
        out.print("no requests completed while measuring: send traffic, then measure")
