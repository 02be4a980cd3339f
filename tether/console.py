"""The web operator console: the approval queue and each pending item, with approve, reject
and edit. Server-rendered HTML over the same client API as the CLI; every decision is still
checked by the workflow (identity, role, version, contracts, policy, limits).

Identity: the configured header, believed only from the proxy addresses configured (an
authenticating proxy in front of the console, which must strip the header from clients), or a
token an operator signs in with by POST to ``/login``, compared in constant time. The cookie
then holds a session, never the token: the identity, an expiry and a fingerprint of the token,
signed with the console's secret (so every replica sharing the secret reads it, and a token
taken out of the configuration ends its sessions). ``/logout`` ends it in the browser. Forms
carry an HMAC of the identity, so another site cannot post in its name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from html import escape
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from temporalio.client import WorkflowExecutionStatus

from tether.client import Tether
from tether.config import Settings
from tether.contracts import Outcome, WorkflowStatus
from tether.errors import InvalidRequest, ReviewRejected
from tether.signing import keyring

COOKIE = "tether_session"
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#1d2b3a;color:#fff;padding:.7rem 1.5rem;display:flex;justify-content:space-between}
header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:1.2rem 1.5rem;max-width:1100px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e6ea;padding:.45rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f4;font-size:.85rem;text-transform:uppercase;letter-spacing:.03em}
section{background:#fff;border:1px solid #e3e6ea;border-radius:6px;padding:.8rem 1rem;margin:.8rem 0}
h2{font-size:1rem;margin:.2rem 0 .6rem}
.code{font-family:ui-monospace,monospace;font-size:.85rem;white-space:pre-wrap}
.tag{display:inline-block;background:#eef1f4;border-radius:4px;padding:0 .4rem;margin:0 .2rem .2rem 0}
.warn{background:#fff4d6}.block{background:#ffe0e0}
.error{background:#ffe0e0;border:1px solid #e5a0a0;padding:.6rem 1rem;border-radius:6px}
.done{background:#dff5e1;border:1px solid #9fd3a6;padding:.6rem 1rem;border-radius:6px}
form{display:inline-block;margin-right:1rem;vertical-align:top}
textarea,input[type=text]{width:100%;box-sizing:border-box;font:inherit}
button{font:inherit;padding:.3rem .9rem;border-radius:4px;border:1px solid #8895a3;cursor:pointer}
button.approve{background:#1f7a3a;color:#fff;border-color:#1f7a3a}
button.reject{background:#a32020;color:#fff;border-color:#a32020}
"""


def _page(title: str, identity: str | None, body: str, status: int = 200) -> HTMLResponse:
    who = (
        f"signed in as <b>{escape(identity)}</b> <form method='post' action='/logout' "
        "style='margin:0 0 0 .6rem'><button id='signout'>sign out</button></form>"
        if identity
        else "not signed in"
    )
    return HTMLResponse(
        headers={  # never inside another site's frame: the forms carry valid tokens
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "frame-ancestors 'none'",
        },
        content=f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)} · Tether</title>"
        f"<style>{STYLE}</style></head><body><header><a href='/'>Tether · approvals</a>"
        f"<span>{who}</span></header><main>{body}</main></body></html>",
        status_code=status,
    )


def _tags(codes: list[str], cls: str = "") -> str:
    return "".join(f"<span class='tag {cls}'>{escape(c)}</span>" for c in codes)


