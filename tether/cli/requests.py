"""Commands about requests: ask, the approval queue (list, show, approve, reject, edit), the
audit of what was done, and feedback heard later."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shlex
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError
from rich.table import Table
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from tether.audit import settled_by
from tether.cli.apps import app, approvals
from tether.cli.output import JSON, dump, emit, err, fail, kept_text, out, run
from tether.config import Settings
from tether.contracts import (
    Outcome,
    PendingApproval,
    Review,
    ReviewReceipt,
    Stage,
    WorkflowStatus,
)
from tether.errors import FeedbackRefused, InvalidRequest, RequestConflict, ReviewRejected
from tether.signing import KeyFileError, SigningKey, keyring, proposal_digest
from tether.text import hidden

if TYPE_CHECKING:
    from tether.client import Tether


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
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="wait for the outcome, or return once it has started"
    ),
    as_json: bool = JSON,
) -> None:
    """Start a request and print its outcome (or, with --no-wait, where to follow it)."""
    from tether.client import Tether, started_now

    if request_id is not None and not request_id.strip():
        fail("--request-id: empty (leave it out for a new id)")
    references: dict[str, list[str]] = {}
    for item in ref or []:
        kind, _, ident = item.partition("=")
        if not kind or not ident:
            fail(f"--ref {item!r}: expected KIND=ID")
        references.setdefault(kind, []).append(ident)

    async def main() -> None:
        tether = await Tether.connect()
        rid = request_id if request_id is not None else f"cli-{uuid.uuid4().hex[:10]}"
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
        except InvalidRequest as error:
            fail(error)
        except RequestConflict as error:
            fail(error, 1)
        new = started_now(handle)
        started = {
            "request_id": rid,
            "workflow_id": handle.id,
            "ui": tether.ui_link(rid),
            # false: this request was already there (same id, same request); null: unknown
            "started": new,
        }
        # The request id first: what `tether approvals` and `tether audit` take.
        verb = "attached to request" if new is False else "started request"
        said = f"{verb} {rid} (workflow {handle.id}): {started['ui']}"
        if not wait:
            emit(started) if as_json else out.print(said)
            return
        if not as_json:
            out.print(said)
        outcome = await _awaited(tether, rid, handle)
        emit(outcome) if as_json else show_outcome(outcome)

    run(main())


async def _awaited(tether: Tether, rid: str, handle: WorkflowHandle[Any, Outcome]) -> Outcome:
    """The outcome; if the request goes to a person meanwhile, a line on stderr says who
    decides by when, and how to look at it, instead of a silent wait."""
    result = asyncio.ensure_future(handle.result())
    pause = 1.0
    while not result.done():
        await asyncio.wait({result}, timeout=pause)
        pause = min(pause * 1.5, 10.0)  # a slow model is not asked after every second
        if result.done():
            break
        try:
            pending = (await tether.status(rid)).pending
        except Exception:  # a status this CLI cannot read: no hint, the same wait
            continue
        if pending is not None:
            err.print(
                f"waiting for a person: tier {pending.tier_name} ({pending.role}) decides by "
                f"{pending.deadline.isoformat(timespec='seconds')}; tether approvals show {rid}",
                soft_wrap=True,  # one line, whatever the terminal's width
            )
            break
    return await result


def show_outcome(outcome: Outcome) -> None:
    """An outcome for a person: what was decided and why, the answer, what was done."""
    decision = outcome.decision
    grid = Table.grid(padding=(0, 2))
    grid.add_row("decision", f"{decision.action.value} ({', '.join(decision.codes())})")
    settled = settled_by(outcome)
    if settled:
        grid.add_row("then", settled)
    grid.add_row("mode", outcome.mode.value)
    grid.add_row("intent", outcome.intent or "")
    grid.add_row("answer", outcome.answer)
    actions = [
        f"{a.tool} {'ok' if a.ok else 'FAILED: ' + (a.error or '')}" for a in outcome.actions
    ]
    grid.add_row("actions", "\n".join(actions) or "none")
    if outcome.followup_required:
        grid.add_row("follow-up", "queued for a person")
    out.print(grid)


@approvals.command("list")
def approvals_list(
    queue: str | None = typer.Option(None, help="approval tier, by name"),
    intent: str | None = typer.Option(None, help="an intent of the pack"),
    mode: str | None = typer.Option(None, help="e.g. human_draft, read_only"),
    domain: str | None = typer.Option(
        None, help="one pack's requests only (default: TETHER_DEFAULT_DOMAIN, else every pack's)"
    ),
    limit: int | None = typer.Option(
        None, min=1, max=1000, help="one page of this many (the next page: --after)"
    ),
    after: str | None = typer.Option(None, help="the page token a --limit listing printed"),
    as_json: bool = JSON,
) -> None:
    """Requests waiting for approval (filtered through search attributes). With --limit, one
    page: --json then prints {"approvals": [...], "next_page": token or null}."""
    from tether.client import Tether

    try:  # before anything connects
        start = base64.urlsafe_b64decode(after) if after else None
    except ValueError as error:  # binascii.Error, or text that is not ASCII
        fail(f"--after: not a token this command printed ({error})")

    async def main() -> None:
        tether = await Tether.connect()
        named = domain or tether.settings.default_domain
        filters = {"queue": queue, "intent": intent, "mode": mode, "domain": named}
        token: bytes | None = None
        try:
            if limit is None and after is None:
                waiting = await tether.pending(**filters)
            else:
                waiting, token = await tether.pending_page(
                    **filters, page_size=limit or 100, next_page_token=start
                )
        except InvalidRequest as error:
            fail(error)
        except RPCError as error:  # a token the server cannot read
            fail(f"--after: {error.message}")
        following = base64.urlsafe_b64encode(token).decode() if token else None
        if as_json:
            if limit is None and after is None:
                emit(dump(list(waiting)))
            else:
                emit({"approvals": dump(list(waiting)), "next_page": following})
            return
        same = "".join(f" --{name} {shlex.quote(v)}" for name, v in filters.items() if v)
        if not waiting and not following:  # not an empty table: say what was looked for
            out.print(f"nothing waiting{' for' + same if same else ''}")
            return
        table = Table("request", "domain", "tier", "role", "deadline", "intent", "reasons")
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
        out.print(table)
        if following:  # the same filters: a page token is only good for the query it came from
            out.print(
                f"more: tether approvals list{same} --limit {limit or 100} --after {following}",
                soft_wrap=True,  # one line to copy, whatever the terminal's width
            )

    run(main())


@approvals.command("show")
def approvals_show(request_id: str, as_json: bool = JSON) -> None:
    """Everything an approver needs: proposal, evidence, findings, reasons."""
    from tether.client import Tether

    async def main() -> None:
        status = await (await Tether.connect()).status(request_id)
        shown = status.model_dump(mode="json")
        if status.pending is not None:  # what `approve --proposal` names: this, and no other
            shown["proposal_sha256"] = proposal_digest(status.pending.proposal)
        emit(shown) if as_json else show_status(status, shown.get("proposal_sha256"))

    run(main())


def show_status(status: WorkflowStatus, digest: str | None) -> None:
    """A request as an approver reads it: the ticket, why it waits and for whom, the proposal
    and what the verifier found in it, the sources it cites, the verdicts so far; then the
    command that approves this proposal and no other (--json: every field)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_row("request", f"{status.request_id} ({status.domain}): {status.stage.value}")
    if status.request is not None:
        grid.add_row("from", f"{status.request.requester}, about {status.request.subject}")
        grid.add_row("ticket", status.request.text)
    pending = status.pending
    if pending is None:
        decision = status.decision
        grid.add_row("pending", "nothing: no person is asked now")
        if decision is not None:
            grid.add_row("decision", f"{decision.action.value} ({', '.join(decision.codes())})")
    else:
        proposal = pending.proposal
        grid.add_row(
            "waiting for",
            f"tier {pending.tier_name} ({pending.role}), by "
            f"{pending.deadline.isoformat(timespec='seconds')}",
        )
        grid.add_row("because", "\n".join(f"{r.code}: {r.detail}" for r in pending.reasons))
        grid.add_row("proposal", f"version {pending.proposal_version}, sha256 {digest}")
        grid.add_row("intent", f"{proposal.intent} (confidence {proposal.confidence:.2f})")
        grid.add_row("answer", proposal.answer)
        calls = [
            f"{c.tool} {json.dumps(c.arguments, ensure_ascii=False)}" for c in proposal.tool_calls
        ]
        grid.add_row("tool calls", "\n".join(calls) or "none")
        found = [f"{f.severity} {f.code}: {f.detail}" for f in pending.findings]
        grid.add_row("findings", "\n".join(found) or "none")
        grid.add_row(
            "cites", "\n".join(f"{c.passage_id}: {c.title}" for c in pending.citations) or "nothing"
        )
    for review in status.reviews:
        grid.add_row(
            "review",
            f"{review.verdict} by {review.approver} at tier {review.tier}: {review.reason}",
        )
    out.print(grid)
    if pending is not None and digest is not None:
        out.print(
            f"tether approvals approve {status.request_id} --as YOU --reason '…' "
            f"--version {pending.proposal_version} --proposal {digest[:16]}",
            soft_wrap=True,
        )


