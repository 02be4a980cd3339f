"""The `tether` command: run the stack, ingest knowledge, ask, review approvals, demo."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tether.config import Settings
from tether.errors import ConfigurationError, InvalidRequest, ReviewRejected

app = typer.Typer(no_args_is_help=True, help="Tether: governed AI workflows on Temporal.")
approvals = typer.Typer(no_args_is_help=True, help="Work waiting for a human.")
evaluation_app = typer.Typer(
    no_args_is_help=True, help="Live evaluation: sampled outcomes scored, quality budgets."
)
app.add_typer(evaluation_app, name="eval")
app.add_typer(approvals, name="approvals")
console = Console(width=None if sys.stdout.isatty() else 150)
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except ConfigurationError as err:  # no command can do anything useful with these settings
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2) from None


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@app.command()
def up() -> None:
    """Run the embedded stack in the foreground (Temporal + UI, business systems, workers)."""
    from tether.workers.stack import EmbeddedStack

    async def main() -> None:
        settings = Settings()
        async with EmbeddedStack(settings) as stack:
            console.print(f"Temporal {settings.temporal_address}, UI {settings.ui_url}")
            for name, system in stack.systems.items():
                console.print(f"Business system {name}: {getattr(system, 'url', '')}")
            console.print("Ctrl-C stops everything.")
            await _until_interrupted()
        console.print("stopped")

    _run(main())


@app.command()
def domains() -> None:
    """The domain packs this installation serves: what each one governs."""
    from tether import packs

    table = Table("domain", "what", "tools", "intents", "tiers")
    for pack in packs.load(Settings().domains):
        table.add_row(
            pack.name,
            pack.title,
            ", ".join(t.name for t in pack.tools if t.proposable),
            ", ".join(pack.intents),
            ", ".join(t.name for t in pack.policy.tiers),
        )
    console.print(table)


@app.command()
def worker() -> None:
    """Run the workers against an existing Temporal server (Ctrl-C stops)."""
    from tether.workers.main import run

    logging.basicConfig(
        level=os.environ.get("TETHER_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run(Settings(), stop))
        await _until_interrupted()
        stop.set()
        await task

    _run(main())


@app.command()
def ingest(
    locations: list[str] = typer.Argument(
        None, help="directories or http(s) URLs (default: the pack's own knowledge)"
    ),
    domain: str | None = typer.Option(None, help="whose knowledge (default: the only pack)"),
    source: str | None = typer.Option(None, help="source name (default: kb, or the URL's host)"),
    max_age_days: int = typer.Option(30, help="freshness rule for documents without their own"),
    every: str | None = typer.Option(
        None, help="also refresh on a Temporal Schedule, e.g. 30m, 6h, 1d"
    ),
) -> None:
    """Index knowledge sources now (in the worker that owns the index), and optionally on a
    schedule. Re-indexing embeds only what changed; a URL answering 304 costs nothing."""
    from tether.client import Tether

    async def main() -> None:
        if source and len(locations) > 1:
            # A source owns its chunks: two locations under one name would delete each other's.
            console.print("[red]--source names one location; omit it to name each by its own[/red]")
            raise typer.Exit(2)
        tether = await Tether.connect()
        try:
            pack = tether.pack(domain)
            wanted = [(str(k.location), k.source) for k in pack.knowledge]
            if locations:
                wanted = [(loc, source or source_name(loc)) for loc in locations]
            sources = [
                tether.source(loc, domain=pack.name, source=name, max_age_days=max_age_days)
                for loc, name in wanted
            ]
        except InvalidRequest as err:
            console.print(f"[red]{err}[/red]")
            raise typer.Exit(2) from None
        for inp in sources:
            handle = await tether.start_ingest(
                inp.path or inp.url or "",
                domain=inp.domain,
                source=inp.source,
                max_age_days=max_age_days,
            )
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task(f"indexing {inp.path or inp.url}", total=None)
                waiting = asyncio.ensure_future(handle.result())
                while not waiting.done():
                    seen = await tether.ingest_progress(handle)
                    if seen is not None:
                        progress.update(task, completed=seen[0], total=seen[1])
                    await asyncio.wait([waiting], timeout=0.5)
            console.print(waiting.result().model_dump_json(indent=2))
        if every:
            interval = parse_interval(every)
            schedule = await tether.schedule_refresh(sources, interval)
            console.print(f"refreshing every {interval} (schedule {schedule})")

    _run(main())


def source_name(location: str) -> str:
    """A directory by its own name (domains/support/kb -> kb); a URL by host and path."""
    from tether.knowledge import slug

    if "://" in location:
        import httpx

        url = httpx.URL(location)
        return slug(f"{url.host}{url.path}")[:64]
    return slug(Path(location).resolve().name)[:64]


def parse_interval(text: str) -> timedelta:
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) == 0:
        console.print(f"[red]--every {text!r}: expected a number and s, m, h or d[/red]")
        raise typer.Exit(2)
    return timedelta(**{units[unit]: int(number)})


@app.command()
def ask(
    text: str,
    subject: str = typer.Option(
        ..., help="on whose behalf: the pack's subject (see tether domains)"
    ),
    requester: str | None = typer.Option(None, help="who submits (default: the subject)"),
    ref: list[str] | None = typer.Option(
        None, help="KIND=ID, a record the request points at, if not in the text (repeatable)"
    ),
    domain: str | None = typer.Option(None, help="which pack governs it (default: the only one)"),
    request_id: str | None = typer.Option(None, help="idempotent request id (default: new)"),
) -> None:
    """Start a request, wait for its outcome, print it."""
    from tether.client import Tether

    references: dict[str, list[str]] = {}
    for item in ref or []:
        kind, _, ident = item.partition("=")
        if not kind or not ident:
            console.print(f"[red]--ref {item!r}: expected KIND=ID[/red]")
            raise typer.Exit(2)
        references.setdefault(kind, []).append(ident)

    async def main() -> None:
        tether = await Tether.connect()
        rid = request_id or f"cli-{uuid.uuid4().hex[:10]}"
        try:
            handle = await tether.submit(
                {
                    "request_id": rid,
                    "subject": subject,
                    "requester": requester or subject,
                    "text": text,
                    "references": references,
                },
                domain=domain,
            )
        except InvalidRequest as err:
            console.print(f"[red]{err}[/red]")
            raise typer.Exit(2) from None
        console.print(f"started {handle.id}: {tether.ui_link(rid)}")
        outcome = await handle.result()
        console.print(outcome.model_dump_json(indent=2))

    _run(main())


@approvals.command("list")
def approvals_list(
    queue: str | None = typer.Option(None, help="approval tier, by name"),
    intent: str | None = typer.Option(None, help="an intent of the pack"),
    mode: str | None = typer.Option(None, help="e.g. human_draft, read_only"),
    domain: str | None = typer.Option(None, help="one pack's requests only"),
) -> None:
    """Requests waiting for approval (filtered through search attributes)."""
    from tether.client import Tether

    async def main() -> None:
        tether = await Tether.connect()
        table = Table("request", "domain", "tier", "role", "deadline", "intent", "reasons")
        try:
            waiting = await tether.pending(queue=queue, intent=intent, mode=mode, domain=domain)
        except InvalidRequest as err:
            console.print(f"[red]{err}[/red]")
            raise typer.Exit(2) from None
        for status in waiting:
            assert status.pending is not None
            table.add_row(
                status.request_id,
                status.domain,
                status.pending.tier_name,
                status.pending.role,
                status.pending.deadline.isoformat(timespec="seconds"),
                status.intent or "",
                ", ".join(r.code for r in status.pending.reasons),
            )
        console.print(table)

    _run(main())


@approvals.command("show")
def approvals_show(request_id: str) -> None:
    """Everything an approver needs: proposal, evidence, findings, reasons."""
    from tether.client import Tether

    async def main() -> None:
        status = await (await Tether.connect()).status(request_id)
        console.print_json(json.dumps(status.model_dump(mode="json")))

    _run(main())


def _review(request_id: str, approver: str, verdict: str, reason: str) -> None:
    from tether.client import Tether

    async def main() -> None:
        tether = await Tether.connect()
        try:
            receipt = await tether.review(
                request_id,
                approver=approver,
                verdict="approve" if verdict == "approve" else "reject",
                reason=reason,
            )
        except ReviewRejected as err:
            console.print(f"[red]{err}[/red]")
            raise typer.Exit(1) from None
        console.print(f"{verdict} accepted at tier {receipt.tier}: {receipt.detail}")

    _run(main())


@approvals.command("approve")
def approvals_approve(
    request_id: str,
    approver: str = typer.Option(..., "--as", help="approver identity"),
    reason: str = typer.Option("", help="why"),
) -> None:
    """Approve a pending request (identity and role are checked by the workflow)."""
    _review(request_id, approver, "approve", reason)


@approvals.command("reject")
def approvals_reject(
    request_id: str,
    approver: str = typer.Option(..., "--as", help="approver identity"),
    reason: str = typer.Option(..., help="why (required)"),
) -> None:
    """Reject a pending request; nothing is executed."""
    _review(request_id, approver, "reject", reason)


@approvals.command("edit")
def approvals_edit(
    request_id: str,
    approver: str = typer.Option(..., "--as", help="approver identity"),
    reason: str = typer.Option(..., help="why the change (required; kept as feedback)"),
    answer: str | None = typer.Option(None, help="the answer the requester gets instead"),
    set_: list[str] | None = typer.Option(
        None,
        "--set",
        help="TOOL.ARGUMENT=VALUE on the pending tool call (VALUE as JSON if it parses)",
    ),
) -> None:
    """Approve a changed answer or tool arguments; checked like the model's proposal, and
    against the editor's own limit."""
    from tether.client import Tether

    async def main() -> None:
        tether = await Tether.connect()
        status = await tether.status(request_id)
        if status.pending is None:
            console.print(f"[red]{request_id}: nothing is pending[/red]")
            raise typer.Exit(1)
        calls = [c.model_dump(mode="json") for c in status.pending.proposal.tool_calls]
        for item in set_ or []:
            target, _, raw = item.partition("=")
            tool, _, argument = target.partition(".")
            call = next((c for c in calls if c["tool"] == tool), None)
            if not raw or not argument or call is None:
                console.print(
                    f"[red]--set {item!r}: expected TOOL.ARGUMENT=VALUE for a pending call[/red]"
                )
                raise typer.Exit(2)
            try:
                call["arguments"][argument] = json.loads(raw)
            except ValueError:
                call["arguments"][argument] = raw
        try:
            receipt = await tether.edit(
                request_id,
                approver=approver,
                reason=reason,
                answer=answer,
                tool_calls=calls if set_ else None,
                proposal_version=status.pending.proposal_version,
            )
        except InvalidRequest as err:
            console.print(f"[red]{err}[/red]")
            raise typer.Exit(2) from None
        except ReviewRejected as err:
            console.print(f"[red]{err}[/red]")
            raise typer.Exit(1) from None
        console.print(f"edit accepted at tier {receipt.tier}: {receipt.detail}")

    _run(main())


