"""EmbeddedStack: everything `tether up` and `tether demo` run on one machine, started and
stopped in order: the Temporal dev server, a local copy of every business system the packs
name (where they have one and its address is on this machine), the workers, and when history
is encrypted a codec server the UI decodes it through (loopback only, no token: a dev stack)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from temporalio.client import Client
from temporalio.worker import Worker

from tether import packs
from tether.client import Tether, connect
from tether.codecserver import create_app
from tether.config import Settings
from tether.domain import EmbeddedSystem
from tether.stack import AppServer, TemporalDevServer
from tether.workers.main import Resources, model_worker, resolution_worker, system_urls

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class EmbeddedStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
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
            self._resources = Resources.build(self.settings)
            self._run("resolution", resolution_worker(self._client, self._resources))
            await self.start_model_worker()
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
        if self._resources is not None:
            await self._resources.close()
        for system in self.systems.values():
            if system.running:
                system.stop()
        self.temporal.stop()
        if self.codec is not None and self.codec.running:
            self.codec.stop()