def _accepted(receipt: ReviewReceipt, what: str, as_json: bool) -> None:
    if as_json:
        emit(receipt)
    else:
        tier = receipt.tier_name or f"number {receipt.tier}"
        out.print(f"{what} accepted at tier {tier}: {receipt.detail}")


KEY = typer.Option(
    None,
    "--key",
    envvar="TETHER_APPROVER_KEY",
    help="your key file (tether keys new); default: yours in TETHER_KEYRING",
)
VERSION = typer.Option(
    None,
    "--version",
    min=1,
    help="the proposal version you were shown (tether approvals show): refused if it changed",
)
PROPOSAL = typer.Option(
    None,
    "--proposal",
    help="the proposal_sha256 you were shown (tether approvals show; 12 or more of its first "
    "hex digits): refused if the proposal pending is another",
)


def shown_hash(value: str | None) -> str | None:
    """--proposal as given, checked before anything connects."""
    if value is not None and not re.fullmatch(r"[0-9a-f]{12,64}", value.lower()):
        fail(f"--proposal {value!r}: 12 to 64 hex digits of proposal_sha256")
    return value.lower() if value else None


def as_shown(
    request_id: str, pending: PendingApproval | None, version: int | None, proposal: str | None
) -> str:
    """The full hash of ``pending``, to sign: refused here, in one line, when nothing is
    pending or it is not the proposal shown (``version``, ``proposal``: a prefix of its hash)."""
    if pending is None:
        fail(f"{request_id}: nothing is pending", 1)
    digest = proposal_digest(pending.proposal)
    if not digest.startswith(proposal or "") or version not in (None, pending.proposal_version):
        fail(
            f"stale_proposal: the proposal pending (version {pending.proposal_version}, "
            f"{digest[:12]}) is not the one you were shown: tether approvals show {request_id}",
            1,
        )
    return digest