@app.command("console")
def console_command(
    port: int | None = typer.Option(None, help="default: TETHER_CONSOLE__PORT (8300)"),
) -> None:
    """Serve the web operator console (approval queue, details, approve/reject/edit)."""
    import uvicorn

    from tether.console import create_app

    settings = Settings()
    if not settings.console.tokens and not settings.console.identity_header:
        console.print(
            "[yellow]no TETHER_CONSOLE__TOKENS or TETHER_CONSOLE__IDENTITY_HEADER: nobody can "
            "sign in[/yellow]"
        )
    uvicorn.run(
        create_app(settings),
        host=settings.console.host,
        port=port or settings.console.port,
        log_level="warning",
    )


@app.command("replay")
def replay_command(
    query: str = typer.Option("", help="which executions (Temporal visibility query; all)"),
    limit: int = typer.Option(100, help="at most this many histories"),
) -> None:
    """Replay recent histories from the server against this code; exit 1 on any divergence."""
    from tether import packs
    from tether.client import connect
    from tether.replay import replay_recent
    from tether.workers.main import WORKFLOWS

    packs.load(Settings().domains)  # the workflows decide with the packs' rules

    async def main() -> None:
        report = await replay_recent(await connect(Settings()), WORKFLOWS, query=query, limit=limit)
        for workflow_id, why in report.failures.items():
            console.print(f"[red]{workflow_id}: {why}[/red]")
        console.print(f"replayed {report.replayed}, {len(report.failures)} diverged")
        if report.failures:
            raise typer.Exit(1)

    _run(main())


