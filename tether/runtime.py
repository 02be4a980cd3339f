"""EmbeddedStack: everything `tether up` and `tether demo` run on one machine, started and
stopped in order (Temporal dev server, business system, workers)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from temporalio.client import Client
from temporalio.worker import Worker

from domains.support.business import BusinessServer
from tether.client import Tether, connect
from tether.config import Settings
from tether.stack import TemporalDevServer
from workers.main import Resources, model_worker, resolution_worker


class EmbeddedStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.temporal = TemporalDevServer(
            settings.data_dir / "temporal.db",
            port=int(settings.temporal_address.rsplit(":", 1)[1]),
            ui_port=settings.temporal_ui_port,
        )
        port = urlsplit(settings.business_url).port or 80
        self.business = BusinessServer(settings.resolved_business_db(), port=port)
        self._client: Client | None = None
        self._resources: Resources | None = None
        self._tasks: dict[str, tuple[Worker, asyncio.Task[None]]] = {}

    @property
    def tether(self) -> Tether:
        assert self._client is not None, "stack not started"
        return Tether(self._client, self.settings)

    async def __aenter__(self) -> EmbeddedStack:
        try:
            await self.temporal.start()
            self.business.start()
            self._client = await connect(self.settings)
            self._resources = Resources.build(self.settings)
            self._run("resolution", resolution_worker(self._client, self._resources))
            await self.start_model_worker()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

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
        if self.business.running:
            self.business.stop()
        self.temporal.stop()
