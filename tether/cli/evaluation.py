"""Commands about quality: live evaluation, datasets and shadow replays, drift, the report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from tether.cli.apps import app, evaluation
from tether.cli.output import (
    JSON,
    LONGEST,
    emit,
    fail,
    out,
    parse_interval,
    problems,
    run,
    store_url,
    within,
)
from tether.config import Settings
from tether.errors import InvalidRequest

DOMAIN = typer.Option(None, help="one pack's outcomes (default: every pack's)")


@evaluation.command("run")
def eval_run(
    domain: str | None = DOMAIN,
    since_hours: float = typer.Option(24, help="outcomes finished this recently"),
    sample_rate: float = typer.Option(0.2, help="share of them to score"),
    every: str | None = typer.Option(None, help="also on a Temporal Schedule, e.g. 1h"),
    as_json: bool = JSON,
) -> None:
    """Score sampled recent outcomes now (and on a schedule); exit 1 if a budget burns."""
    from tether.client import Tether
    from tether.evaluation import EvaluationConfig, EvaluationInput

    interval = parse_interval(every) if every else None
    within(since_hours, "--since-hours", LONGEST.days * 24)
    try:  # before connecting: a bad option is the input's fault whether or not a server is up
        inp = EvaluationInput(
            domain=domain,
            since_hours=since_hours,
            config=EvaluationConfig(sample_rate=sample_rate),
            webhook=Settings().alert_webhook,
        )
    except ValidationError as error:
        fail(problems(error))

    async def main() -> None:
        tether = await Tether.connect()
        report = await tether.evaluate(inp)
        schedule = await tether.schedule_evaluation(inp, interval) if interval else None
        if as_json:
            emit({**report.model_dump(mode="json"), "fired": report.fired, "schedule": schedule})
        else:
            table = Table("scorer", "mean", "budget target", "good", "burn rate", "fast burn")
            budgets = {b.scorer: b for b in report.budgets}
            for name, mean in report.means.items():
                b = budgets.get(name)
                burn = f"{b.burn_rate:.1f}x{' (burning)' if b.slow_fired else ''}" if b else ""
                fast = ""
                if b is not None and b.fast_burn_rate is not None:
                    fast = f"{b.fast_burn_rate:.1f}x{' (burning)' if b.fast_fired else ''}"
                table.add_row(
                    name,
                    f"{mean:.3f}",
                    f"{b.target:.1%}" if b else "",
                    f"{b.good_share:.1%}" if b else "",
                    burn,
                    fast,
                )
            out.print(f"{report.sampled} of {report.outcomes} outcomes scored")
            out.print(table)
            if report.drift is not None and report.drift.fired:
                out.print(f"drift: {', '.join(report.drift.fired)}", style="red")
            for switch in report.overlays:
                o = switch.overlay
                if switch.on:
                    out.print(f"conservative overlay on: {o.scope}: {o.reason}", style="red")
                else:
                    out.print(f"conservative overlay off: {o.scope}: {o.clear_reason}")
            if schedule:
                out.print(f"evaluating every {every} (schedule {schedule})")
        if report.fired:
            raise typer.Exit(1)

    run(main())


@evaluation.command("schedule")
def eval_schedule(
    every: str | None = typer.Option(
        None, help="how often, e.g. 5m (default: TETHER_EVALUATION_EVERY, 5m)"
    ),
    keep: bool = typer.Option(
        False, "--keep", help="leave a schedule that exists as it is (what `tether up` does)"
    ),
    as_json: bool = JSON,
) -> None:
    """Evaluate live traffic on a Temporal Schedule, every domain's, without running it now:
    what switches self-protection on and off by itself. `tether up` makes it at each start;
    a deployment without it (the compose bundle) runs this once. On a schedule that exists
    it changes the interval alone (unless --keep): what it runs, its webhook among them,
    stays; `tether eval run --every` replaces both."""
    from tether.client import Tether
    from tether.evaluation import EvaluationInput

    settings = Settings()
    interval = parse_interval(every) if every else settings.evaluation_every
    if interval is None and keep:  # evaluation turned off where the bundle runs this
        out.print("TETHER_EVALUATION_EVERY is 0: no schedule made")
        return
    if interval is None:
        fail("TETHER_EVALUATION_EVERY is 0 (no schedule): pass --every to make one anyway")
    inp = EvaluationInput(webhook=settings.alert_webhook)

    async def main() -> None:
        assert interval is not None
        tether = await Tether.connect()
        # One that exists keeps what it runs (its webhook among them): only its interval
        # changes here (`tether eval run --every` replaces both).
        schedule = await tether.schedule_evaluation(
            inp, interval, replace=not keep, interval_only=True
        )
        described = await tether.client.get_schedule_handle(schedule).describe()
        now = [i.every for i in described.schedule.spec.intervals]
        if as_json:
            emit({"schedule": schedule, "every_seconds": [i.total_seconds() for i in now]})
        else:
            out.print(f"evaluating every {', '.join(map(str, now))} (schedule {schedule})")

    run(main())


@evaluation.command("datasets")
def eval_datasets(as_json: bool = JSON) -> None:
    """The datasets carved from failure history (each `eval run` refreshes them)."""
    from tether.store import Store

    store = Store(store_url())
    rows = store.datasets()
    store.close()
    if as_json:
        emit([{**r, "created_at": str(r["created_at"])} for r in rows])
        return
    table = Table("dataset", "version", "cases", "created")
    for row in rows:
        table.add_row(
            row["name"], str(row["version"]), str(row["cases"]), str(row["created_at"])[:19]
        )
    out.print(table)


@evaluation.command("replay")
def eval_replay(
    dataset: str = typer.Option(..., help="escalations, reversals, edits, complaints or slow"),
    candidate: Path = typer.Option(
        ...,
        help="JSON: name, policy_version (stored: tether policy add), model_queue, retrieve_again",
    ),
    domain: str | None = typer.Option(None, help="whose cases (default: the only pack)"),
    version: int | None = typer.Option(None, help="default: the latest"),
    as_json: bool = JSON,
) -> None:
    """Replay a dataset against a candidate in shadow mode (no side effects); what changed."""
    from tether.client import Tether
    from tether.shadow import Candidate

    try:
        chosen = Candidate.model_validate_json(candidate.read_text())
    except UnicodeDecodeError:
        fail(f"{candidate}: not UTF-8 text")
    except ValidationError as error:
        fail(f"{candidate}: {problems(error)}")
    except OSError as error:
        fail(f"{candidate}: {error}")

    async def main() -> None:
        tether = await Tether.connect()
        try:
            report = await tether.shadow(dataset, chosen, domain=domain, version=version)
        except InvalidRequest as error:
            fail(error)
        if as_json:
            emit({**report.model_dump(mode="json"), "changed": report.changed})
            return
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
        out.print(
            f"{report.dataset} v{report.version} against {report.candidate}: "
            f"{len(report.changed)} of {len(report.cases)} cases decided differently"
        )
        out.print(table)

    run(main())


@app.command("report")
def report_command(
    domain: str | None = DOMAIN,
    days: float = typer.Option(7, help="outcomes finished this recently"),
    out_file: Path = typer.Option(
        Path("tether-report.html"), "--out", help="where to write the HTML"
    ),
) -> None:
    """Render outcomes over time (decisions, modes, escalations, quality, latency) as HTML,
    marking mode switches and policy activations, with the incident timeline's events."""
    from tether.incident import overlay_events
    from tether.policystore import PolicyStore
    from tether.report import render
    from tether.store import Store

    within(days, "--days", LONGEST.days)
    url = store_url()
    store = Store(url)
    now = datetime.now(UTC)
    start = now - timedelta(days=days)
    outcomes = store.outcomes_between(start, now, domain=domain)
    scores = {o.request_id: s for o in outcomes if (s := store.scores(o.request_id))}
    events = store.events_between(start, now, domain=domain)
    overlays = store.overlays(domain, active=False, cleared_since=start)
    events += [e for o in overlays for e in overlay_events(o) if e.at >= start]
    store.close()
    policies = PolicyStore(url)  # activations live beside the outcomes
    domains = sorted({domain} if domain else {o.domain for o in outcomes})
    activations = [a for d in domains for a in policies.activations(d)]
    policies.close()
    title = f"Tether report ({domain})" if domain else "Tether report"
    page = render(
        outcomes, scores, generated=now, activations=activations, events=events, title=title
    )
    try:
        out_file.write_text(page, encoding="utf-8")
    except OSError as error:
        fail(f"--out {out_file}: {error}")
    out.print(f"{len(outcomes)} outcomes -> {out_file.resolve()}")


