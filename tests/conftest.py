"""Shared fixtures: a real Temporal dev server, the business system over HTTP, Qdrant local
mode and SQLite in a temporary directory, and the real workers with the real local model."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from tether import search
from tether.client import Tether
from tether.config import RetrievalConfig, Settings
from tether.domains.itops.systems import ItopsSystems
from tether.domains.support import PACK as SUPPORT
from tether.domains.support.business import BusinessServer
from tether.embeddings import Embedder
from tether.localmodel import LocalModel
from tether.packs import load
from tether.sandbox import workflow_runner
from tether.signing import directory_for
from tether.stack import FAST_DYNAMIC_CONFIG, temporal_binary
from tether.workers.main import (
    WORKFLOWS,
    Resources,
    compute_worker,
    model_worker,
    resolution_worker,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HISTORIES = Path(__file__).parent / "histories"
HISTORY_IDS = HISTORIES / "workflow_ids.json"
FRESHNESS_AS_OF = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SUPPORT_KB = Path(str(SUPPORT.knowledge[0].location))
# The session's workers serve the reference pack and a pack that lives only in the test tree.
ROOMS = "tests.packs.rooms:PACK"
DOMAINS = ["support", "itops", ROOMS]
# No change freeze unless a test sets one: the pack's default window is a real date.
ITOPS_POLICY: dict[str, object] = {"rules": {"freeze_windows": []}}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tether")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="session")
def local_model(embedder: Embedder) -> LocalModel:
    return LocalModel(embedder, [SUPPORT])


@pytest.fixture(scope="session")
def business(data_dir: Path) -> Iterator[BusinessServer]:
    server = BusinessServer(data_dir / "business.db").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def facilities(data_dir: Path) -> Iterator[object]:
    """The test pack's own business system (tests/packs/rooms)."""
    from tests.packs.rooms.system import RoomsServer

    server = RoomsServer(data_dir / "rooms.db").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def itops(data_dir: Path) -> Iterator[ItopsSystems]:
    """The itops pack's CMDB and change executor, on one database."""
    systems = ItopsSystems.start(data_dir / "itops.sqlite")
    yield systems
    systems.stop()


def policies(keys: Path, extra: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """Each test pack's demo people as the approver directory, with keys made in ``keys``
    (the packs ship none), and ``extra`` settings per domain."""
    return {
        pack.name: {
            **extra.get(pack.name, {}),
            "approvers": directory_for(pack.demo_approvers, keys),
        }
        for pack in load(DOMAINS)
    }


@pytest.fixture(scope="session")
def settings(
    data_dir: Path, business: BusinessServer, facilities: object, itops: ItopsSystems
) -> Settings:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    keys = data_dir / "keys"
    return Settings(
        data_dir=data_dir,
        domains=DOMAINS,
        default_domain="support",
        systems={
            "shop": business.url,
            "rooms": facilities.url,  # type: ignore[attr-defined]
            "itops.cmdb": itops.cmdb.url,
            "itops.changes": itops.changes.url,
        },
        policies=policies(keys, {"itops": ITOPS_POLICY}),
        keyring=keys,
        task_queue=queue,
        model_queue=f"{queue}-model",
        # The drills serve models of their own on queues named by new_id ("prefix-hex"): the
        # workers let a caller name those, and no other (test_trust names "mine").
        model_queues=["*-*"],
        # Roles as a deployment runs them: workflows in one worker, the CPU-heavy activities
        # (and the shards) in another.
        compute_queue=f"{queue}-compute",
        # The handbook's review dates are fixed; judge them as of a fixed day so tests don't rot.
        retrieval=RetrievalConfig(freshness_as_of=FRESHNESS_AS_OF),
    )


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_extra_args=FAST_DYNAMIC_CONFIG,
        search_attributes=search.ALL,
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def resources(settings: Settings, embedder: Embedder) -> AsyncIterator[Resources]:
    res = Resources.build(settings, embedder=embedder)
    yield res
    await res.close()


@pytest.fixture(scope="session")
async def workers(
    temporal_env: WorkflowEnvironment, resources: Resources, settings: Settings
) -> AsyncIterator[None]:
    client = temporal_env.client
    async with (
        resolution_worker(client, resources, compute=False),
        compute_worker(client, resources),
        model_worker(client, resources),
    ):
        tether = Tether(client, settings)
        for pack in resources.packs:
            await tether.ingest_pack(pack.name)
        yield


@pytest.fixture(scope="session")
def tether(temporal_env: WorkflowEnvironment, settings: Settings, workers: None) -> Tether:
    return Tether(temporal_env.client, settings)


POSTGRES = os.environ.get(
    "TETHER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a throwaway schema on PostgreSQL (127.0.0.1:5432)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'records.db'}"
    else:
        yield from _postgres_schema()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_schema()


def _postgres_schema() -> Iterator[str]:
    schema = f"tether_test_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(POSTGRES)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    except sqlalchemy.exc.OperationalError as err:
        if os.environ.get("CI"):
            raise  # CI starts PostgreSQL: not reaching it is a failure there
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES} (outside CI): {err.orig}")
    yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def new_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ticket(
    text: str, subject: str, *, requester: str | None = None, rid: str | None = None
) -> dict[str, str]:
    return {
        "request_id": rid or new_id(),
        "subject": subject,
        "requester": requester or subject,
        "text": text,
    }


async def replay_and_keep(handle: WorkflowHandle[object, object], name: str) -> None:
    """Replay a finished history against the current code (fails on non-determinism); with
    TETHER_RECORD_HISTORIES=1 also keep it under tests/histories for CI to replay later."""
    history = await handle.fetch_history()
    await Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    ).replay_workflow(history)
    if os.environ.get("TETHER_RECORD_HISTORIES") == "1":
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / f"{name}.json").write_text(history.to_json())
        # The workflow id is not in the history, and signed reviews are bound to it.
        ids = json.loads(HISTORY_IDS.read_text()) if HISTORY_IDS.exists() else {}
        HISTORY_IDS.write_text(
            json.dumps({**ids, name: handle.id}, indent=2, sort_keys=True) + "\n"
        )