def signing_key(path: Path | None, approver: str | None) -> SigningKey:
    """The key in ``path``, else ``approver``'s in TETHER_KEYRING; it must sign for
    ``approver`` (None: whoever holds the key in ``path``). Refused here, in one line, before
    anything connects: the workflow refuses an unsigned verdict anyway."""
    try:
        key = SigningKey.load(path) if path else keyring(Settings().keyring).get(approver or "")
    except KeyFileError as error:
        fail(error)
    if key is None:
        fail(
            f"no key signs for {approver}: pass --key FILE (made by tether keys new), or set "
            "TETHER_APPROVER_KEY to it, or TETHER_KEYRING to a folder holding it"
        )
    if approver is not None and key.approver != approver:
        fail(f"{path} signs for {key.approver}, not {approver}")
    return key


def _reason(reason: str) -> str:
    """A reason as kept in the history: no control or invisible characters (a terminal showing
    the review would obey them); empty stays empty where the command allows it."""
    return kept_text("--reason", reason, 2000, lines=True) if reason.strip() else reason


def _review(
    request_id: str,
    approver: str,
    verdict: str,
    reason: str,
    key: Path | None,
    as_json: bool,
    version: int | None,
    proposal: str | None,
) -> None:
    from tether.client import Tether

    reason = _reason(reason)
    proposal = shown_hash(proposal)
    signer = signing_key(key, approver)  # last: what was typed is checked first

    async def main() -> None:
        tether = await Tether.connect()
        digest, shown = None, version
        if proposal is not None:  # else the client signs what is pending when it signs
            pending = (await tether.status(request_id)).pending
            digest = as_shown(request_id, pending, version, proposal)
            assert pending is not None  # as_shown left otherwise
            shown = pending.proposal_version
        try:
            receipt = await tether.review(
                request_id,
                approver=approver,
                verdict="approve" if verdict == "approve" else "reject",
                reason=reason,
                proposal_version=shown,
                proposal_sha256=digest,
                key=signer,
            )
        except InvalidRequest as error:
            fail(error)
        except ReviewRejected as error:
            fail(error, 1)
        _accepted(receipt, verdict, as_json)

    run(main())


