"""The console's pages are templates that escape every value on output: hostile text in each
field the console shows (the ticket, the model's proposal and tool arguments, the verifier,
the evidence, approvers, error messages, the signed-in identity, the URL and its query) comes
out as text, never as markup, never evaluated as a template, with direction overrides shown."""

from __future__ import annotations

import json
import re
import tempfile
import tomllib
from datetime import UTC, datetime
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from jinja2 import UndefinedError
from markupsafe import escape
from starlette.testclient import TestClient
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from tests.unit import hostile
from tether.config import ConsoleConfig, Settings
from tether.console import PAGES, TEMPLATES, create_app
from tether.contracts import (
    Decision,
    DecisionAction,
    Finding,
    Mode,
    Outcome,
    Passage,
    PendingApproval,
    Proposal,
    Reason,
    Request,
    ReviewRecord,
    Stage,
    ToolCall,
    ToolResult,
    WorkflowStatus,
)
from tether.errors import InvalidRequest, ReviewRejected
from tether.signing import SigningKey

ROOT = Path(__file__).resolve().parents[2]
# Direction controls (embeddings, overrides, isolates): they change how the text around
# them reads, so the console shows them as a visible mark.
BIDI = {c: f"[U+{c:04X}]" for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}
MARK = "plainmark"  # a harmless value in the same places: the pages' shape without an attack
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='x",
    "{{ 7*7 }}",
    "{% if true %}evaluated{% endif %}",
    "</textarea><b>bold</b>",
    "&lt;b&gt; &amp; &#60;",  # already escaped once: must not come out as markup either
    "invoice\u202egnp.exe",  # reads as invoiceexe.png
    # The project's odd characters: controls, invisible and direction-changing ones.
    "a" + "".join(c for c in hostile.ODD if not hostile.SURROGATE.match(c)) + "z",
]
COMPLETED = WorkflowExecutionStatus.COMPLETED
WHEN = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)


def shown(text: str) -> str:
    return text.translate(BIDI)


class World:
    """The console's client, where every string it hands over is ``text``. Its request ids:
    ``waiting`` (for a person), ``acting`` (past the gate), ``done``, ``stuck`` (no worker
    answers it); others are unknown."""

    def __init__(self, text: str) -> None:
        self.text = text
        tier = SimpleNamespace(name=text)
        self.packs = [
            SimpleNamespace(
                name=text,
                policy=SimpleNamespace(tiers=[tier]),
                subject_label=text,
                describe=lambda call: text,
            )
        ]

    def _status(self, stage: Stage) -> WorkflowStatus:
        t = self.text
        proposal = Proposal.model_construct(
            intent=t,
            answer=t,
            citations=[t],
            tool_calls=[ToolCall.model_construct(tool=t, arguments={t: t, "n": [t]})],
            confidence=0.5,
        )
        passage = Passage.model_construct(passage_id=t, title=t, version=2, updated_at=WHEN, text=t)
        pending = PendingApproval.model_construct(
            tier=0,
            tier_name=t,
            role=t,
            deadline=WHEN,
            proposal_version=3,
            proposal=proposal,
            findings=[Finding.model_construct(code=t, severity=t, detail=t)],
            reasons=[Reason.model_construct(code=t, detail=t)],
            citations=[passage],
        )
        return WorkflowStatus.model_construct(
            domain=t,
            request_id=t,
            stage=stage,
            mode=Mode.NORMAL,
            intent=t,
            decision=None,
            pending=pending if stage is Stage.AWAITING_APPROVAL else None,
            reviews=[],
            request=Request.model_construct(request_id=t, subject=t, requester=t, text=t),
        )

    async def pending(self, **filters: str | None) -> list[WorkflowStatus]:
        if filters["mode"]:
            raise InvalidRequest([f"TetherMode: {filters['mode']} is not a plain name"])
        return [self._status(Stage.AWAITING_APPROVAL)]

    def handle(self, rid: str) -> Any:
        async def describe() -> Any:
            if rid not in ("waiting", "acting", "done", "stuck"):
                raise LookupError(rid)
            done = rid == "done"
            return SimpleNamespace(status=COMPLETED if done else WorkflowExecutionStatus.RUNNING)

        return SimpleNamespace(describe=describe)

    async def status(self, rid: str) -> WorkflowStatus:
        if rid == "stuck":  # no worker answers its queries
            raise RPCError(f"{self.text}: no poller", RPCStatusCode.DEADLINE_EXCEEDED, b"")
        return self._status(Stage.AWAITING_APPROVAL if rid == "waiting" else Stage.ACTING)

    async def outcome(self, rid: str) -> Outcome:
        t = self.text
        return Outcome.model_construct(
            request_id=t,
            decision=Decision.model_construct(action=DecisionAction.APPROVAL),
            mode=Mode.NORMAL,
            answer=t,
            actions=[
                ToolResult.model_construct(tool=t, arguments={t: t}, ok=False, error=t),
                ToolResult.model_construct(tool=t, arguments={}, ok=True, error=None),
            ],
            reviews=[ReviewRecord.model_construct(approver=t, verdict=t, reason=t)],
        )

    async def review(self, rid: str, *, reason: str, **_: Any) -> None:
        raise ReviewRejected(self.text, f"{self.text} said {reason}")

    async def edit(self, rid: str, *, reason: str, answer: str, tool_calls: Any, **_: Any) -> None:
        raise ValueError(f"{reason}; {answer}; {tool_calls[0]['tool']}")  # as pydantic echoes


