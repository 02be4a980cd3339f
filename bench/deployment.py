"""What the benchmarks run against: a dev server, the shop, and worker processes with roles as
`tether up` runs them (bench.worker adds the baselines), the client being the benchmark's own
process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tether import search
from tether.client import Tether
from tether.config import Settings
from tether.domains.support.business import BusinessServer
from tether.stack import FAST_DYNAMIC_CONFIG, temporal_binary
from tether.workers.main import READY

DRAINS: set[asyncio.Task[None]] = set()


@dataclass
class Deployment:
    client: Client
    settings: Settings
    tether: Tether
    processes: list[asyncio.subprocess.Process]
    logs: list[Path]


async def spawn(
    role: str, env: dict[str, str], log: Path | None = None
) -> asyncio.subprocess.Process:
    """A bench worker of ``role``, once it polls; its log kept in ``log`` if given."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.worker",
        role,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines = []
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 300)).decode()
        lines.append(line)
        if READY in line:
            break
        if not line:
            raise RuntimeError(f"bench worker {role} died:\n{''.join(lines[-30:])}")
    if log is not None:
        log.touch()  # a worker that logs nothing more still has a log to read
    # Keep draining its log, so a full pipe never blocks it (the task is kept: a task nobody
    # references may be collected, and then the worker blocks writing a log line).
    task = asyncio.create_task(drain(process.stderr, log))
    DRAINS.add(task)
    task.add_done_callback(DRAINS.discard)
    return process


async def drain(stream: asyncio.StreamReader, log: Path | None) -> None:
    async for line in stream:
        if log is not None:
            with log.open("ab") as out:
                out.write(line)


@asynccontextmanager
async def deployment(roles: list[str], **environment: str) -> AsyncIterator[Deployment]:
    """Worker processes of ``roles`` (in order) against a fresh dev server and shop, the
    support pack's knowledge ingested; ``environment`` adds TETHER_* settings."""
    with tempfile.TemporaryDirectory() as tmp:
        business = BusinessServer(Path(tmp) / "business.db").start()
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            dev_server_extra_args=FAST_DYNAMIC_CONFIG,
            search_attributes=search.ALL,
            data_converter=pydantic_data_converter,
        )
        settings = Settings(
            data_dir=Path(tmp),
            domains=["support"],
            systems={"shop": business.url},
            task_queue="bench",
            model_queue="bench-model",
            compute_queue="bench-compute",
            temporal_address=env.client.service_client.config.target_host,
        )
        environ = {
            **os.environ,
            "TETHER_DATA_DIR": tmp,
            "TETHER_DOMAINS": '["support"]',
            "TETHER_SYSTEMS": json.dumps(settings.systems),
            "TETHER_TASK_QUEUE": settings.task_queue,
            "TETHER_MODEL_QUEUE": settings.model_queue,
            "TETHER_COMPUTE_QUEUE": str(settings.compute_queue),
            "TETHER_TEMPORAL_ADDRESS": settings.temporal_address,
            **environment,
        }
        logs = [Path(tmp) / f"{role}-{i}.log" for i, role in enumerate(roles)]
        processes: list[asyncio.subprocess.Process] = []
        try:
            for role, log in zip(roles, logs, strict=True):
                processes.append(await spawn(role, environ, log))
            tether = Tether(env.client, settings)
            await tether.ingest_pack("support")
            yield Deployment(env.client, settings, tether, processes, logs)
        finally:
            for process in processes:
                if process.returncode is None:
                    process.terminate()
                    await process.wait()
            await env.shutdown()
            business.stop()
