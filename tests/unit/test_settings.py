"""Settings from the environment: durations in plain seconds or ISO 8601, and a bad value is one
line naming its variable, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from tether.config import Settings


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("90", timedelta(seconds=90)),
        ("2.5", timedelta(seconds=2.5)),
        ("PT1M30S", timedelta(seconds=90)),
        ("00:01:30", timedelta(seconds=90)),
    ],
)
def test_durations_are_seconds_or_iso_8601(
    monkeypatch: pytest.MonkeyPatch, given: str, meant: timedelta
) -> None:
    monkeypatch.setenv("TETHER_TIMEOUTS__MODEL_SCHEDULE_TO_START", given)
    monkeypatch.setenv("TETHER_RETRIEVAL__MAX_INDEX_AGE", given)
    monkeypatch.setenv("TETHER_STICKY_QUEUE_TIMEOUT", given)
    settings = Settings()
    assert settings.timeouts.model_schedule_to_start == meant
    assert settings.retrieval.max_index_age == meant
    assert settings.sticky_queue_timeout == meant


def test_a_bad_setting_is_one_line_per_variable_and_no_traceback() -> None:
    env = {
        "TETHER_TIMEOUTS__MODEL_BUDGET": "soon",
        "TETHER_ACTIVITY_THREADS": "many",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tether.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 2, lines
    assert any(
        line.startswith("TETHER_TIMEOUTS__MODEL_BUDGET: ") and "'soon'" in line for line in lines
    )
    assert any(line.startswith("TETHER_ACTIVITY_THREADS: ") and "'many'" in line for line in lines)