@approvals.command("approve")
def approvals_approve(
    request_id: str,
    approver: str = typer.Option(..., "--as", help="approver identity"),
    reason: str = typer.Option("", help="why"),
    key: Path | None = KEY,
    as_json: bool = JSON,
    version: int | None = VERSION,
    proposal: str | None = PROPOSAL,
) -> None:
    """Approve a pending request, signed with your key (the workflow checks the signature
    against its pinned approver directory, then your role)."""
    _review(request_id, approver, "approve", reason, key, as_json, version, proposal)


@approvals.command("reject")
def approvals_reject(
    request_id: str,
    approver: str = typer.Option(..., "--as", help="approver identity"),
    reason: str = typer.Option(..., help="why (required)"),
    key: Path | None = KEY,
    as_json: bool = JSON,
    version: int | None = VERSION,
    proposal: str | None = PROPOSAL,
) -> None:
    """Reject a pending request, signed; nothing is executed."""
    _review(request_id, approver, "reject", reason, key, as_json, version, proposal)


@approvals.command("sign")
def approvals_sign(
    request_id: str,
    approver: str = typer.Option(..., "--as", help="approver identity"),
    verdict: str = typer.Option("approve", help="approve or reject"),
    reason: str = typer.Option("", help="why (required to reject)"),
    key: Path | None = KEY,
) -> None:
    """Print a signed review as JSON, for tools that speak to Temporal directly:
    temporal workflow update execute --workflow-id resolution-ID --name review --input "$(...)".
    It counts for the pending proposal version, for signature_ttl (default 15 minutes)."""
    from tether.client import Tether

    reason = _reason(reason)
    if verdict not in ("approve", "reject"):
        fail(f"--verdict: {verdict!r} is not approve or reject")
    signer = signing_key(key, approver)

    try:
        review = Review(approver=approver, verdict=verdict, reason=reason)
    except ValidationError as error:
        fail(f"review: {error}")

    async def main() -> None:
        tether = await Tether.connect()
        signed = await tether.sign(request_id, review, signer)
        if signed.signature is None:
            fail(f"no key for {approver}: --key FILE, or a key file in TETHER_KEYRING")
        emit(signed)

    run(main())


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
    key: Path | None = KEY,
    as_json: bool = JSON,
    proposal: str | None = PROPOSAL,
) -> None:
    """Approve a changed answer or tool arguments, signed; checked like the model's proposal,
    and against the editor's own reach. The edit is made to the proposal pending, and signed
    over it (with --proposal: refused unless that is the one you were shown)."""
    from tether.client import Tether

    reason = _reason(reason)
    proposal = shown_hash(proposal)
    odd = hidden(answer or "", "\n\t")
    if odd:  # what the requester would get: shown as written, so never an escape sequence
        fail(f"--answer: control or invisible characters are not sent (U+{ord(odd[0]):04X})")
    signer = signing_key(key, approver)

    async def main() -> None:
        tether = await Tether.connect()
        status = await tether.status(request_id)
        digest = as_shown(request_id, status.pending, None, proposal)
        assert status.pending is not None  # as_shown left otherwise
        calls: list[dict[str, Any]] = [
            c.model_dump(mode="json") for c in status.pending.proposal.tool_calls
        ]
        for item in set_ or []:
            target, _, raw = item.partition("=")
            tool, _, argument = target.partition(".")
            call = next((c for c in calls if c["tool"] == tool), None)
            if not raw or not argument or call is None:
                fail(f"--set {item!r}: expected TOOL.ARGUMENT=VALUE for a pending call")
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
                proposal_sha256=digest,  # of the proposal edited
                key=signer,
            )
        except InvalidRequest as error:
            fail(error)
        except ReviewRejected as error:
            fail(error, 1)
        _accepted(receipt, "edit", as_json)

    run(main())


