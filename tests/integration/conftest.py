"""What every integration test on the session's shared workers gets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

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
