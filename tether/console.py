"""The web operator console: the approval queue and each pending item, with approve, reject
and edit. Server-rendered HTML over the same client API as the CLI; every decision is still
checked by the workflow (identity, role, version, contracts, policy, limits). The pages are
Jinja2 templates (console_templates/) that escape every value they print: a ticket, a model's
answer or an approver's name is shown as text, never read as markup.

Identity: the configured header, believed only from the proxy addresses configured (an
authenticating proxy in front of the console, which must strip the header from clients), or a
token an operator signs in with by POST to ``/login``, compared in constant time. The cookie
then holds a session, never the token: the identity, an expiry and a fingerprint of the token,
signed with the console's secret (so every replica sharing the secret reads it, and a token
taken out of the configuration ends its sessions). ``/logout`` ends it in the browser. Forms
carry an HMAC of the identity, so another site cannot post in its name.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from temporalio.client import WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError

from tether.client import Tether, connect
from tether.config import Settings
from tether.contracts import LaterFeedback, WorkflowStatus
from tether.errors import FeedbackRefused, InvalidRequest, ReviewRejected
from tether.metrics import ConsoleCounters, runtime_for
from tether.signing import SigningKey, keyring, proposal_digest

COOKIE = "tether_session"
# What an operator may report of a finished request (LaterFeedback.kind), as listed there.
FEEDBACK_KINDS = get_args(LaterFeedback.model_fields["kind"].annotation)
TEMPLATES = Path(__file__).with_name("console_templates")
# Direction controls (embeddings, overrides, isolates) make text read other than it is
# ("invoice\u202egnp.exe" reads as "invoiceexe.png"): a decider sees them as a visible mark.
DIRECTION = {c: f"[U+{c:04X}]" for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


def _shown(value: Any) -> Any:
    """Every value a page prints, before it is escaped."""
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return value.translate(DIRECTION)
    return value


def _json(value: Any, indent: int | None = None) -> str:
    """JSON as text (escaped like any other), never as markup."""
    return json.dumps(value, indent=indent)


# The pages are templates; a value reaches one only through {{ }}, escaped for HTML (text and
# quoted attributes alike), so no field can become markup. A name the page does not get is an
# error, not an empty string.
PAGES = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    finalize=_shown,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
PAGES.filters |= {
    "utc": lambda moment: moment.strftime("%Y-%m-%d %H:%M UTC"),
    "json": _json,
    # One path segment: a request id can never reach another route or a query.
    "segment": lambda value: quote(str(value), safe=":@"),
}


def _page(
    template: str, identity: str | None, *, code: int = 200, error: str = "", **values: Any
) -> HTMLResponse:
    return HTMLResponse(
        PAGES.get_template(template).render(identity=identity, error=error, **values),
        status_code=code,
        headers={  # never inside another site's frame: the forms carry valid tokens
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "frame-ancestors 'none'",
        },
    )


class Console:
    def __init__(self, settings: Settings, tether: Tether | None = None) -> None:
        self.settings = settings
        self.config = settings.console
        self._tether = tether
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        self._secret = (secret or secrets.token_hex(32)).encode()
        runtime = runtime_for(settings.metrics_address)
        self.counted = ConsoleCounters(runtime.metric_meter if runtime else None)

    @property
    def tether(self) -> Tether:
        assert self._tether is not None, "the console's client connects at startup"
        return self._tether

    # --- identity ------------------------------------------------------------------------

    def identity(self, request: Request) -> str | None:
        header = self.config.identity_header
        if header and request.headers.get(header) and self._from_proxy(request):
            return request.headers[header]
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            return self._token_identity(bearer.removeprefix("Bearer "))
        return self._session_identity(request.cookies.get(COOKIE, ""))

    def _from_proxy(self, request: Request) -> bool:
        """Whether the peer is a proxy the settings trust (trusted_proxies)."""
        peer = request.client.host if request.client else None
        return peer in self.config.trusted_proxies

    def _over_https(self, request: Request) -> bool:
        """Whether the browser reached us over TLS: directly, or through a trusted proxy that
        ended it and says so (X-Forwarded-Proto; the console reads no forwarding header
        from anyone else)."""
        said = request.headers.get("x-forwarded-proto", "").lower()
        return request.url.scheme == "https" or (said == "https" and self._from_proxy(request))

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
        except (ValueError, TypeError, RecursionError):
            return None
        if not _same(signature, self._sign(body)) or not isinstance(expires, int | float):
            return None
        if expires < time.time():
            return None
        current = any(
            who == identity and _same(self._fingerprint(t), str(fingerprint))
            for t, who in self.config.tokens.items()
        )
        return str(identity) if current else None

    def csrf(self, identity: str) -> str:
        return hmac.new(self._secret, identity.encode(), hashlib.sha256).hexdigest()

    def _form_ok(self, identity: str, form: Any) -> bool:
        return _same(str(form.get("csrf", "")), self.csrf(identity))

    # --- pages ---------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        """GET: the sign-in form. POST: the token, from the form's body (never a URL, which
        proxies and browsers keep in logs and history)."""
        if request.method == "GET":
            return _page("login.html", None, title="Sign in")
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            # Another site's form would sign this browser in as whoever's token it holds,
            # and its operator would then review and sign as them.
            self.counted.sign_in("refused")
            return _page(
                "login.html", None, title="Sign in", error="Sign in from this page.", code=403
            )
        token = str((await request.form()).get("token", ""))
        identity = self._token_identity(token) if token else None
        if identity is None:
            self.counted.sign_in("refused")
            return _page("login.html", None, title="Sign in", error="Unknown token.", code=401)
        self.counted.sign_in("ok")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            self.session(token, identity),
            max_age=int(self.config.session_hours * 3600),
            httponly=True,
            samesite="strict",
            secure=self._over_https(request),
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
            return _page("base.html", identity, title="Queue", error=str(err), code=400)
        waiting.sort(
            key=lambda s: s.pending.deadline if s.pending else datetime.max.replace(tzinfo=UTC)
        )
        return _page(
            "queue.html",
            identity,
            title="Queue",
            waiting=waiting,
            filters=filters,
            domains=[p.name for p in self.tether.packs],
            tiers=list(dict.fromkeys(t.name for p in self.tether.packs for t in p.policy.tiers)),
        )

    async def detail(self, request: Request, identity: str, error: str = "") -> Response:
        rid = request.path_params["request_id"]
        handle = self.tether.handle(rid)
        try:
            described = await handle.describe()
        except Exception:
            return _page(
                "base.html", identity, title="Not found", error=f"No request {rid}.", code=404
            )
        try:
            if described.status is WorkflowExecutionStatus.COMPLETED:
                outcome = await self.tether.outcome(rid)
                return _page(
                    "finished.html",
                    identity,
                    title=rid,
                    error=error,
                    code=409 if error else 200,
                    outcome=outcome,
                    csrf=self.csrf(identity),
                    kinds=FEEDBACK_KINDS,
                )
            status = await self.tether.status(rid)
        except UNAVAILABLE as err:
            return _unavailable(identity, rid, "read", err)
        if status.pending is None:
            return _page(
                "progress.html", identity, title=rid, error=error, rid=rid, stage=status.stage.value
            )
        return _page(
            "pending.html",
            identity,
            title=rid,
            error=error,
            code=409 if error else 200,
            **self._pending(status, identity),
        )

    def _pending(self, status: WorkflowStatus, identity: str) -> dict[str, Any]:
        """What the page of an item waiting for a person shows, beyond its status."""
        pending = status.pending
        assert pending is not None
        proposal = pending.proposal
        pack = next((p for p in self.tether.packs if p.name == status.domain), None)
        calls = [(c, pack.describe(c) if pack else c.tool) for c in proposal.tool_calls]
        editable = [c.model_dump(mode="json") for c in proposal.tool_calls]
        return {
            "status": status,
            "pending": pending,
            "proposal": proposal,
            "ticket": status.request,
            "label": pack.subject_label if pack else "subject",
            "calls": calls,
            "calls_json": json.dumps(editable, indent=1),
            "shown": proposal_digest(proposal),
            "csrf": self.csrf(identity),
        }

    async def _signing_key(
        self, request: Request, identity: str, form: Any
    ) -> SigningKey | Response:
        """The key the console signs with for the operator it authenticated, or the page
        refusing the form: another's, or an operator it holds no key for."""
        if not self._form_ok(identity, form):
            return _page(
                "base.html", identity, title="Refused", error="The form is not yours.", code=403
            )
        key = keyring(self.config.keyring).get(identity)
        if key is None:
            error = f"Refused: this console holds no signing key for {identity}"
            return await self.detail(request, identity, error)
        return key

    async def report(self, request: Request, identity: str) -> Response:
        """What happened after a finished request (a complaint, a correction...), signed by
        the console for the operator it authenticated: feedback the learning loop counts."""
        return await _counting(self.counted.report, self._report(request, identity))

    async def _report(self, request: Request, identity: str) -> tuple[str, Response]:
        """(sent, refused or unavailable; the page to show)."""
        rid = request.path_params["request_id"]
        form = await request.form()
        key = await self._signing_key(request, identity, form)
        if isinstance(key, Response):
            return "refused", key
        try:
            await self.tether.feedback(
                rid,
                kind=str(form.get("kind", "")),
                detail=str(form.get("detail", "")).strip(),
                source="console",
                key=key,
            )
        except FeedbackRefused as err:
            error = f"Refused ({err.code}): {err.detail}"
            return "refused", await self.detail(request, identity, error)
        except InvalidRequest as err:
            return "refused", await self.detail(request, identity, f"Not accepted: {err}"[:500])
        except UNAVAILABLE as err:
            return "unavailable", _unavailable(identity, rid, "reported on", err)
        return "sent", RedirectResponse(f"/requests/{quote(rid, safe=':@')}", status_code=303)

    async def decide(self, request: Request, identity: str) -> Response:
        verdict = str(request.path_params["verdict"])
        counted = functools.partial(self.counted.verdict, verdict)
        return await _counting(counted, self._decide(request, identity))

    async def _decide(self, request: Request, identity: str) -> tuple[str, Response]:
        """(sent, refused or unavailable; the page to show)."""
        rid, verdict = request.path_params["request_id"], request.path_params["verdict"]
        form = await request.form()
        key = await self._signing_key(request, identity, form)
        if isinstance(key, Response):
            return "refused", key
        reason = str(form.get("reason", "")).strip()
        said = str(form.get("version") or "")
        version = int(said) if said.isascii() and said.isdigit() and len(said) < 10 else None
        shown = str(form.get("proposal") or "") or None  # the hash of the proposal shown
        try:
            if verdict == "edit":
                await self.tether.edit(
                    rid,
                    approver=identity,
                    reason=reason,
                    answer=str(form.get("answer", "")) or None,
                    tool_calls=json.loads(str(form.get("tool_calls") or "null")),
                    proposal_version=version,
                    proposal_sha256=shown,
                    key=key,
                )
            elif verdict in ("approve", "reject"):
                await self.tether.review(
                    rid,
                    approver=identity,
                    verdict=verdict,
                    reason=reason,
                    proposal_version=version,
                    proposal_sha256=shown,
                    key=key,
                )
            else:
                return "refused", _page(
                    "base.html", identity, title="Not found", error="No such action.", code=404
                )
        except ReviewRejected as err:
            error = f"Refused ({err.code}): {err.detail}"
            return "refused", await self.detail(request, identity, error)
        except (InvalidRequest, ValueError, RecursionError) as err:
            return "refused", await self.detail(request, identity, f"Not accepted: {err}"[:500])
        except UNAVAILABLE as err:
            return "unavailable", _unavailable(identity, rid, "decided", err)
        return "sent", RedirectResponse(f"/requests/{quote(rid, safe=':@')}", status_code=303)