@app.command("feedback")
def feedback_command(
    request_id: str,
    kind: str = typer.Option(..., help="complaint, reversal, clawback, confirmation or correction"),
    detail: str = typer.Option(..., help="what happened"),
    source: str = typer.Option("cli", help="where it came from"),
) -> None:
    """Attach what happened later to a request's outcome (used by evaluation)."""
    from tether.client import Tether

    async def main() -> None:
        tether = await Tether.connect()
        try:
            await tether.feedback(request_id, kind=kind, detail=detail, source=source)
        except InvalidRequest as err:
            console.print(f"[red]{err}[/red]")
            raise typer.Exit(2) from None
        console.print(f"{kind} attached to {request_id}")

    _run(main())


@evaluation_app.command("run")
def eval_run(
    domain: str | None = typer.Option(None, help="one pack's outcomes (default: every pack's)"),
    since_hours: float = typer.Option(24, help="outcomes finished this recently"),
    sample_rate: float = typer.Option(0.2, help="share of them to score"),
    every: str | None = typer.Option(None, help="also on a Temporal Schedule, e.g. 1h"),
) -> None:
    """Score sampled recent outcomes now (and on a schedule); exit 1 if a budget burns."""
    from tether.client import Tether
    from tether.evaluation import EvaluationConfig, EvaluationInput

    async def main() -> None:
        tether = await Tether.connect()
        inp = EvaluationInput(
            domain=domain,
            since_hours=since_hours,
            config=EvaluationConfig(sample_rate=sample_rate),
            webhook=Settings().alert_webhook,
        )
        report = await tether.evaluate(inp)
        table = Table("scorer", "mean", "budget target", "good", "burn rate")
        budgets = {b.scorer: b for b in report.budgets}
        for name, mean in report.means.items():
            b = budgets.get(name)
            table.add_row(
                name,
                f"{mean:.3f}",
                f"{b.target:.1%}" if b else "",
                f"{b.good_share:.1%}" if b else "",
                f"[red]{b.burn_rate:.1f}x[/red]"
                if b and b.fired
                else f"{b.burn_rate:.1f}x"
                if b
                else "",
            )
        console.print(f"{report.sampled} of {report.outcomes} outcomes scored")
        console.print(table)
        if report.drift is not None and report.drift.fired:
            console.print(f"[red]drift: {', '.join(report.drift.fired)}[/red]")
        if every:
            schedule = await tether.schedule_evaluation(inp, parse_interval(every))
            console.print(f"evaluating every {every} (schedule {schedule})")
        if report.fired:
            raise typer.Exit(1)

    _run(main())


