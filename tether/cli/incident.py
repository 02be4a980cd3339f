"""`tether incident`: what happened lately, as one timeline (tether/incident.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import typer

from tether.cli.apps import app
from tether.cli.output import JSON, emit, err, fail, store_url
from tether.errors import ConfigurationError
from tether.incident import KINDS, Kind, line, moment, stamp, timeline

KIND_HELP = f"only these kinds (repeat it): {', '.join(KINDS)}"


@app.command("incident")
def incident_command(
    since: str = typer.Option(
        "2h", help="from: a duration ago (90s, 30m, 2h, 1d) or an ISO 8601 time (UTC)"
    ),
    until: str | None = typer.Option(None, help="to (default now), in the same forms"),
    domain: str | None = typer.Option(
        None, help="one pack's events, with those of every domain (default every pack's)"
    ),
    kind: list[str] = typer.Option([], "--kind", help=KIND_HELP),
    as_json: bool = JSON,
) -> None:
    """The incident timeline, sorted by time (UTC): outcomes, mode switches, model fingerprint
    changes, policy activations, circuit moves, budgets burning, drift alarms and conservative
    overlay switches. One line per event, tab-separated: time, kind, domain ("-": every
    domain's), summary."""
    from tether.policystore import PolicyStore
    from tether.store import Store

    now = datetime.now(UTC)
    try:
        start = moment(since, now)
        end = moment(until, now, option="--until") if until is not None else now
    except ValueError as error:
        fail(error)
    if start >= end:
        fail(f"--since {since!r} is not before --until ({stamp(start)} >= {stamp(end)})")
    unknown = [k for k in kind if k not in KINDS]
    if unknown:
        fail(f"--kind {unknown[0]!r}: expected one of {', '.join(KINDS)}")
    kinds: set[Kind] | None = {k for k in KINDS if k in kind} or None

    url = store_url()
    try:
        store = Store(url)
        policies = PolicyStore(url)  # activations live beside the outcomes
    except ConfigurationError as error:
        fail(error)
    try:
        outcomes = store.outcomes_between(start, end, domain=domain)
        before = store.latest_before(start, domain=domain)
        recorded = store.events_between(start, end, domain=domain)
        overlays = store.overlays(domain, active=False, cleared_since=start)
        seen = {o.domain for o in [*outcomes, *before]} | {e.domain for e in recorded}
        domains = sorted({d for d in seen if d} | ({domain} if domain else set()))
        activations = [a for d in domains for a in policies.activations(d)]
    finally:
        store.close()
        policies.close()
    events = timeline(
        outcomes,
        since=start,
        until=end,
        before=before,
        recorded=recorded,
        activations=activations,
        overlays=overlays,
        kinds=kinds,
        domain=domain,
    )
    if as_json:
        emit([e.model_dump(mode="json") for e in events])
        return
    for event in events:
        sys.stdout.write(line(event) + "\n")
    if not events:
        err.print(f"no events from {stamp(start)} to {stamp(end)}", soft_wrap=True)
