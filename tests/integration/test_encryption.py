"""History encrypted at rest: a ticket's canary string is absent from the dev server's database
file after a real run with encryption on, and present with it off; keys rotate (old payloads
still decode, new ones use the new key); a payload moved to another namespace, or encrypted
with a key nobody holds, does not decode."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from tests.conftest import new_id
from tether.client import Tether, connect
from tether.codec import ENCODING, KEY_ID, EncryptionCodec, UnknownKey, codec_for, new_key
from tether.config import EncryptionConfig, Settings
from tether.contracts import DecisionAction, Outcome
from tether.stack import TemporalDevServer, free_port
from tether.workers.main import Resources, model_worker, resolution_worker

pytestmark = pytest.mark.integration
LEAD = "lead@northwind.example"


def _payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_keys_rotate_and_are_bound_to_the_namespace() -> None:
    k1, k2 = new_key(), new_key()
    old = codec_for(Settings(encryption=EncryptionConfig(keys={"k1": k1})))
    assert old is not None
    [sealed] = await old.encode([_payload('"secret ticket"')])
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID] == b"k1"
    assert b"secret" not in sealed.data

    rotated = codec_for(Settings(encryption=EncryptionConfig(keys={"k1": k1, "k2": k2})))
    assert rotated is not None
    [opened] = await rotated.decode([sealed])  # an old payload, after the rotation
    assert opened.data == b'"secret ticket"'
    [fresh] = await rotated.encode([_payload('"new"')])
    assert fresh.metadata[KEY_ID] == b"k2"  # the primary: the last id unless named

    with pytest.raises(UnknownKey, match="k2"):
        await old.decode([fresh])  # a process that lacks the new key says which
    elsewhere = EncryptionCodec({"k1": __import__("base64").b64decode(k1)}, "k1", "other-ns")
    with pytest.raises(Exception):  # noqa: B017 (InvalidTag: the namespace is bound in)
        await elsewhere.decode([sealed])
    [plain] = await rotated.decode([_payload('"written before"')])
    assert plain.data == b'"written before"'  # unencrypted history stays readable


def test_a_bad_key_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        EncryptionConfig(keys={"k": "c2hvcnQ="})
    with pytest.raises(ValidationError, match="primary"):
        EncryptionConfig(keys={"k": new_key()}, primary="other")


def on_server(settings: Settings, server: TemporalDevServer, keys: dict[str, str]) -> Settings:
    """The session's settings pointed at ``server``, with queues of their own and these keys."""
    queue = new_id("enc")
    return settings.model_copy(
        update={
            "temporal_address": server.address,
            "temporal_ui_port": server.ui_port,
            "task_queue": queue,
            "model_queue": f"{queue}-model",
            "encryption": EncryptionConfig(keys=keys),
        }
    )


async def run_ticket(
    local: Settings, resources: Resources, canary: str
) -> WorkflowHandle[Any, Outcome]:
    """One real ticket carrying ``canary``, run to its end on ``local``'s server (rejected if it
    waits for a person); its workflow's handle."""
    client = await connect(local)
    workers: list[Worker] = [
        resolution_worker(client, resources, task_queue=local.task_queue),
        model_worker(client, resources, task_queue=local.model_queue),
    ]
    async with workers[0], workers[1]:
        tether = Tether(client, local)
        rid = new_id("enc")
        request = {
            "request_id": rid,
            "subject": "C-100",
            "requester": "C-100",
            "text": f"Where is my order ORD-1001? My note: {canary}",
        }
        handle = await tether.submit(request, domain="support")
        for _ in range(600):  # it ends, or waits for a person who then rejects it
            status = await tether.status(rid)
            if status.pending is not None:
                await tether.review(rid, approver=LEAD, verdict="reject", reason="drill")
                break
            if status.stage.value == "completed":
                break
            await asyncio.sleep(0.1)
        outcome = await asyncio.wait_for(handle.result(), timeout=60)
        assert outcome.decision.action is not DecisionAction.DEGRADED, outcome.decision
        assert status.request is not None and canary in status.request.text  # decrypted
    return handle


async def _run_canary(tmp_path: Path, resources: Resources, settings: Settings, on: bool) -> int:
    """Run one real ticket carrying a canary on a dev server of its own; how often the canary
    appears in that server's database file afterwards."""
    canary = f"canary-{uuid.uuid4().hex}"
    server = TemporalDevServer(tmp_path / "temporal.db", port=free_port(), ui_port=free_port())
    await server.start()
    try:
        keys = {"k1": new_key()} if on else {}
        await run_ticket(on_server(settings, server, keys), resources, canary)
    finally:
        server.stop()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("temporal.db*"))
    return stored.count(canary.encode())


async def test_the_ticket_is_not_in_temporals_database_with_encryption_on(
    tmp_path: Path, resources: Resources, settings: Settings
) -> None:
    on = await _run_canary(tmp_path / "on", resources, settings, on=True)
    off = await _run_canary(tmp_path / "off", resources, settings, on=False)
    print(f"canary occurrences in the server's database: encrypted {on}, plaintext {off}")
    assert on == 0 and off > 0
