"""What every integration test on the session's shared workers gets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.deployments import Deployment, own_deployment
from tether.config import Settings
from tether.embeddings import Embedder
from tether.workers.main import Resources


@pytest.fixture(autouse=True)
def no_overlay_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """An evaluation run over the session's outcomes may switch a domain (or an intent) to
    the conservative overlay (tether/overlay.py), which every later request of the session
    would then meet. Each test on the shared store starts as if none had run before it."""
    if "resources" not in request.fixturenames:
        yield
        return
    resources: Resources = request.getfixturevalue("resources")
    yield
    store = resources.store
    for overlay in store.overlays():
        store.clear_overlay(
            overlay.id, by="tests", reason=f"after {request.node.name}", at=datetime.now(UTC)
        )


@pytest.fixture
async def deployed(
    tmp_path: Path, temporal_env: WorkflowEnvironment, settings: Settings, embedder: Embedder
) -> AsyncIterator[Deployment]:
    """A deployment of the test's own (tests/deployments.py): its store, shop and workers."""
    async with own_deployment(tmp_path, temporal_env, settings, embedder) as deployment:
        yield deployment
