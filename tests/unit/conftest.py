"""Hypothesis profiles for the property tests (test_fuzz_*.py): ``default`` on every run,
``fuzz`` (ten times the examples) with ``pytest -m fuzz`` or TETHER_FUZZ=1, unless
``--hypothesis-profile`` names another."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tether.embeddings import DIMENSIONS
from tether.store import Store
from tether.vectorstore import EdgeStore, QdrantStore, VectorStore

settings.register_profile(
    "default",
    max_examples=2_000,
    deadline=None,  # a busy 2-core machine is no reason to fail a property
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("fuzz", settings.get_profile("default"), max_examples=20_000)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_profile", None):
        return
    fuzzing = os.environ.get("TETHER_FUZZ") == "1" or config.option.markexpr.strip() == "fuzz"
    settings.load_profile("fuzz" if fuzzing else "default")


@pytest.fixture(params=["edge", "local"])
def parts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[VectorStore, Store]]:
    """A vector store on each embedded backend, and a store, in a temporary directory."""
    vectors: VectorStore = (
        EdgeStore(DIMENSIONS, tmp_path / "edge")
        if request.param == "edge"
        else QdrantStore("kb", DIMENSIONS, path=tmp_path / "qdrant")
    )
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield vectors, store
    vectors.close()
    store.close()