class Console:
    def __init__(self, settings: Settings, tether: Tether | None = None) -> None:
        self.settings = settings
        self.config = settings.console
        self._tether = tether
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        self._secret = (secret or secrets.token_hex(32)).encode()

    @property
    def tether(self) -> Tether:
        assert self._tether is not None, "the console's client connects at startup"
        return self._tether

    # --- identity ------------------------------------------------------------------------

    def identity(self, request: Request) -> str | None:
        header = self.config.identity_header
        peer = request.client.host if request.client else None
        if header and request.headers.get(header) and peer in self.config.trusted_proxies:
            return request.headers[header]
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            return self._token_identity(bearer.removeprefix("Bearer "))
        return self._session_identity(request.cookies.get(COOKIE, ""))

    def _token_identity(self, token: str) -> str | None:
        """Whose ``token`` is; every configured token is compared, in constant time."""
        found = None
        for known, who in self.config.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = who
        return found

    @staticmethod
    def _fingerprint(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()[:16]

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, f"session:{text}".encode(), hashlib.sha256).hexdigest()

    def session(self, token: str, identity: str) -> str:
        expires = int(time.time() + self.config.session_hours * 3600)
        body = json.dumps([identity, expires, self._fingerprint(token)], separators=(",", ":"))
        return f"{body.encode().hex()}.{self._sign(body)}"

    def _session_identity(self, cookie: str) -> str | None:
        """The session's identity if it is signed by us, unexpired, and its token still
        belongs to that identity."""
        data, _, signature = cookie.partition(".")
        try:
            body = bytes.fromhex(data).decode()
            identity, expires, fingerprint = json.loads(body)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(signature, self._sign(body)) or expires < time.time():
            return None
        current = any(
            who == identity and hmac.compare_digest(self._fingerprint(t), fingerprint)
            for t, who in self.config.tokens.items()
        )
        return str(identity) if current else None

    def csrf(self, identity: str) -> str:
        return hmac.new(self._secret, identity.encode(), hashlib.sha256).hexdigest()

    def _form_ok(self, identity: str, form: Any) -> bool:
        return hmac.compare_digest(str(form.get("csrf", "")), self.csrf(identity))

    # --- pages ---------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        """GET: the sign-in form. POST: the token, from the form's body (never a URL, which
        proxies and browsers keep in logs and history)."""
        form = (
            "<h1>Sign in</h1><form method='post' action='/login'>"
            "<input type='password' name='token' autocomplete='current-password' "
            "placeholder='token' style='width:24rem'> <button id='signin'>sign in</button></form>"
        )
        if request.method == "GET":
            return _page("Sign in", None, form)
        token = str((await request.form()).get("token", ""))
        identity = self._token_identity(token) if token else None
        if identity is None:
            return _page("Sign in", None, f"<p class='error'>Unknown token.</p>{form}", 401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            self.session(token, identity),
            max_age=int(self.config.session_hours * 3600),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, httponly=True, samesite="strict")
        return response

    async def queue(self, request: Request, identity: str) -> Response:
        keys = ("domain", "queue", "intent", "mode")
        filters = {k: request.query_params.get(k) or None for k in keys}
        try:
            waiting = await self.tether.pending(**filters)
        except InvalidRequest as err:
            return _page("Queue", identity, f"<p class='error'>{escape(str(err))}</p>", 400)
        waiting.sort(
            key=lambda s: s.pending.deadline if s.pending else datetime.max.replace(tzinfo=UTC)
        )
        rows = "".join(self._queue_row(s) for s in waiting)
        empty = "" if rows else "<tr><td colspan='7'>Nothing is waiting for a person.</td></tr>"
        tiers = dict.fromkeys(t.name for p in self.tether.packs for t in p.policy.tiers)
        options = _options(tiers, filters["queue"])
        domains = _options([p.name for p in self.tether.packs], filters["domain"])
        body = (
            f"<h1>Waiting for a decision ({len(waiting)})</h1>"
            "<form method='get'><select name='domain'><option value=''>every domain</option>"
            f"{domains}</select> <select name='queue'><option value=''>every tier</option>"
            f"{options}</select> <input type='text' name='intent' placeholder='intent' "
            f"value='{escape(filters['intent'] or '')}' style='width:12rem'> "
            "<button>filter</button></form>"
            "<table id='queue'><tr><th>request</th><th>domain</th><th>tier</th><th>due</th>"
            "<th>intent</th>"
            f"<th>mode</th><th>why a person</th></tr>{rows}{empty}</table>"
        )
        return _page("Queue", identity, body)

    @staticmethod
    def _queue_row(status: WorkflowStatus) -> str:
        pending = status.pending
        assert pending is not None
        ticket = status.request.text if status.request else ""
        return (
            f"<tr><td><a href='/requests/{escape(status.request_id)}'>{escape(status.request_id)}</a>"
            f"<div>{escape(ticket[:90])}</div></td><td>{escape(status.domain)}</td>"
            f"<td>{escape(pending.tier_name)}<div>{escape(pending.role)}</div></td>"
            f"<td>{pending.deadline.strftime('%Y-%m-%d %H:%M UTC')}</td>"
            f"<td>{escape(status.intent or '')}</td><td>{escape(status.mode.value)}</td>"
            f"<td>{_tags([r.code for r in pending.reasons])}</td></tr>"
        )

    async def detail(self, request: Request, identity: str, error: str = "") -> Response:
        rid = request.path_params["request_id"]
        handle = self.tether.handle(rid)
        try:
            described = await handle.describe()
        except Exception:
            return _page(
                "Not found", identity, f"<p class='error'>No request {escape(rid)}.</p>", 404
            )
        banner = f"<p class='error' id='error'>{escape(error)}</p>" if error else ""
        if described.status is WorkflowExecutionStatus.COMPLETED:
            return _page(rid, identity, banner + self._finished(await self.tether.outcome(rid)))
        status = await self.tether.status(rid)
        if status.pending is None:
            body = f"<p>{escape(rid)} is at stage <b>{escape(status.stage.value)}</b>.</p>"
            return _page(
                rid,
                identity,
                banner + body + "<script>setTimeout(()=>location.reload(),1000)</script>",
            )
        return _page(rid, identity, banner + self._pending(status, identity), 409 if error else 200)

    def _pending(self, status: WorkflowStatus, identity: str) -> str:
        pending = status.pending
        assert pending is not None
        proposal, ticket = pending.proposal, status.request
        pack = next((p for p in self.tether.packs if p.name == status.domain), None)
        calls = "".join(
            f"<tr><td>{escape(c.tool)}</td><td class='code'>{escape(json.dumps(c.arguments, indent=1))}"
            f"</td><td>{escape(pack.describe(c) if pack else c.tool)}</td></tr>"
            for c in proposal.tool_calls
        )
        evidence = (
            "".join(
                f"<tr><td>{escape(p.title)}<div class='code'>{escape(p.passage_id)} v{p.version}, "
                f"updated {p.updated_at.date()}</div></td><td>{escape(p.text)}</td></tr>"
                for p in pending.citations
            )
            or "<tr><td colspan='2'>No passage cited.</td></tr>"
        )
        findings = (
            "".join(
                f"<tr class='{escape(f.severity)}'><td>{escape(f.code)}</td><td>{escape(f.severity)}</td>"
                f"<td>{escape(f.detail)}</td></tr>"
                for f in pending.findings
            )
            or "<tr><td colspan='3'>None.</td></tr>"
        )
        reasons = "".join(
            f"<tr><td>{escape(r.code)}</td><td>{escape(r.detail)}</td></tr>"
            for r in pending.reasons
        )
        csrf = f"<input type='hidden' name='csrf' value='{self.csrf(identity)}'>"
        version = f"<input type='hidden' name='version' value='{pending.proposal_version}'>"
        rid = escape(status.request_id)
        calls_json = escape(
            json.dumps([c.model_dump(mode="json") for c in proposal.tool_calls], indent=1)
        )
        label = pack.subject_label if pack else "subject"
        who = (
            f"{escape(label)} {escape(ticket.subject)} (submitted by {escape(ticket.requester)})"
            if ticket
            else ""
        )
        return f"""
