"""The Temporal UI reads an encrypted history through the codec server: a dev server started
with ``--ui-codec-endpoint`` (as ``tether up`` starts it), the codec server on loopback without
a token, one real ticket carrying a canary; the workflow's page in headless Chromium shows the
canary, and the browser asked the codec server from the UI's origin, naming the namespace."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.integration.test_console import CHROMIUM, CHROMIUM_ARGS
from tests.integration.test_encryption import on_server, run_ticket
from tether.codec import new_key
from tether.codecserver import CodecServerConfig, create_app
from tether.config import Settings
from tether.stack import AppServer, TemporalDevServer, free_port
from tether.workers.main import Resources

pytestmark = pytest.mark.integration

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "ui-codec-history.png"


class Recorder:
    """The codec server, keeping each request's method, path and headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            self.requests.append((scope["method"], scope["path"], headers))
        await self.app(scope, receive, send)


@pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)",
)
async def test_the_ui_shows_an_encrypted_history_decoded(
    tmp_path: Path, resources: Resources, settings: Settings
) -> None:
    from playwright.async_api import async_playwright, expect

    canary = f"canary-{uuid.uuid4().hex}"
    codec_port = free_port()
    server = TemporalDevServer(
        tmp_path / "temporal.db",
        port=free_port(),
        ui_port=free_port(),
        codec_endpoint=f"http://127.0.0.1:{codec_port}",
    )
    local = on_server(settings, server, {"k1": new_key()})
    codec = Recorder(create_app(local, CodecServerConfig(loopback_without_token=True)))
    codec_server = AppServer(codec, port=codec_port, name="codec").start()
    try:
        await server.start()
        handle = await run_ticket(local, resources, canary)
        run_id = (await handle.describe()).run_id
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1300, "height": 900})
            await page.goto(
                f"{local.ui_url}/namespaces/default/workflows/{handle.id}/{run_id}/history"
            )
            await expect(page.get_by_text(canary).first).to_be_visible(timeout=30_000)
            if os.environ.get("TETHER_SCREENSHOTS") == "1":
                await page.screenshot(path=str(SCREENSHOT))
            await browser.close()
    finally:
        server.stop()
        codec_server.stop()
    decodes = [h for method, path, h in codec.requests if (method, path) == ("POST", "/decode")]
    assert decodes, "the UI never asked the codec server to decode"
    assert all(h["origin"] == local.ui_url and h["x-namespace"] == "default" for h in decodes)
