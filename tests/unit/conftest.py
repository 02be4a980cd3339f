"""Hypothesis profiles for the property tests (test_fuzz_*.py): ``default`` on every run,
``fuzz`` (ten times the examples) with ``pytest -m fuzz`` or TETHER_FUZZ=1, unless
``--hypothesis-profile`` names another."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

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