@evaluation_app.command("datasets")
def eval_datasets() -> None:
    """The datasets carved from failure history (each `eval run` refreshes them)."""
    from tether.store import Store

    store = Store(Settings().resolved_store_url())
    table = Table("dataset", "version", "cases", "created")
    for row in store.datasets():
        table.add_row(
            row["name"], str(row["version"]), str(row["cases"]), str(row["created_at"])[:19]
        )
    store.close()
    console.print(table)


@evaluation_app.command("replay")
def eval_replay(
    dataset: str = typer.Option(..., help="escalations, reversals, edits, complaints or slow"),
    candidate: Path = typer.Option(
        ..., help="JSON: name, policy (fields changed), model_queue, retrieve_again"
    ),
    domain: str | None = typer.Option(None, help="whose cases (default: the only pack)"),
    version: int | None = typer.Option(None, help="default: the latest"),
) -> None:
    """Replay a dataset against a candidate in shadow mode (no side effects); what changed."""
    from pydantic import ValidationError

    from tether.client import Tether
    from tether.shadow import Candidate

    try:
        chosen = Candidate.model_validate_json(candidate.read_text())
    except (OSError, ValidationError) as err:
        console.print(f"[red]{candidate}: {err}[/red]")
        raise typer.Exit(2) from None

    async def main() -> None:
        tether = await Tether.connect()
        try:
            report = await tether.shadow(dataset, chosen, domain=domain, version=version)
        except InvalidRequest as err:
            console.print(f"[red]{err}[/red]")
            raise typer.Exit(2) from None
        table = Table("request", "recorded", "candidate", "human", "grounding", "reasons now")
        for case in report.cases:
            if not case.changed:
                continue
            table.add_row(
                case.request_id,
                case.recorded,
                case.candidate,
                case.human or "",
                f"{case.grounding_recorded} -> {case.grounding_candidate}",
                ", ".join(case.candidate_reasons),
            )
        console.print(
            f"{report.dataset} v{report.version} against {report.candidate}: "
            f"{len(report.changed)} of {len(report.cases)} cases decided differently"
        )
        console.print(table)

    _run(main())


