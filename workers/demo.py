"""`tether demo`: the embedded stack, each pack's knowledge, and each pack's demo tickets, one
per path: auto-resolved, sent for approval and approved by an operator command (`tether
approvals approve`, in its own process, signed with that operator's key), rejected by policy,
and degraded (the model worker is taken away).

The demo configures what a deployment must bring itself: an approver directory (each pack's
demo people, with a key pair each, made in the demo's data directory) and a history
encryption key, so Temporal's database holds no ticket text and the UI decodes it through
the codec server.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from datetime import timedelta
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from tether import packs
from tether.client import Tether
from tether.codec import new_key
from tether.config import EncryptionConfig, Settings, Timeouts
from tether.contracts import Outcome, ToolCall
from tether.domain import DemoTicket, DomainPack
from tether.signing import directory_for
from tether.stack import free_port, port_free
from tether.workers.stack import EmbeddedStack

console = Console(width=None if sys.stdout.isatty() else 150)


def _settings() -> Settings:
    base = Settings()
    temporal = 7233 if port_free(7233) and port_free(8233) else free_port()
    ui = 8233 if temporal == 7233 else free_port()
    systems = {  # each pack's system on its default port when free, else on another
        f"{pack.name}.{system.name}": system.url
        if port_free(int(system.url.rsplit(":", 1)[1]))
        else f"http://127.0.0.1:{free_port()}"
        for pack in packs.load(base.domains)
        for system in pack.systems
        if f"{pack.name}.{system.name}" not in base.systems and system.name not in base.systems
    }
    return base.model_copy(
        update={
            "data_dir": base.data_dir / "demo",
            "temporal_address": f"127.0.0.1:{temporal}",
            "temporal_ui_port": ui,
            "codec_server": base.codec_server.model_copy(
                update={
                    "port": base.codec_server.port
                    if port_free(base.codec_server.port)
                    else free_port()
                }
            ),
            "systems": {**base.systems, **systems},
            # An outage is noticed in about 15 s instead of a minute or more, so the demo stays
            # short: a call waits 3 s for a worker, and a worker that has not polled for 15 s
            # (the local model answers in well under 5 s) counts as gone.
            "timeouts": Timeouts(
                model_schedule_to_start=timedelta(seconds=3),
                model_start_to_close=timedelta(seconds=5),
            ),
        }
    )


def _trusted(settings: Settings) -> Settings:
    """``settings`` with the demo's approver directory (keys made in its keyring) over each
    pack's policy, and history encryption on with a key of its own."""
    keys = settings.data_dir / "keys"
    # The demo's operators sign with keys it makes now: a directory from TETHER_POLICIES
    # would know none of them. Its other overrides stand.
    policies = {
        pack.name: {
            **settings.policies.get(pack.name, {}),
            "approvers": directory_for(pack.demo_approvers, keys),
        }
        for pack in packs.load(settings.domains)
    }
    encryption = settings.encryption
    if not encryption.keys:
        encryption = EncryptionConfig(keys={"demo-1": SecretStr(new_key())})
    return settings.model_copy(
        update={"policies": policies, "keyring": keys, "encryption": encryption}
    )


async def _operator(settings: Settings, *args: str) -> str:
    """Run a `tether` CLI command as an operator would, in its own process, holding the
    operators' keys and the history key.

    Asynchronously: the workers answering its query live on this process's event loop.
    """
    keys = {k: v.get_secret_value() for k, v in settings.encryption.keys.items()}
    env = {
        **os.environ,
        "TETHER_TEMPORAL_ADDRESS": settings.temporal_address,
        "TETHER_KEYRING": str(settings.keyring),
        "TETHER_ENCRYPTION__KEYS": json.dumps(keys),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tether.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"tether {' '.join(args)} failed: {out.decode()}")
    return out.decode()


def _actions(pack: DomainPack, outcome: Outcome) -> str:
    parts = []
    for action in outcome.actions:
        mark = "ok" if action.ok else "FAILED"
        call = ToolCall(tool=action.tool, arguments=action.arguments)
        parts.append(f"{pack.describe(call)} {mark}")
    if outcome.followup_required:
        parts.append("follow-up queued")
    return "\n".join(parts) or "none"


