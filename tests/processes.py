"""`tether worker` as a real process, as it runs in production: started, killed, stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import FRESHNESS_AS_OF
from tether.config import Settings


def environment(settings: Settings, **env: str) -> dict[str, str]:
    """The process environment that gives a `tether` command these settings."""
    s = settings
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TETHER_TEMPORAL_ADDRESS": s.temporal_address,
        "TETHER_SYSTEMS": json.dumps(s.systems),
        **({"TETHER_DOMAINS": json.dumps(s.domains)} if s.domains is not None else {}),
        **({"TETHER_DEFAULT_DOMAIN": s.default_domain} if s.default_domain else {}),
        **({"TETHER_POLICIES": json.dumps(s.policies, default=str)} if s.policies else {}),
        "TETHER_DATA_DIR": str(s.data_dir),
        **({"TETHER_KEYRING": str(s.keyring)} if s.keyring else {}),
        "TETHER_TASK_QUEUE": s.task_queue,
        "TETHER_MODEL_QUEUE": s.model_queue,
        "TETHER_RETRIEVAL__FRESHNESS_AS_OF": FRESHNESS_AS_OF.isoformat(),
        **env,
    }


def tether_cli(
    settings: Settings, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`tether ARGS...` in a process of its own, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tether.cli", *args],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class WorkerProcess:
    def __init__(self, settings: Settings, log: Path, **env: str) -> None:
        self._env = environment(settings, **env)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tether.cli", "worker"],
                env=self._env,
                stdout=log,
                stderr=log,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
