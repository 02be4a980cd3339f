"""`tether overlay status | set | clear`: the conservative overlay (tether/overlay.py) a domain,
or one intent of it, runs under: writes wait for a person. Evaluation runs switch it on when a
quality budget burns fast and off once it has recovered; a person may set or clear it here.
It reads and writes the store the workers use (TETHER_STORE_URL); every switch is kept, with
who, when and why. Workers read it at each decision, so a change reaches the next decision."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from tether.cli.apps import app
from tether.cli.output import JSON, dump, emit, fail, kept_text, out
from tether.config import Settings
from tether.contracts import DOMAIN
from tether.overlay import Overlay

if TYPE_CHECKING:
    from tether.store import Store

overlay = typer.Typer(
    no_args_is_help=True, help="The conservative overlay: writes wait for a person."
)
app.add_typer(overlay, name="overlay")

SCOPE_DOMAIN = typer.Option(..., "--domain", help="the domain")
INTENT = typer.Option(None, "--intent", help="one intent of it (default: the whole domain)")
WHO = typer.Option(..., "--by", help="who does this (kept with the switch)")
WHY = typer.Option(..., "--reason", help="why (kept with the switch)")


# Control, format (direction overrides, zero-width) and surrogate characters: what a terminal
# shows of them is not what they are, and a lone surrogate cannot be stored.
def _scope(domain: str, intent: str | None) -> tuple[str, str | None]:
    if not re.fullmatch(DOMAIN, domain):
        fail(f"--domain: {domain!r} is not a domain name")
    if intent is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}", intent):
        fail(f"--intent: {intent!r} is not an intent name")
    return domain, intent


def _store() -> Store:
    """The store the workers use (TETHER_STORE_URL, or the data directory's)."""
    from tether.store import Store

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Store(settings.resolved_store_url())


def _person(by: str) -> str:
    who = kept_text("--by", by, 200, lines=False)
    if who.lower() == "tether":
        fail("--by: 'tether' names the runtime's own switches; name yourself")
    return who


@overlay.command("status")
def overlay_status(
    domain: str | None = typer.Option(None, "--domain", help="one domain (default: all)"),
    every: bool = typer.Option(False, "--all", help="cleared ones too: the whole record"),
    as_json: bool = JSON,
) -> None:
    """The overlays on now (with --all, every switch ever made); exit 1 if any is on."""
    store = _store()
    found = store.overlays(domain, active=not every)
    store.close()
    if as_json:
        emit(dump(list(found)))
    elif not found:
        out.print("no overlay on" + (f" in {domain}" if domain else ""))
    else:
        for o in found:
            _show(o)
    if any(o.active for o in found):
        raise typer.Exit(1)


def _show(o: Overlay) -> None:
    since = f"{o.set_at:%Y-%m-%d %H:%M:%S}"
    if o.cleared_at is None:
        out.print(f"{o.scope}: on since {since} UTC, set by {o.set_by}")
    else:
        out.print(
            f"{o.scope}: off, was on {since} to {o.cleared_at:%H:%M:%S} UTC, set by {o.set_by}"
        )
    out.print(f"  why: {o.reason}")
    if o.evidence is not None:
        burns = ", ".join(
            f"{b.scorer} {b.burn_rate:g}x/{b.threshold:g}x" for b in o.evidence.budgets
        )
        span = f"{o.evidence.since:%H:%M:%S} to {o.evidence.until:%H:%M:%S} UTC"
        out.print(f"  evidence: {burns} ({span})")
    if o.cleared_at is not None:
        out.print(
            f"  cleared {o.cleared_at:%Y-%m-%d %H:%M:%S} UTC by {o.cleared_by}: {o.clear_reason}"
        )


@overlay.command("set")
def overlay_set(
    domain: str = SCOPE_DOMAIN,
    intent: str | None = INTENT,
    by: str = WHO,
    reason: str = WHY,
    as_json: bool = JSON,
) -> None:
    """Switch the overlay on by hand; it stays on until a person clears it."""
    from tether import packs

    domain, intent = _scope(domain, intent)
    served = {p.name: p for p in packs.load(Settings().domains)}
    if domain not in served:  # it would protect nothing, and `status` would say on forever
        fail(f"--domain: {domain!r} is not a pack served here ({', '.join(sorted(served))})")
    if intent is not None and intent not in served[domain].intents:
        fail(f"--intent: {intent!r} is not one of {domain}'s ({', '.join(served[domain].intents)})")
    who, why = _person(by), kept_text("--reason", reason, 2000, lines=True)
    store = _store()
    made = store.set_overlay(domain, intent, by=who, reason=why, at=datetime.now(UTC))
    store.close()
    if made is None:
        fail(f"{domain if intent is None else f'{domain}/{intent}'}: the overlay is on already", 1)
    if as_json:
        emit(made)
        return
    out.print(f"{made.scope}: conservative overlay on; writes wait for a person", style="green")


@overlay.command("clear")
def overlay_clear(
    domain: str = SCOPE_DOMAIN,
    intent: str | None = INTENT,
    by: str = WHO,
    reason: str = WHY,
    as_json: bool = JSON,
) -> None:
    """Switch the overlay of the domain (or of --intent) off: writes may go on their own again
    where policy allows. Kept: who, when, why."""
    from tether.overlay import scope

    domain, intent = _scope(domain, intent)
    who, why = _person(by), kept_text("--reason", reason, 2000, lines=True)
    store = _store()
    on = next((o for o in store.overlays(domain) if o.scope == scope(domain, intent)), None)
    done = on and store.clear_overlay(on.id, by=who, reason=why, at=datetime.now(UTC))
    store.close()
    if done is None:
        fail(f"{scope(domain, intent)}: no overlay on", 1)
    if as_json:
        emit(done)
        return
    out.print(f"{done.scope}: conservative overlay off, cleared by {who}", style="green")