def console(text: str, keys: Path | None, **config: Any) -> TestClient:
    """The console over a World of ``text``, with ``text`` the identity of token ``tok``."""
    conf = ConsoleConfig(tokens={"tok": text}, secret="s" * 32, keyring=keys, **config)
    app = create_app(Settings(console=conf), World(text))  # type: ignore[arg-type]
    return TestClient(app, base_url="https://console.test", headers={"Authorization": "Bearer tok"})


def pages(text: str) -> dict[str, tuple[int, str]]:
    """Every page the console renders with ``text`` in each field it shows, by name: status
    and HTML. The text is the signed-in identity too (with a signing key for it)."""
    with tempfile.TemporaryDirectory() as keys:
        SigningKey.new(text).save(Path(keys) / "op.key")
        http = console(text, Path(keys))
        keyless = console(text, None)
        found = {
            "queue": http.get("/", params={"domain": text, "queue": text, "intent": text}),
            "queue_refused": http.get("/", params={"mode": text}),
            "waiting": http.get("/requests/waiting"),
            "acting": http.get("/requests/acting"),
            "done": http.get("/requests/done"),
            "stuck": http.get("/requests/stuck"),
            "login": http.get("/login", params={"token": text}),
            "login_failed": http.post("/login", data={"token": text}),
        }
        csrf = found["waiting"].text.split("name='csrf' value='")[1].split("'")[0]
        # The console strips a reason; the brackets keep all of the text in it.
        form = {"csrf": csrf, "version": "3", "reason": f"({text})"}
        calls = json.dumps([{"tool": text, "arguments": {text: text}}])
        found |= {
            "refused": http.post("/requests/waiting/approve", data=form),
            "not_accepted": http.post(
                "/requests/waiting/edit", data=form | {"answer": text, "tool_calls": calls}
            ),
            "keyless": keyless.post("/requests/waiting/approve", data=form),
        }
    return {name: (r.status_code, r.text) for name, r in found.items()}


STATUSES = {
    "queue": 200,
    "queue_refused": 400,
    "waiting": 200,
    "acting": 200,
    "done": 200,
    "stuck": 503,
    "login": 200,
    "login_failed": 401,
    "refused": 409,
    "not_accepted": 409,
    "keyless": 409,
}