async def run_demo() -> None:
    settings = _settings()
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    settings = _trusted(settings)
    console.print(f"[bold]Tether demo[/bold]: data in {settings.data_dir}, UI {settings.ui_url}")
    results: list[tuple[DomainPack, DemoTicket, str, Outcome]] = []
    run = time.strftime("%H%M%S")
    async with EmbeddedStack(settings) as stack:
        tether = stack.tether
        served = packs.load(settings.domains)
        for pack in served:
            for source in pack.knowledge:
                report = await tether.ingest(
                    str(source.location), domain=pack.name, source=source.source
                )
                console.print(
                    f"{pack.name}: ingested {report.documents} documents, {report.chunks} chunks"
                )
        tickets = [
            (pack, ticket, f"demo-{run}-{pack.name}-{i}")
            for pack in served
            for i, ticket in enumerate(pack.demo, start=1)
        ]

        handles = []
        for pack, ticket, rid in tickets:
            if not ticket.model_down:
                handles.append(
                    (
                        pack,
                        ticket,
                        rid,
                        await tether.submit(_request(ticket, rid), domain=pack.name),
                    )
                )
        listed = False
        for pack, ticket, rid, handle in handles:
            if ticket.approve_as and await _waits_for_a_person(tether, rid, handle):
                if not listed:
                    console.print("\n[bold]$ tether approvals list[/bold]")
                    console.print(await _operator(settings, "approvals", "list"))
                    listed = True
                console.print(
                    f"[bold]$ tether approvals approve {rid} --as {ticket.approve_as}[/bold]"
                )
                console.print(
                    await _operator(
                        settings,
                        "approvals",
                        "approve",
                        rid,
                        "--as",
                        ticket.approve_as,
                        "--reason",
                        ticket.reason or "approved in the demo",
                    )
                )
            results.append((pack, ticket, rid, await handle.result()))

        await stack.stop_model_worker()
        down = [(p, t, rid) for p, t, rid in tickets if t.model_down]
        outcomes = await asyncio.gather(
            *(tether.resolve(_request(t, rid), domain=p.name) for p, t, rid in down)
        )
        results += [(*ticket, outcome) for ticket, outcome in zip(down, outcomes, strict=True)]
        await stack.start_model_worker()

        several = len(served) > 1
        table = Table(title="Tether demo: one ticket per path", show_lines=True)
        columns = ("domain",) * several + (
            "ticket",
            "decision",
            "reasons",
            "mode",
            "actions",
            "latency",
        )
        for column in columns:
            table.add_column(column)
        for pack, ticket, _, outcome in results:
            table.add_row(
                *(pack.name,) * several,
                ticket.label,
                outcome.decision.action.value,
                "\n".join(outcome.decision.codes()),
                outcome.mode.value,
                _actions(pack, outcome),
                f"{outcome.latency_ms:,.0f} ms",
            )
        console.print(table)
        console.print(
            "In the Temporal UI while the stack runs (it stops below; `tether up` keeps one):"
        )
        for _, ticket, rid, _ in results:
            console.print(f"{ticket.label:>13}: {tether.ui_link(rid)}")
        approved = next((rid for _, ticket, rid, _ in results if ticket.approve_as), None)
        if approved is not None:
            console.print(f"\n[bold]$ tether audit {approved}[/bold]")
            console.print(await _operator(settings, "audit", approved))
        console.print("stopping the stack")
    console.print("done")


async def _waits_for_a_person(
    tether: Tether, rid: str, handle: WorkflowHandle[Any, Outcome]
) -> bool:
    """Until the request asks for a person (True) or ends without one (False: a policy
    override of TETHER_POLICIES decided it another way, or the run failed, which its
    result then says)."""
    while (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
        if (await tether.status(rid)).pending is not None:
            return True
        await asyncio.sleep(0.2)
    return False


def _request(ticket: DemoTicket, rid: str) -> dict[str, str]:
    return {
        "request_id": rid,
        "subject": ticket.subject,
        "requester": ticket.subject,
        "text": ticket.text,
    }
