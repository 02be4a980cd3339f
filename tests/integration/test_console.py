"""The web operator console, driven end to end in headless Chromium (Debian's package):
sign in, open the queue, open an item, approve it, see the workflow complete."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from temporalio.testing import WorkflowEnvironment

from tests.conftest import new_id, ticket
from tests.integration.test_deploy_metrics import CONSOLE, queried
from tether.client import Tether
from tether.config import ConsoleConfig, Settings
from tether.console import create_app
from tether.stack import free_port
from tether.workers.main import Resources

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console-queue.png"
LEAD = "lead@northwind.example"
TOKENS = {"lead-token": LEAD, "agent-token": "agent@northwind.example"}


@contextmanager
def serve_console(settings: Settings) -> Iterator[str]:
    """The console in its own thread and event loop, with its own Temporal client."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "console did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def console_metrics() -> str:
    """Where the console serves its metrics (a port of its own for each test's console)."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def console_url(
    temporal_env: WorkflowEnvironment, settings: Settings, workers: None, console_metrics: str
) -> Iterator[str]:
    configured = settings.model_copy(
        update={
            "temporal_address": temporal_env.client.service_client.config.target_host,
            "metrics_address": console_metrics,
            # The console holds the operators' keys and signs for whom it authenticated.
            "console": ConsoleConfig(
                tokens=TOKENS, identity_header="X-Test-User", keyring=settings.keyring
            ),
        }
    )
    with serve_console(configured) as url:
        yield url


async def submit_large_refund(tether: Tether) -> str:
    rid = new_id("console")
    await tether.submit(
        {
            "request_id": rid,
            "subject": "C-110",
            "requester": "C-110",
            "text": "Please refund $120.00 on ORD-1013, the tent pole snapped on the first night.",
        }
    )
    deadline = time.monotonic() + 60  # a clock, not a count of polls: a busy machine is slow
    while time.monotonic() < deadline:
        if (await tether.status(rid)).pending is not None:
            return rid
        await asyncio.sleep(0.05)
    raise AssertionError("never pending")


def counted(metrics: str, name: str) -> dict[str, float]:
    """``name``'s series on a Prometheus page: "label=value,..." (sorted, the SDK's own
    service_name left out) -> value."""
    found = {}
    for line in metrics.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line[len(name) + 1 :].rpartition(" ")
            pairs = re.findall(r'(\w+)="([^"]*)"', labels)
            key = ",".join(f"{k}={v}" for k, v in sorted(pairs) if k != "service_name")
            found[key] = float(value)
    return found


async def test_identity_and_forms_are_checked(
    console_url: str, tether: Tether, console_metrics: str
) -> None:
    rid = await submit_large_refund(tether)
    async with httpx.AsyncClient(base_url=console_url) as http:
        assert (await http.get("/")).status_code == 401  # nobody
        assert (await http.post("/login", data={"token": "guess"})).status_code == 401
        forged = await http.post(
            f"/requests/{rid}/approve", data={"csrf": "x"}, headers={"X-Test-User": LEAD}
        )
        assert forged.status_code == 403  # a form not signed for this identity
        page = await http.get(
            f"/requests/{rid}", headers={"X-Test-User": "agent@northwind.example"}
        )
        csrf = page.text.split("name='csrf' value='")[1].split("'")[0]
        refused = await http.post(
            f"/requests/{rid}/approve",
            data={"csrf": csrf, "version": "1"},
            headers={"X-Test-User": "agent@northwind.example"},
        )
        assert refused.status_code == 409 and "insufficient_role" in refused.text
        # Signed in, but the console holds no key for them: it signs nothing, sends nothing.
        stranger = {"X-Test-User": "stranger@northwind.example"}
        page = await http.get(f"/requests/{rid}", headers=stranger)
        csrf = page.text.split("name='csrf' value='")[1].split("'")[0]
        keyless = await http.post(
            f"/requests/{rid}/approve", data={"csrf": csrf, "version": "1"}, headers=stranger
        )
        assert keyless.status_code == 409 and "holds no signing key" in keyless.text
        # Each counted where Prometheus scrapes the console, beside its Temporal client's.
        signed = await http.post("/login", data={"token": "lead-token"}, follow_redirects=False)
        assert signed.status_code == 303
        page = (await http.get(f"http://{console_metrics}/metrics")).text
    assert counted(page, "tether_console_sign_ins") == {"result=ok": 1, "result=refused": 1}
    verdicts = counted(page, "tether_console_verdicts")
    assert verdicts["result=refused,verdict=approve"] == 3, verdicts
    assert sum(verdicts.values()) == 3  # every other series there, at zero
    assert len(verdicts) == 12
    assert "temporal_request" in page  # the console's client's calls to Temporal
    # What the rules and the dashboard query of the console's, it serves.
    theirs = {n for n in queried() if n.startswith(CONSOLE)}
    assert theirs and all(f"\n{name}{{" in page for name in theirs), theirs
    assert (await tether.status(rid)).pending is not None  # still waiting
    await tether.reject(rid, approver=LEAD, reason="test over")


@pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)",
)
async def test_an_operator_approves_in_the_browser(console_url: str, tether: Tether) -> None:
    from playwright.async_api import async_playwright

    rid = await submit_large_refund(tether)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
        )
        page = await browser.new_page(viewport={"width": 1200, "height": 700})
        await page.goto(f"{console_url}/login")
        await page.fill("input[name='token']", "lead-token")
        await page.click("#signin")  # a session cookie, then the queue
        await page.wait_for_selector("#queue")
        for _ in range(100):  # the queue comes from visibility, which is eventually consistent
            if await page.locator(f"a[href='/requests/{rid}']").count():
                break
            await asyncio.sleep(0.1)
            await page.reload()
        await page.screenshot(path=str(SCREENSHOT))
        await page.click(f"a[href='/requests/{rid}']")
        assert "amount_above_auto_limit" in await page.inner_text("#reasons")
        assert "tent pole" in await page.inner_text("#ticket")
        assert await page.locator("#evidence tr").count() >= 1
        await page.fill("form[action$='/approve'] input[name='reason']", "photo of the pole")
        await page.click("#approve")
        await page.wait_for_selector("#completed", timeout=30_000)  # reloads until done
        text = await page.inner_text("#completed")
        await browser.close()
    assert "approval" in text and f"approve by {LEAD}" in text
    outcome = await tether.outcome(rid)
    assert [(a.tool, a.ok) for a in outcome.actions] == [
        ("issue_refund", True),
        ("send_reply", True),
    ]
    assert outcome.reviews[0].approver == LEAD and outcome.reviews[0].reason == "photo of the pole"
    assert outcome.reviews[0].key_id == tether.keys()[LEAD].id  # signed by the console for them


async def test_the_queue_filters_by_domain(console_url: str, tether: Tether) -> None:
    refund = await submit_large_refund(tether)
    restart = new_id("console")
    await tether.submit(
        {
            "request_id": restart,
            "subject": "E-201",
            "requester": "E-201",
            "text": "Restart svc-checkout on prod-web-01, checkout returns 502s.",
        },
        domain="itops",
    )
    for _ in range(200):
        if (await tether.status(restart)).pending is not None:
            break
        await asyncio.sleep(0.05)
    headers = {"X-Test-User": LEAD}
    async with httpx.AsyncClient(base_url=console_url, headers=headers) as http:
        for _ in range(100):  # visibility is eventually consistent
            both = (await http.get("/")).text
            if refund in both and restart in both:
                break
            await asyncio.sleep(0.1)
        itops = (await http.get("/", params={"domain": "itops"})).text
        support = (await http.get("/", params={"domain": "support"})).text
    assert restart in itops and refund not in itops and "<td>itops</td>" in itops
    assert refund in support and restart not in support
    assert "<option value='itops' selected>" in itops
    await tether.reject(refund, approver="manager@northwind.example", reason="test over")
    await tether.reject(restart, approver="oncall@itops.example", reason="test over")


async def test_an_operator_reports_what_happened_later_signed_as_them(
    console_url: str, tether: Tether, resources: Resources, console_metrics: str
) -> None:
    """On a finished request's page an operator reports a complaint: the console signs it
    with the key it holds for them, so the learning loop counts it as vouched for by them.
    Another site's form, an operator it holds no key for and a kind there is none of are
    refused, and nothing of them is kept."""
    done = await tether.resolve(
        ticket("Where is my order ORD-1001? It has not arrived yet.", "C-100")
    )
    rid = done.request_id
    store = resources.store

    async def form(http: httpx.AsyncClient, who: str) -> str:
        page = await http.get(f"/requests/{rid}", headers={"X-Test-User": who})
        assert page.status_code == 200 and "Report what happened later" in page.text
        return page.text.split("name='csrf' value='")[1].split("'")[0]

    async with httpx.AsyncClient(base_url=console_url) as http:
        lead, stranger = {"X-Test-User": LEAD}, {"X-Test-User": "stranger@northwind.example"}
        complaint = {"kind": "complaint", "detail": "the parcel never came"}
        forged = await http.post(
            f"/requests/{rid}/feedback", data={**complaint, "csrf": "x"}, headers=lead
        )
        assert forged.status_code == 403
        csrf = await form(http, "stranger@northwind.example")
        keyless = await http.post(
            f"/requests/{rid}/feedback", data={**complaint, "csrf": csrf}, headers=stranger
        )
        assert keyless.status_code == 409 and "holds no signing key" in keyless.text
        csrf = await form(http, LEAD)
        praise = await http.post(
            f"/requests/{rid}/feedback",
            data={"kind": "praise", "detail": "x", "csrf": csrf},
            headers=lead,
        )
        assert praise.status_code == 409 and "Not accepted" in praise.text
        assert store.later(rid) == []
        sent = await http.post(
            f"/requests/{rid}/feedback",
            data={**complaint, "csrf": csrf},
            headers=lead,
            follow_redirects=False,
        )
        assert sent.status_code == 303, sent.text
        page = (await http.get(f"http://{console_metrics}/metrics")).text
    reports = counted(page, "tether_console_reports")
    assert reports == {
        "result=sent": 1,
        "result=refused": 3,
        "result=unavailable": 0,
        "result=error": 0,
    }
    [heard] = store.heard(rid)
    assert (heard["kind"], heard["detail"], heard["source"]) == (
        "complaint",
        "the parcel never came",
        "console",
    )
    assert heard["vouched_by"] == LEAD and heard["vouched_key"] == tether.keys()[LEAD].id
