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


class WorkerProcess:
    def __init__(self, settings: Settings, log: Path, **env: str) -> None:
        s = settings
        self._env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TETHER_TEMPORAL_ADDRESS": s.temporal_address,
            "TETHER_SYSTEMS": json.dumps(s.systems),
            **({"TETHER_DOMAINS": json.dumps(s.domains)} if s.domains is not None else {}),
            "TETHER_DATA_DIR": str(s.data_dir),
            "TETHER_TASK_QUEUE": s.task_queue,
            "TETHER_MODEL_QUEUE": s.model_queue,
            "TETHER_RETRIEVAL__FRESHNESS_AS_OF": FRESHNESS_AS_OF.isoformat(),
            **env,
        }
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