def create_app(settings: Settings, tether: Tether | None = None) -> Starlette:
    console = Console(settings, tether)

    def signed_in(
        handler: Callable[[Request, str], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            identity = console.identity(request)
            if identity is None:
                header = settings.console.identity_header
                return _page("signin.html", None, title="Sign in", header=header, code=401)
            return await handler(request, identity)

        return endpoint

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if console._tether is None:  # its client's metrics beside the console's own
            console._tether = Tether(await connect(settings, serve_metrics=True), settings)
        yield

    return Starlette(
        routes=[
            Route("/", signed_in(console.queue)),
            Route("/login", console.login, methods=["GET", "POST"]),
            Route("/logout", console.logout, methods=["POST"]),
            Route("/requests/{request_id}", signed_in(console.detail)),
            Route("/requests/{request_id}/feedback", signed_in(console.report), methods=["POST"]),
            Route("/requests/{request_id}/{verdict}", signed_in(console.decide), methods=["POST"]),
        ],
        lifespan=lifespan,
    )


# What a request that exists cannot do now: no worker answers its queries, its run fails.
UNAVAILABLE = (RPCError, WorkflowQueryFailedError)


async def _counting(
    count: Callable[[str], None], work: Awaitable[tuple[str, Response]]
) -> Response:
    """``work``'s page, counted by its result ("error" when it raises)."""
    try:
        result, response = await work
    except BaseException:
        count("error")
        raise
    count(result)
    return response


def _unavailable(identity: str, rid: str, done: str, err: Exception) -> Response:
    return _page(
        "base.html", identity, title=rid, error=f"{rid} cannot be {done} now: {err}", code=503
    )


def _same(given: str, expected: str) -> bool:
    """``given`` is ``expected``, compared in constant time; any text a client sends (a
    cookie's bytes read as latin-1 are not ASCII) is compared, never raised on."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())
