"""EmbeddedStack: everything `tether up` and `tether demo` run on one machine, started and
stopped in order: the Temporal dev server, a local copy of every business system the packs
name (where they have one and its address is on this machine), the workers, and when history
is encrypted a codec server the UI decodes it through (loopback only, no token: a dev stack)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from urllib.parse import urlsplit

from temporalio.client import Client
from temporalio.worker import Worker

from tether import packs
from tether.client import Tether, connect
from tether.codecserver import create_app
from tether.config import Settings
from tether.domain import EmbeddedSystem
from tether.evaluation import EvaluationInput
from tether.stack import AppServer, TemporalDevServer
from tether.workers.main import (
    READY,
    Resources,
    model_worker,
    resolution_worker,
    system_urls,
)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEFAULT_COMPUTE_QUEUE = "tether-compute"
DEFAULT_SHADOW_QUEUE = "tether-shadow"
# A child that dies is started again after this many seconds, doubled for each crash that
# follows within STEADY of the last start (a crash loop backs off instead of spinning).
RESTART_DELAY, RESTART_DELAY_MAX, STEADY = 1.0, 30.0, 60.0
log = logging.getLogger(__name__)


class WorkerProcess:
    """One `tether worker --role ...` child: started until it says it serves, its output
    passed through with its role in front, stopped with SIGTERM (killed if it hangs)."""

    def __init__(self, role: str, number: int, env: dict[str, str]) -> None:
        self.role, self.name, self._env = role, f"{role}-{number}", env
        self._process: asyncio.subprocess.Process | None = None
        self._pipe: asyncio.Task[None] | None = None
        self.stopping = False  # set once it is asked to stop: its exit is then no crash

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def exited(self) -> int | None:
        """Its exit code, once the process has exited and its output is drained."""
        if self._process is None:
            return None
        if self._pipe is not None:
            # Shielded: a watcher cancelled while it waits must not cancel the relay with it
            # (stop() awaits the relay, which would then raise CancelledError).
            await asyncio.shield(self._pipe)
        return await self._process.wait()

    async def start(self, timeout: float = 180.0) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tether.cli",
            "worker",
            "--role",
            self.role,
            env=self._env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        ready = asyncio.get_running_loop().create_future()
        self._pipe = asyncio.create_task(self._relay(ready))
        try:
            await asyncio.wait_for(ready, timeout)
        except TimeoutError:
            await self.kill()  # a child that never served is not left running, unwatched
            raise RuntimeError(f"worker {self.name} did not start within {timeout:.0f} s") from None

    async def _relay(self, ready: asyncio.Future[None]) -> None:
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            line = raw.decode(errors="replace").rstrip()
            sys.stderr.write(f"[{self.name}] {line}\n")
            if READY in line and not ready.done():
                ready.set_result(None)
        code = await self._process.wait()
        if not ready.done():
            ready.set_exception(RuntimeError(f"worker {self.name} exited with {code}"))

    async def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        if self._pipe is not None:
            await self._pipe

    async def stop(self, timeout: float = 30.0) -> None:
        self.stopping = True
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            log.warning("worker %s did not stop within %.0f s: killed", self.name, timeout)
            process.kill()
            await process.wait()
        if self._pipe is not None:
            await self._pipe


class EmbeddedStack:
    """``processes`` 0: the workers run in this process (the demo, tests). N: N worker processes
    with ``--role workflow``, one with ``--role compute`` that owns the embedded shards and
    runs the model, and one with ``--role shadow`` for live candidates, all reading this
    process's environment (plus TETHER_COMPUTE_QUEUE and TETHER_SHADOW_QUEUE)."""

    def __init__(self, settings: Settings, *, processes: int = 0) -> None:
        if processes and not settings.compute_queue:
            settings = settings.model_copy(update={"compute_queue": DEFAULT_COMPUTE_QUEUE})
        if processes and not settings.shadow_queue:
            settings = settings.model_copy(update={"shadow_queue": DEFAULT_SHADOW_QUEUE})
        self.settings = settings
        self.processes = processes
        self._children: list[WorkerProcess] = []
        self._supervisors: list[asyncio.Task[None]] = []
        self.codec: AppServer | None = None
        self.codec_url: str | None = None
        if settings.encryption.keys:
            # A dev stack: the UI on this machine sends no token, so loopback callers need none.
            codec = settings.codec_server.model_copy(update={"loopback_without_token": True})
            self.codec = AppServer(create_app(settings, codec), port=codec.port, name="codec")
            self.codec_url = f"http://{codec.host}:{codec.port}"
        self.temporal = TemporalDevServer(
            settings.data_dir / "temporal.db",
            port=int(settings.temporal_address.rsplit(":", 1)[1]),
            ui_port=settings.temporal_ui_port,
            codec_endpoint=self.codec_url,
        )
        served = packs.load(settings.domains)
        urls = system_urls(settings, served)
        self.systems: dict[str, EmbeddedSystem] = {}  # by <domain>.<system>
        for pack in served:
            for system in pack.systems:
                url = urlsplit(urls[pack.name, system.name])
                if system.embedded is not None and url.hostname in LOCAL_HOSTS:
                    db = settings.data_dir / f"{pack.name}.{system.name}.db"
                    self.systems[f"{pack.name}.{system.name}"] = system.embedded(db, url.port or 80)
        self._client: Client | None = None
        self._resources: Resources | None = None
        self._tasks: dict[str, tuple[Worker, asyncio.Task[None]]] = {}

    @property
    def tether(self) -> Tether:
        assert self._client is not None, "stack not started"
        return Tether(self._client, self.settings)

    async def __aenter__(self) -> EmbeddedStack:
        try:
            if self.codec is not None:
                self.codec.start()
            await self.temporal.start()
            for system in self.systems.values():
                system.start()
            self._client = await connect(self.settings)
            # With worker processes, `tether up` says itself what they would log again.
            self._resources = Resources.build(self.settings, warn=not self.processes)
            if self.processes:
                await self._start_processes()
            else:
                self._run("resolution", resolution_worker(self._client, self._resources))
                await self.start_model_worker()
            if self.settings.evaluation_every is not None:  # unless one exists already
                await self.tether.schedule_evaluation(
                    EvaluationInput(webhook=self.settings.alert_webhook),
                    self.settings.evaluation_every,
                    replace=False,
                )
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    def without_approvers(self) -> list[tuple[str, str]]:
        """(domain, version) of each active policy with nobody in its approver directory."""
        assert self._resources is not None, "stack not started"
        store = self._resources.policies
        active = [store.active(p.name) for p in self._resources.packs]
        return [(p.domain, p.version) for p in active if p and not p.policy.approvers]

    async def _start_processes(self) -> None:
        env = {
            **os.environ,
            "TETHER_COMPUTE_QUEUE": str(self.settings.compute_queue),
            "TETHER_SHADOW_QUEUE": str(self.settings.shadow_queue),
        }
        # The shadow process last: the metrics ports of the others stay where they were.
        roles = ["compute"] + ["workflow"] * self.processes + ["shadow"]
        for number, role in enumerate(roles):
            mine = dict(env)
            if self.settings.metrics_address:  # one address per process: the next ports
                host, port = self.settings.metrics_address.rsplit(":", 1)
                mine["TETHER_METRICS_ADDRESS"] = f"{host}:{int(port) + number}"
            self._children.append(WorkerProcess(role, number, mine))
        # The owner first: it loads the embedding model while the others start.
        await asyncio.gather(*(child.start() for child in self._children))
        self._supervisors = [
            asyncio.create_task(self._supervise(c), name=f"supervise-{c.name}")
            for c in self._children
        ]

    async def _supervise(self, child: WorkerProcess) -> None:
        """Start ``child`` again whenever it exits without being asked to (a crash, the OOM
        killer, a kill -9): what it ran is redone by Temporal on the process that comes back
        or on its peers, and nothing waits for a person to notice."""
        loop = asyncio.get_running_loop()
        delay, started = RESTART_DELAY, loop.time()
        while True:
            code = await child.exited()
            if child.stopping:
                return
            if loop.time() - started > STEADY:
                delay = RESTART_DELAY
            log.warning(
                "worker %s exited with %s; starting it again in %.0f s", child.name, code, delay
            )
            await asyncio.sleep(delay)
            if child.stopping:
                return
            started = loop.time()
            try:
                await child.start()
            except Exception as err:  # it died again, hung, or could not be forked: back off
                log.error("worker %s could not be started again: %r", child.name, err)
            else:
                log.warning("worker %s serves again (pid %s)", child.name, child.pid)
            delay = min(delay * 2, RESTART_DELAY_MAX)

    def _run(self, name: str, worker: Worker) -> None:
        self._tasks[name] = (worker, asyncio.create_task(worker.run(), name=f"worker-{name}"))

    async def start_model_worker(self) -> None:
        assert self._client is not None and self._resources is not None
        if "model" not in self._tasks:
            # Loading the model is CPU work: keep it off the loop the other worker runs on.
            await asyncio.to_thread(self._resources.model)
            self._run("model", model_worker(self._client, self._resources))

    async def stop_model_worker(self) -> None:
        """Take the model away, as an outage would."""
        await self._stop("model")

    async def _stop(self, name: str) -> None:
        entry = self._tasks.pop(name, None)
        if entry is not None:
            worker, task = entry
            await worker.shutdown()
            await task

    async def __aexit__(self, *_: object) -> None:
        for name in list(self._tasks):
            await self._stop(name)
        for child in self._children:
            child.stopping = True
        for supervisor in self._supervisors:
            supervisor.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        await asyncio.gather(*(child.stop() for child in self._children))
        if self._resources is not None:
            await self._resources.close()
        for system in self.systems.values():
            if system.running:
                system.stop()
        self.temporal.stop()
        if self.codec is not None and self.codec.running:
            self.codec.stop()
