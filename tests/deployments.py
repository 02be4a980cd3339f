"""A deployment of a test's own, in this process: its store and vectors (a fresh data
directory), its task queues, its shop, and workers on the session's dev server; the support
pack's knowledge ingested from a copy the test may edit. For tests that change what every
request of a domain sees (a policy override, a live candidate) without touching the session's
shared workers."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from tests.conftest import SUPPORT_KB, new_id
from tether.client import Tether
from tether.config import Settings
from tether.domains.support.business import BusinessServer
from tether.embeddings import Embedder
from tether.workers.main import (
    Resources,
    compute_worker,
    model_worker,
    resolution_worker,
    shadow_worker,
)


@dataclass
class Deployment:
    tether: Tether
    settings: Settings
    resources: Resources
    business: BusinessServer
    kb: Path  # the support handbook's copy


@asynccontextmanager
async def own_deployment(
    tmp_path: Path,
    env: WorkflowEnvironment,
    settings: Settings,
    embedder: Embedder,
    support_policy: Mapping[str, Any] | None = None,
    *,
    shadow: bool = False,
) -> AsyncIterator[Deployment]:
    """``support_policy``: settings over the support pack's policy (TETHER_POLICIES);
    ``shadow``: live candidates on a shadow queue with a worker of their own."""
    queue = new_id("own")
    business = BusinessServer(tmp_path / "business.db").start()
    policies = dict(settings.policies)
    policies["support"] = {**policies.get("support", {}), **(support_policy or {})}
    local = settings.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "task_queue": queue,
            "model_queue": f"{queue}-model",
            "compute_queue": f"{queue}-compute",
            "shadow_queue": f"{queue}-shadow" if shadow else None,
            "policies": policies,
            "systems": {**settings.systems, "shop": business.url},
        }
    )
    kb = tmp_path / "kb"
    shutil.copytree(SUPPORT_KB, kb)
    res = Resources.build(local, embedder=embedder)
    try:
        async with AsyncExitStack() as workers:
            await workers.enter_async_context(resolution_worker(env.client, res, compute=False))
            await workers.enter_async_context(compute_worker(env.client, res))
            await workers.enter_async_context(model_worker(env.client, res))
            if shadow:
                await workers.enter_async_context(shadow_worker(env.client, res))
            tether = Tether(env.client, local)
            await tether.ingest(str(kb), domain="support", source="kb")
            yield Deployment(tether, local, res, business, kb)
    finally:
        await res.close()
        business.stop()