<h1>{rid}</h1>
<section><h2>Ticket from {who}</h2><p id='ticket'>{escape(ticket.text if ticket else "")}</p>
<p>Waiting for tier <b>{escape(pending.tier_name)}</b> ({escape(pending.role)}) until
{pending.deadline.strftime("%Y-%m-%d %H:%M UTC")}; proposal version {pending.proposal_version};
intent {escape(proposal.intent)}; confidence {proposal.confidence:.2f}.</p></section>
<section><h2>Why a person decides</h2><table id='reasons'>{reasons}</table></section>
<section><h2>Proposed answer</h2><p id='answer'>{escape(proposal.answer)}</p>
<h2>Proposed actions</h2><table><tr><th>tool</th><th>arguments</th><th>in short</th></tr>{calls}</table></section>
<section><h2>Evidence cited</h2><table id='evidence'>{evidence}</table></section>
<section><h2>Verifier findings</h2><table id='findings'>{findings}</table></section>
<section><h2>Decide</h2>
<form method='post' action='/requests/{rid}/approve'>{csrf}{version}
<input type='text' name='reason' placeholder='note (optional)'>
<button class='approve' id='approve'>Approve</button></form>
<form method='post' action='/requests/{rid}/reject'>{csrf}{version}
<input type='text' name='reason' placeholder='why (required)'>
<button class='reject' id='reject'>Reject</button></form>
<details><summary>Edit, then approve</summary>
<form method='post' action='/requests/{rid}/edit' style='display:block'>{csrf}{version}
<label>Answer<textarea name='answer' rows='4'>{escape(proposal.answer)}</textarea></label>
<label>Tool calls (JSON)<textarea name='tool_calls' rows='10' class='code'>{calls_json}</textarea></label>
<input type='text' name='reason' placeholder='why the change (required)'>
<button class='approve' id='edit'>Approve as edited</button></form></details>
</section>"""

    @staticmethod
    def _finished(outcome: Outcome) -> str:
        actions = (
            "".join(
                f"<tr><td>{escape(a.tool)}</td><td class='code'>{escape(json.dumps(a.arguments))}</td>"
                f"<td>{'ok' if a.ok else escape(a.error or 'failed')}</td></tr>"
                for a in outcome.actions
            )
            or "<tr><td colspan='3'>No action was taken.</td></tr>"
        )
        reviews = ", ".join(f"{r.verdict} by {r.approver}" for r in outcome.reviews)
        return (
            f"<h1>{escape(outcome.request_id)}</h1><p class='done' id='completed'>Completed: "
            f"{escape(outcome.decision.action.value)}, mode {escape(outcome.mode.value)}"
            f"{'; ' + escape(reviews) if reviews else ''}.</p>"
            f"<section><h2>Answer sent</h2><p>{escape(outcome.answer)}</p></section>"
            f"<section><h2>Actions</h2><table>{actions}</table></section>"
        )

    async def decide(self, request: Request, identity: str) -> Response:
        rid, verdict = request.path_params["request_id"], request.path_params["verdict"]
        form = await request.form()
        if not self._form_ok(identity, form):
            return _page("Refused", identity, "<p class='error'>The form is not yours.</p>", 403)
        reason = str(form.get("reason", "")).strip()
        version = int(str(form.get("version") or 0)) or None
        # The console signs for the operator it authenticated, with the key it holds for them.
        key = keyring(self.config.keyring).get(identity)
        if key is None:
            return await self.detail(
                request, identity, f"Refused: this console holds no signing key for {identity}"
            )
        try:
            if verdict == "edit":
                await self.tether.edit(
                    rid,
                    approver=identity,
                    reason=reason,
                    answer=str(form.get("answer", "")) or None,
                    tool_calls=json.loads(str(form.get("tool_calls") or "null")),
                    proposal_version=version,
                    key=key,
                )
            elif verdict in ("approve", "reject"):
                await self.tether.review(
                    rid,
                    approver=identity,
                    verdict=verdict,
                    reason=reason,
                    proposal_version=version,
                    key=key,
                )
            else:
                return _page("Not found", identity, "<p class='error'>No such action.</p>", 404)
        except ReviewRejected as err:
            return await self.detail(request, identity, f"Refused ({err.code}): {err.detail}")
        except (InvalidRequest, ValueError) as err:
            return await self.detail(request, identity, f"Not accepted: {err}")
        return RedirectResponse(f"/requests/{rid}", status_code=303)


def create_app(settings: Settings, tether: Tether | None = None) -> Starlette:
    console = Console(settings, tether)

    def signed_in(
        handler: Callable[[Request, str], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            identity = console.identity(request)
            if identity is None:
                how = "<a href='/login'>Sign in</a>"
                if settings.console.identity_header:
                    how += (
                        f", or come through the proxy that sets {settings.console.identity_header}"
                    )
                return _page("Sign in", None, f"<p class='error'>{how}.</p>", 401)
            return await handler(request, identity)

        return endpoint

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if console._tether is None:
            console._tether = await Tether.connect(settings)
        yield

    return Starlette(
        routes=[
            Route("/", signed_in(console.queue)),
            Route("/login", console.login, methods=["GET", "POST"]),
            Route("/logout", console.logout, methods=["POST"]),
            Route("/requests/{request_id}", signed_in(console.detail)),
            Route("/requests/{request_id}/{verdict}", signed_in(console.decide), methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def _options(values: Iterable[str], chosen: str | None) -> str:
    return "".join(
        f"<option value='{escape(v)}'{' selected' if chosen == v else ''}>{escape(v)}</option>"
        for v in values
    )