class Read(HTMLParser):
    """A page's shape (its tags, comments, declarations and attribute names, in turn) and the
    text a reader sees: text and attribute values, decoded. Links, which are percent-encoded,
    and code (JSON) are left out of the text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.shape: list[tuple[str, ...]] = []
        self.text: list[str] = []
        self._code: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.shape.append((tag, *(name for name, _ in attrs)))
        if self._code is None and "code" in (dict(attrs).get("class") or "").split():
            self._code = tag
        if self._code is None:
            self.text += [v or "" for name, v in attrs if name not in ("href", "action")]

    def handle_endtag(self, tag: str) -> None:
        self.shape.append(("/" + tag,))
        if tag == self._code:
            self._code = None

    def handle_data(self, data: str) -> None:
        if self._code is None:
            self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.shape.append(("!--", data))

    def handle_decl(self, decl: str) -> None:
        self.shape.append(("!", decl))

    def handle_pi(self, data: str) -> None:
        self.shape.append(("?", data))

    def count(self, text: str) -> int:
        return sum(t.count(text) for t in self.text)


@pytest.fixture(scope="module")
def plain() -> dict[str, tuple[int, str]]:
    return pages(MARK)


def test_the_plain_pages_show_each_field(plain: dict[str, tuple[int, str]]) -> None:
    """The baseline the attacks are measured against: the fields are on the pages."""
    assert {name: status for name, (status, _) in plain.items()} == STATUSES
    seen = {name: Read(html).count(MARK) for name, (_, html) in plain.items()}
    assert seen["waiting"] >= 20 and seen["done"] >= 5 and seen["queue"] >= 10
    assert all(seen[n] >= 1 for n in STATUSES if not n.startswith("login"))
    assert seen["login"] == seen["login_failed"] == 0  # a token is never shown


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_hostile_text_in_every_field_is_shown_as_text(
    payload: str, plain: dict[str, tuple[int, str]]
) -> None:
    hostile_pages = pages(payload)
    for name, (status, html) in hostile_pages.items():
        assert status == STATUSES[name], name
        page, baseline = Read(html), Read(plain[name][1])
        assert page.shape == baseline.shape, name  # no tag, attribute or comment of its own
        # Wherever the plain text is shown, the hostile text is, literally.
        assert page.count(shown(payload)) >= baseline.count(MARK), name
        if re.search(r"[<>&'\"]", payload):
            assert payload not in html, name
            if baseline.count(MARK):
                assert escape(shown(payload)) in html, name
        assert not re.search("[\u202a-\u202e\u2066-\u2069]", html), name
        # Never evaluated as a template: the count above finds it literally, and no trace
        # of it having run is left.
        assert "evaluated" not in " ".join(page.text).replace(payload, ""), name


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_a_request_id_in_the_url_is_shown_as_text(payload: str) -> None:
    rid = payload.replace("/", "")  # a slash would be another route
    page = console(MARK, None).get("/requests/" + quote(rid, safe=""))
    assert page.status_code == 404
    assert Read(page.text).count(f"No request {shown(rid)}.") == 1
    assert Read(page.text).shape == Read(console(MARK, None).get("/requests/x").text).shape


@pytest.mark.parametrize("payload", [p for p in PAYLOADS if p.isascii() and p.isprintable()])
def test_an_identity_from_the_proxy_is_shown_as_text(payload: str) -> None:
    http = console(MARK, None, identity_header="X-User", trusted_proxies=["testclient"])
    page = http.get("/", headers={"X-User": payload, "Authorization": ""})
    plain = http.get("/", headers={"X-User": MARK, "Authorization": ""})
    assert page.status_code == plain.status_code == 200
    assert Read(page.text).shape == Read(plain.text).shape
    assert Read(page.text).count(payload) == 1  # in the header
    nobody = http.get("/", headers={"Authorization": ""})
    assert nobody.status_code == 401 and "proxy that sets X-User" in nobody.text


@given(hostile.texts(min_size=1, encodable=True))
@settings(max_examples=60, deadline=None)
def test_any_text_leaves_the_pages_shape_alone(
    plain: dict[str, tuple[int, str]], text: str
) -> None:
    for name, (status, html) in pages(text).items():
        page, baseline = Read(html), Read(plain[name][1])
        assert status == STATUSES[name] and page.shape == baseline.shape, name
        assert page.count(shown(text)) >= baseline.count(MARK), name


# --- the templates themselves ------------------------------------------------------------

UNSAFE = re.compile(r"\|\s*safe\b|\bMarkup\b|\bautoescape\s+false\b|{%-?\s*autoescape", re.I)


def test_no_template_turns_escaping_off() -> None:
    files = [p for p in TEMPLATES.rglob("*") if p.is_file()]
    assert files and sorted(p.name for p in files) == sorted(PAGES.list_templates())
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in files
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if UNSAFE.search(line)
    ]
    assert found == []


def test_the_console_builds_no_html_of_its_own() -> None:
    source = (ROOT / "tether" / "console.py").read_text()
    assert not re.search(r"<[A-Za-z!/]", source)  # no tag: every page is a template
    banned = r"\bescape\(|import.*\bescape\b|Markup|markupsafe|from_string|(from|import) html\b"
    assert not re.search(banned, source)  # no escaping by hand, no markup, no template from data


def test_the_environment_escapes_and_refuses_what_it_does_not_know() -> None:
    assert PAGES.autoescape("any.html") and PAGES.autoescape("any.txt")  # type: ignore[operator]
    for name in PAGES.list_templates():
        PAGES.get_template(name)  # each one compiles
    with pytest.raises(UndefinedError):
        PAGES.get_template("base.html").render()  # a misspelt name fails, never shows ""


def test_the_templates_are_packaged() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["tether"]
    for path in TEMPLATES.rglob("*.html"):
        relative = path.relative_to(ROOT / "tether").as_posix()
        assert any(fnmatch(relative, p) for p in patterns), relative