@app.command("report")
def report_command(
    domain: str | None = typer.Option(None, help="one pack's outcomes (default: every pack's)"),
    days: float = typer.Option(7, help="outcomes finished this recently"),
    out: Path = typer.Option(Path("tether-report.html"), help="where to write the HTML"),
) -> None:
    """Render outcomes over time (decisions, modes, escalations, quality, latency) as HTML."""
    from datetime import UTC, datetime

    from tether.report import render
    from tether.store import Store

    store = Store(Settings().resolved_store_url())
    now = datetime.now(UTC)
    outcomes = store.outcomes_between(now - timedelta(days=days), now, domain=domain)
    scores = {o.request_id: s for o in outcomes if (s := store.scores(o.request_id))}
    store.close()
    out.write_text(render(outcomes, scores, generated=now), encoding="utf-8")
    console.print(f"{len(outcomes)} outcomes -> {out.resolve()}")


@app.command("drift")
def drift_command(
    domain: str | None = typer.Option(None, help="one pack's outcomes (default: every pack's)"),
    window_hours: int = typer.Option(24, help="the current window, ending now"),
    baseline_days: int = typer.Option(7, help="the baseline: this long before the window"),
    webhook: str | None = typer.Option(
        None, help="POST the report here when a signal fires (default TETHER_ALERT_WEBHOOK)"
    ),
) -> None:
    """Compare the latest outcomes with a baseline (PSI per signal, model fingerprints)."""
    from datetime import UTC, datetime

    from tether.drift import DriftConfig, alert, detect
    from tether.store import Store

    settings = Settings()
    store = Store(settings.resolved_store_url())
    now = datetime.now(UTC)
    start = now - timedelta(hours=window_hours)
    report = detect(
        store.outcomes_between(start - timedelta(days=baseline_days), start, domain=domain),
        store.outcomes_between(start, now, domain=domain),
        DriftConfig(),
    )
    store.close()
    table = Table("signal", "PSI", "fired")
    for metric in report.metrics:
        table.add_row(metric.name, f"{metric.psi:.3f}", "yes" if metric.fired else "")
    console.print(table)
    if report.fingerprints_new:
        console.print(f"new model fingerprints: {', '.join(report.fingerprints_new)}")
    if report.insufficient:
        console.print("too few outcomes in a window to compare distributions")
    alert(report, webhook or settings.alert_webhook)
    if report.fired:
        raise typer.Exit(1)


@app.command("audit")
def audit_command(request_id: str) -> None:
    """What each side effect of a request attempted, why it was allowed, and what changed."""
    from tether.client import Tether

    async def main() -> None:
        tether = await Tether.connect()
        table = Table(
            "step", "attempted", "allowed because", "changed (target system)", show_lines=True
        )
        for e in await tether.audit(request_id):
            attempted = f"{e.tool} {json.dumps(e.arguments)}\nkey {e.idempotency_key}"
            allowed = "\n".join(
                [
                    *e.allowed_because,
                    "permissions: " + ", ".join(e.permissions),
                    f"policy {e.policy_version}",
                ]
            )
            if e.precondition:
                allowed += f"\nprecondition: {e.precondition}"
            if e.approved_by:
                allowed += "\napproved by " + ", ".join(e.approved_by)
            changes = [f"{k}: {v['before']} -> {v['after']}" for k, v in e.changed.items()]
            changes.append(e.postcondition or (e.error or ""))
            if e.replayed:
                changes.append("(answered from the target's idempotency record)")
            if e.unconfirmed_effect:
                changes.append("(failed, but the target holds its effect: undone by the saga)")
            table.add_row(str(e.step), attempted, allowed, "\n".join(changes))
        console.print(table)

    _run(main())


@app.command()
def demo() -> None:
    """Start the embedded stack, ingest the knowledge base, run scripted tickets, stop."""
    from tether.workers.demo import run_demo

    _run(run_demo())


def main() -> None:
    """The `tether` command. Once it has finished, the process leaves without interpreter
    teardown: the Temporal client's Rust threads can abort a short-lived process there
    (temporalio/sdk-python#300), and an operator's script must see the real exit code."""
    code = 0
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