@app.command("audit")
def audit_command(request_id: str, as_json: bool = JSON) -> None:
    """What each side effect of a request attempted, why it was allowed, and what changed."""
    from tether.audit import audit
    from tether.client import Tether

    async def main() -> None:
        tether = await Tether.connect()
        status = await tether.status(request_id)
        if status.stage is not Stage.COMPLETED:  # else this would wait for the run to end
            fail(f"{request_id} is {status.stage.value}: nothing to audit yet", 1)
        outcome = await tether.outcome(request_id)
        entries = audit(outcome)
        if as_json:
            emit(
                {
                    "steps": dump(list(entries)),
                    "refused_model_answers": outcome.repairs,
                    "withheld": outcome.withheld,
                    "reviews": dump(list(outcome.reviews)),
                    "edits": dump(list(outcome.edits)),
                }
            )
            return
        for review in outcome.reviews:  # who let it act, or stopped it, and why
            key = f", key {review.key_id}" if review.key_id else ""
            out.print(
                f"review: {review.verdict} by {review.approver} (tier {review.tier}{key}) at "
                f"{review.at.isoformat(timespec='seconds')}: {review.reason}"
            )
        for edit in outcome.edits:
            out.print(
                f"edited by {edit.approver} (tier {edit.tier}) at "
                f"{edit.at.isoformat(timespec='seconds')}: {edit.reason}"
            )
        for attempt, problems in enumerate(outcome.repairs, start=1):
            out.print(f"model answer {attempt} refused: {'; '.join(problems)}")
        if outcome.withheld:
            out.print(f"withheld (another subject's): {', '.join(outcome.withheld)}")
        if not entries:  # no table of nothing: why nothing was attempted
            codes = ", ".join(outcome.decision.codes()) or "no reason recorded"
            settled = settled_by(outcome)
            out.print(
                f"no side effect attempted: decision {outcome.decision.action.value} ({codes}),"
                f" mode {outcome.mode.value}" + (f"; {settled}" if settled else "")
            )
            return
        table = Table(
            "step", "attempted", "allowed because", "changed (target system)", show_lines=True
        )
        for e in entries:
            attempted = f"{e.tool} {json.dumps(e.arguments)}\nkey {e.idempotency_key}"
            allowed = "\n".join(
                [
                    *e.allowed_because,
                    "permissions: " + ", ".join(e.permissions),
                    f"policy {e.policy_version}"
                    + (f" (sha256 {e.policy_sha256[:12]})" if e.policy_sha256 else ""),
                ]
            )
            if e.precondition:
                allowed += f"\nprecondition: {e.precondition}"
            if e.approved_by:
                allowed += "\napproved by " + ", ".join(
                    f"{who} (key {key})"
                    for who, key in zip(e.approved_by, e.approval_keys, strict=False)
                )
            changes = [f"{k}: {v['before']} -> {v['after']}" for k, v in e.changed.items()]
            changes.append(e.postcondition or (e.error or ""))
            if e.replayed:
                changes.append("(answered from the target's idempotency record)")
            if e.unconfirmed_effect:
                changes.append("(failed, but the target holds its effect: undone by the saga)")
            table.add_row(str(e.step), attempted, allowed, "\n".join(changes))
        out.print(table)

    run(main())


@app.command("feedback")
def feedback_command(
    request_id: str,
    kind: str = typer.Option(..., help="complaint, reversal, clawback, confirmation or correction"),
    detail: str = typer.Option(..., help="what happened"),
    source: str = typer.Option("cli", help="where it came from"),
    reporter: str | None = typer.Option(
        None,
        "--reporter",
        help="who vouches for it: an entry of the domain's approver directory, signing with "
        "--key (a key alone vouches as its holder); with neither it is kept unverified and "
        "nothing that learns counts it",
    ),
    key: Path | None = KEY,
) -> None:
    """Attach what happened later to a request's outcome (counted by evaluation, datasets,
    calibration and candidates when a reporter vouches for it)."""
    from tether.client import Tether

    # A key alone (--key, TETHER_APPROVER_KEY) vouches as its holder.
    signer = signing_key(key, reporter) if reporter is not None or key is not None else None

    async def main() -> None:
        tether = await Tether.connect()
        try:
            vouched_by = await tether.feedback(
                request_id, kind=kind, detail=detail, source=source, key=signer
            )
        except InvalidRequest as error:
            fail(error)
        except FeedbackRefused as error:
            fail(error, 1)
        if vouched_by is None:
            out.print(
                f"{kind} attached to {request_id}, unverified: kept on the record, counted by "
                "nothing that learns (--reporter NAME --key FILE vouches for it)"
            )
        else:
            out.print(f"{kind} attached to {request_id}, vouched for by {vouched_by}")

    run(main())
