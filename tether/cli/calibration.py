"""`tether calibrate`: per-intent thresholds fitted from what people did with past outcomes
(tether/calibration.py), stored as a policy version that is only a proposal: activating it
stays a person's step (`tether policy activate`, on the record)."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta

import typer

from tether.calibration import Calibration, IntentFit, Interval
from tether.cli.apps import app
from tether.cli.output import JSON, LONGEST, emit, fail, out, within
from tether.cli.trust import BY, DOMAIN, _pack, _store, _who


def shown(text: str) -> str:
    """``text`` with every character a terminal could act on spelled out (``\\x1b``)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _interval(i: Interval, spec: str) -> str:
    return f"{i.estimate:{spec}} [{i.low:{spec}}, {i.high:{spec}}]"


def _pair(confidence: float, grounding: float) -> str:
    return f"confidence {confidence:.2f}, grounding {grounding:.2f}"


def _intent(fit: IntentFit, domain: str) -> list[str]:
    name, now = shown(fit.intent), fit.current
    if fit.status == "unknown":
        head = f"{name}: not one of {domain}'s intents: no thresholds proposed"
    elif fit.status == "proposed":
        head = (
            f"{name}: proposed {_pair(fit.thresholds.confidence, fit.thresholds.grounding)} "
            f"(now {now.confidence:.2f}, {now.grounding:.2f})"
        )
    else:
        head = f"{name}: kept {_pair(now.confidence, now.grounding)}: {fit.note}"
    lines = [head]
    if fit.precision is not None:
        was = fit.precision_now
        now_p = f" (now {_interval(was, '.3f')})" if was and fit.status == "proposed" else ""
        lines.append(
            f"  precision {_interval(fit.precision, '.3f')} over them: {fit.above:,} of "
            f"{fit.labelled:,} labelled outcomes{now_p}"
        )
    lines.append(
        f"  automatic {_interval(fit.automation, '.1%')} of {fit.traffic:,} requests "
        f"(now {fit.automation_now:.1%})"
    )
    lines.append(
        f"  to a person {_interval(fit.escalations, '.1f')} a day (now {fit.escalations_now:.1f})"
    )
    return lines


def describe(report: Calibration) -> list[str]:
    """The calibration in lines of plain text, every intent name escaped."""
    since = f"{report.since:%Y-%m-%d %H:%M}" if report.since else "-"
    lines = [
        f"{report.domain}: {report.outcomes:,} outcomes from {since} to "
        f"{report.until:%Y-%m-%d %H:%M} UTC ({report.days:.1f} days), {report.labelled:,} "
        f"labelled; policy {report.policy_version}; target precision {report.target} "
        f"(lower end of its {report.level:.0%} interval)"
    ]
    if report.disputed:
        lines.append(
            f"  {report.disputed:,} outcomes fitted under no intent: the verifier read their "
            "request as another intent than the proposal named, or could not read it"
        )
    for fit in report.intents:
        lines += _intent(fit, report.domain)
    return lines


@app.command("calibrate")
def calibrate_command(
    target_precision: float = typer.Option(
        ..., help="the precision automatic decisions must keep, e.g. 0.98"
    ),
    domain: str | None = DOMAIN,
    days: float = typer.Option(30, help="outcomes finished this recently"),
    level: float = typer.Option(0.95, help="the confidence level of the intervals"),
    min_labelled: int = typer.Option(30, help="labelled outcomes over a pair, at the least"),
    settle_hours: float = typer.Option(
        72, help="an automatic outcome counts as good after this long without bad news"
    ),
    version: str | None = typer.Option(None, help="the proposal's name (default: from it)"),
    by: str | None = BY,
    dry_run: bool = typer.Option(False, "--dry-run", help="fit and print; store nothing"),
    as_json: bool = JSON,
) -> None:
    """Fit each intent's confidence and grounding thresholds to TARGET_PRECISION from the
    outcomes people judged; store them as a policy version, never activated."""
    from pydantic import ValidationError

    from tether import calibration
    from tether.errors import ConfigurationError
    from tether.policystore import PolicyConflict, checked
    from tether.store import Store

    if days <= 0 or min_labelled < 1 or settle_hours < 0:
        fail("--days and --min-labelled: above 0; --settle-hours: 0 or more")
    within(days, "--days", LONGEST.days)
    within(settle_hours, "--settle-hours", LONGEST.days * 24, low=-1)
    settings, policies = _store()
    pack = _pack(settings, domain)
    active = policies.active(pack.name)
    if active is None:
        fail(f"no {pack.name} policy is active yet: a worker registers one at start", 1)
    now = datetime.now(UTC)
    store = Store(settings.resolved_store_url())
    outcomes = store.outcomes_between(now - timedelta(days=days), now, domain=pack.name)
    try:
        report = calibration.calibrate(
            outcomes,
            store.heard,
            active.policy,
            domain=pack.name,
            intents=pack.intents,
            target=target_precision,
            now=now,
            level=level,
            min_labelled=min_labelled,
            settle=timedelta(hours=settle_hours),
        )
    except ValueError as error:
        fail(error)
    except calibration.TooFewLabels as error:
        fail(error, 1)
    finally:
        store.close()
    try:
        proposed = calibration.proposal(active.policy, report, version=version)
    except ValidationError as error:
        fail(f"--version {version!r}: {error.errors()[0]['msg']}")
    stored, existed = None, False
    if proposed is not None and not dry_run:
        existed = any(v.version == proposed.version for v in policies.versions(pack.name))
        try:
            stored = policies.add(
                pack.name,
                checked(pack, proposed),
                by=_who(by),
                note=calibration.summary(report),
            )
        except (ConfigurationError, PolicyConflict) as error:
            fail(error)
    activate = (
        f"tether policy activate {shlex.quote(stored.version)} --domain {pack.name} --reason '…'"
        if stored
        else None
    )
    if as_json:
        current = policies.active_activation(pack.name)
        emit(
            {
                "calibration": report.model_dump(mode="json"),
                "proposal": None
                if proposed is None
                else {
                    "version": proposed.version,
                    "stored": stored is not None,
                    "new": stored is not None and not existed,
                    "sha256": stored.sha256 if stored else None,
                    "active": current is not None and current.version == proposed.version,
                    "activate": activate,
                },
            }
        )
        return
    for line in describe(report):
        out.print(line, soft_wrap=True, emoji=False)  # an intent named :x: stays as written
    if proposed is None:
        out.print(f"nothing to propose: {pack.name} policy {active.version} has these thresholds")
    elif stored is None:
        out.print(f"would propose {pack.name} policy {proposed.version} (--dry-run: not stored)")
    else:
        again = " (stored already: the same data proposed it before)" if existed else ""
        out.print(f"proposed as {pack.name} policy {stored.version}, not active{again}")
        out.print(f"activate: {activate}")