@app.command("drift")
def drift_command(
    domain: str | None = DOMAIN,
    window_hours: int = typer.Option(24, help="the current window, ending now"),
    baseline_days: int = typer.Option(7, help="the baseline: this long before the window"),
    webhook: str | None = typer.Option(
        None, help="POST the report here when a signal fires (default TETHER_ALERT_WEBHOOK)"
    ),
    as_json: bool = JSON,
) -> None:
    """Compare the latest outcomes with a baseline (PSI per signal, model fingerprints)."""
    from tether.drift import DriftConfig, alert, detect
    from tether.store import Store

    within(window_hours, "--window-hours", LONGEST.days * 24)
    within(baseline_days, "--baseline-days", LONGEST.days)
    settings = Settings()
    store = Store(store_url(settings))
    now = datetime.now(UTC)
    start = now - timedelta(hours=window_hours)
    report = detect(
        store.outcomes_between(start - timedelta(days=baseline_days), start, domain=domain),
        store.outcomes_between(start, now, domain=domain),
        DriftConfig(),
    )
    store.close()
    alert(report, webhook or settings.alert_webhook)
    if as_json:
        emit({**report.model_dump(mode="json"), "fired": report.fired})
    else:
        table = Table("signal", "PSI", "fired")
        for metric in report.metrics:
            table.add_row(metric.name, f"{metric.psi:.3f}", "yes" if metric.fired else "")
        out.print(table)
        if report.fingerprints_new:
            out.print(f"new model fingerprints: {', '.join(report.fingerprints_new)}")
        if report.insufficient:
            out.print("too few outcomes in a window to compare distributions")
    if report.fired:
        raise typer.Exit(1)
