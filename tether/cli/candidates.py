"""`tether candidate start | status | stop | promote`: a candidate (a stored policy version,
another model queue, or both) beside a domain's live traffic. It reads and writes the store the
workers use (TETHER_STORE_URL); workers read the running candidate with the active policy, so a
start or a stop reaches the next request, never a running one."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from tether.cli.apps import app
from tether.cli.output import JSON, emit, fail, out, problems
from tether.cli.trust import BY, DOMAIN, _pack, _store, _who

candidate = typer.Typer(
    no_args_is_help=True, help="A candidate beside live traffic: decides, never acts."
)
app.add_typer(candidate, name="candidate")


@candidate.command("start")
def candidate_start(
    name: str,
    domain: str | None = DOMAIN,
    policy_version: str | None = typer.Option(
        None, "--policy-version", help="a stored version (tether policy add); default: active"
    ),
    model_queue: str | None = typer.Option(
        None, "--model-queue", help="a queue a worker serves the candidate model on"
    ),
    share: float = typer.Option(..., help="the share of live requests it sees, in (0, 1]"),
    by: str | None = BY,
    as_json: bool = JSON,
) -> None:
    """Run candidate NAME beside the domain's live requests, from the next one."""
    from tether.contracts import LiveCandidate
    from tether.policystore import CandidateRunning, NoSuchVersion

    settings, store = _store()
    pack = _pack(settings, domain)
    try:
        live = LiveCandidate(
            name=name, policy_version=policy_version, model_queue=model_queue, share=share
        )
    except ValidationError as error:
        fail(problems(error))
    for option, given in (("--policy-version", policy_version), ("--model-queue", model_queue)):
        if given is not None and not given.strip():  # "$QUEUE" unset in a script
            fail(f"{option}: empty")
    if policy_version is None and model_queue is None:
        fail("a candidate changes something: --policy-version, --model-queue or both")
    try:
        store.start_candidate(pack.name, live, by=_who(by))
    except (CandidateRunning, NoSuchVersion) as error:
        fail(error, 1)
    if as_json:
        emit(live)
        return
    out.print(
        f"{pack.name}: candidate {name} sees {share:.0%} of new requests "
        f"(policy {policy_version or 'active'}, model queue {model_queue or 'live'}); "
        "it decides beside them and acts on nothing",
        style="green",
    )


@candidate.command("status")
def candidate_status(
    domain: str | None = DOMAIN,
    name: str | None = typer.Option(None, help="an earlier candidate (default: the running one)"),
    as_json: bool = JSON,
) -> None:
    """How far the candidate agrees with live decisions and with what people did."""
    from tether.candidates import status
    from tether.store import Store

    settings, policies = _store()
    pack = _pack(settings, domain)
    runs = policies.candidate_runs(pack.name)
    chosen = [r for r in runs if (r["name"] == name if name else r["stopped_at"] is None)]
    if not chosen:
        fail(f"{pack.name} runs no candidate" + (f" named {name}" if name else ""), 1)
    run = chosen[-1]
    store = Store(settings.resolved_store_url())
    shadows = store.shadow_decisions(pack.name, run["name"])
    outcomes = {s.request_id: o for s in shadows if (o := store.outcome(s.request_id))}
    later = {rid: store.heard(rid) for rid in outcomes}
    report = status(pack.name, run["candidate"], shadows, outcomes, later)
    store.close()
    if as_json:
        emit({**report.model_dump(mode="json"), "run": _run_record(run)})
        return
    out.print(
        f"{pack.name} candidate {run['name']} "
        f"({'running' if run['stopped_at'] is None else run['outcome']}, started "
        f"{run['started_at']:%Y-%m-%d %H:%M} by {run['started_by']})"
    )
    out.print(f"  shadowed {report.shadowed}, with a live outcome {report.compared}")
    out.print(f"  agrees with live: {_share(report.agree_live, report.compared)}")
    out.print(f"  agrees with people: {_share(report.agree_people, report.judged)}")
    out.print(f"  candidate decided: {_counts(report.candidate_actions)}")
    out.print(f"  live decided:      {_counts(report.live_actions)}")
    for d in report.disagreements:
        said = f", people: {d.people}" if d.people else ""
        reasons = ",".join(d.candidate_reasons)
        out.print(f"  {d.request_id}: live {d.live}, candidate {d.candidate}{said} ({reasons})")


@candidate.command("stop")
def candidate_stop(domain: str | None = DOMAIN, by: str | None = BY) -> None:
    """Stop shadowing new requests; shadow runs already started finish and are kept."""
    from tether.policystore import NoCandidate

    settings, store = _store()
    pack = _pack(settings, domain)
    try:
        stopped = store.stop_candidate(pack.name, by=_who(by))
    except NoCandidate as error:
        fail(error, 1)
    out.print(f"{pack.name}: candidate {stopped.name} stopped", style="green")


@candidate.command("promote")
def candidate_promote(
    domain: str | None = DOMAIN,
    reason: str = typer.Option(..., help="why (kept in the activation log)"),
    by: str | None = BY,
    as_json: bool = JSON,
) -> None:
    """Activate the running candidate's policy version (the audited `tether policy activate`
    path) and stop the candidate. A model queue is the deployment's to change."""
    from tether.policystore import NoCandidate

    settings, store = _store()
    pack = _pack(settings, domain)
    if not reason.strip():
        fail("--reason: say why")
    running = store.candidate(pack.name)
    if running is None:
        fail(NoCandidate(f"{pack.name} runs no candidate"), 1)
    who = _who(by)
    activation = None
    if running.policy_version is not None:
        activation = store.activate(
            pack.name,
            running.policy_version,
            by=who,
            reason=f"promoted candidate {running.name}: {reason}",
        )
    store.stop_candidate(pack.name, by=who, outcome="promoted")
    if as_json:
        emit(
            {
                "candidate": running.model_dump(mode="json"),
                "activation": activation and activation.model_dump(mode="json"),
            }
        )
        return
    if activation is not None:
        out.print(
            f"{pack.name} policy {activation.version} active (was {activation.previous}); "
            f"candidate {running.name} promoted",
            style="green",
        )
    if running.model_queue is not None:
        out.print(
            f"the candidate's model serves {running.model_queue}: point the deployment's "
            f"TETHER_MODEL_QUEUE there to make it the live model"
        )


def _run_record(run: dict[str, object]) -> dict[str, object]:
    return {
        k: (str(v) if v is not None and k.endswith("_at") else v)
        for k, v in run.items()
        if k != "candidate"
    }


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.0%})" if whole else "nothing to compare yet"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
