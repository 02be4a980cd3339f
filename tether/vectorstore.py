"""One small vector-store interface: Qdrant Edge in-process by default (EdgeStore), or
qdrant-client against a Qdrant server by URL, or in its local mode (QdrantStore)."""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from qdrant_client import QdrantClient, models

from tether.sentencevectors import STORED_SENTENCES


@dataclass(frozen=True)
class Hit:
    passage_id: str
    score: float
    payload: dict[str, Any]
    vector: npt.NDArray[np.float32]


class VectorStore(Protocol):
    def delete(self, ids: list[str]) -> None: ...
    def replace(
        self,
        ids: list[str],
        vectors: npt.NDArray[np.float32],
        payloads: list[dict[str, Any]],
        delete: list[str],
    ) -> None: ...
    def hashes(self, origin: str | None = None) -> dict[str, str]: ...
    def fields(
        self, keys: list[str], *, origin: str | None = None, doc_ids: list[str] | None = None
    ) -> dict[str, dict[str, Any]]: ...
    def payloads(self, passage_ids: list[str]) -> dict[str, dict[str, Any]]: ...
    def search(self, vector: npt.NDArray[np.float32], limit: int) -> list[Hit]: ...
    def optimize(self) -> None: ...
    def close(self) -> None: ...


def _hash(payload: dict[str, Any]) -> str:
    """A chunk stored before sentence vectors were reports no hash: written again, with them."""
    return str(payload["content_hash"]) if STORED_SENTENCES in payload else ""


def _point_id(passage_id: str) -> str:
    # Qdrant ids are UUIDs or integers; derive a stable UUID from the passage id.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, passage_id))


class QdrantStore:
    """qdrant-client in local mode (a path, one process) or against a server (a URL)."""

    def __init__(
        self, collection: str, dimensions: int, *, path: Path | None = None, url: str | None = None
    ) -> None:
        if url:
            self._client = QdrantClient(url=url)
        else:
            assert path is not None, "either a path (local mode) or a url"
            path.mkdir(parents=True, exist_ok=True)
            self._client = QdrantClient(path=str(path))
        self._collection = collection
        # Local mode is one in-process engine shared by the activity threads: serialise access.
        self._lock = threading.RLock()
        if not self._client.collection_exists(collection):
            self._client.create_collection(
                collection,
                vectors_config=models.VectorParams(
                    size=dimensions, distance=models.Distance.COSINE
                ),
            )
            if url:  # local mode has no payload indexes; the server uses them to filter
                for field in ("doc_id", "status", "source", "origin"):
                    self._client.create_payload_index(
                        collection, field, models.PayloadSchemaType.KEYWORD
                    )

    def delete(self, ids: list[str]) -> None:
        self.replace([], np.zeros((0, 0), dtype=np.float32), [], ids)

    def replace(
        self,
        ids: list[str],
        vectors: npt.NDArray[np.float32],
        payloads: list[dict[str, Any]],
        delete: list[str],
    ) -> None:
        """A document's new chunks in and its old ones out, as one batch: readers of this
        store never see a document half replaced (and versions are compared at query time)."""
        operations: list[Any] = []
        if ids:
            points = [
                models.PointStruct(id=_point_id(pid), vector=vec.tolist(), payload=payload)
                for pid, vec, payload in zip(ids, vectors, payloads, strict=True)
            ]
            operations.append(models.UpsertOperation(upsert=models.PointsList(points=points)))
        if delete:
            operations.append(
                models.DeleteOperation(
                    delete=models.PointIdsList(points=[_point_id(i) for i in delete])
                )
            )
        if operations:
            with self._lock:
                self._client.batch_update_points(self._collection, operations, wait=True)

    def hashes(self, origin: str | None = None) -> dict[str, str]:
        """passage id -> content hash of what ``origin`` (a source) stored, or of everything:
        to embed only what changed, and to delete only that source's removed chunks."""
        found: dict[str, str] = {}
        offset = None
        while True:
            with self._lock:
                points, offset = self._client.scroll(
                    self._collection,
                    limit=512,
                    offset=offset,
                    with_payload=["passage_id", "content_hash", "origin", STORED_SENTENCES],
                    with_vectors=False,
                )
            for point in points:
                payload = point.payload or {}
                # Chunks indexed before sources were named belong to whichever source
                # refreshes next; their hash is withheld so they are written again, named.
                owner = payload.get("origin")
                if origin is None or owner == origin:
                    found[str(payload["passage_id"])] = _hash(payload)
                elif owner is None:
                    found[str(payload["passage_id"])] = ""
            if offset is None:
                return found

    def fields(
        self, keys: list[str], *, origin: str | None = None, doc_ids: list[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """passage id -> these payload fields, of the chunks of ``origin`` and/or of these
        documents (every source's): who holds a doc id, which versions are stored."""
        conditions: list[models.Condition] = []
        if origin is not None:
            conditions.append(
                models.FieldCondition(key="origin", match=models.MatchValue(value=origin))
            )
        if doc_ids is not None:
            if not doc_ids:
                return {}
            conditions.append(
                models.FieldCondition(key="doc_id", match=models.MatchAny(any=doc_ids))
            )
        found: dict[str, dict[str, Any]] = {}
        offset = None
        while True:
            with self._lock:
                points, offset = self._client.scroll(
                    self._collection,
                    scroll_filter=models.Filter(must=conditions) if conditions else None,
                    limit=512,
                    offset=offset,
                    with_payload=["passage_id", *keys],
                    with_vectors=False,
                )
            for point in points:
                payload = point.payload or {}
                found[str(payload["passage_id"])] = {k: payload.get(k) for k in keys}
            if offset is None:
                return found

    def payloads(self, passage_ids: list[str]) -> dict[str, dict[str, Any]]:
        with self._lock:
            points = self._client.retrieve(
                self._collection,
                [_point_id(pid) for pid in passage_ids],
                with_payload=True,
                with_vectors=False,
            )
        return {str(p.payload["passage_id"]): dict(p.payload) for p in points if p.payload}

    def search(self, vector: npt.NDArray[np.float32], limit: int) -> list[Hit]:
        with self._lock:
            response = self._client.query_points(
                self._collection,
                query=vector.tolist(),
                limit=limit,
                with_payload=True,
                with_vectors=True,
            )
        return [
            Hit(
                passage_id=str((p.payload or {})["passage_id"]),
                score=float(p.score),
                payload=dict(p.payload or {}),
                vector=np.asarray(p.vector, dtype=np.float32),
            )
            for p in response.points
        ]

    def optimize(self) -> None:
        """The server (or local mode) indexes on its own."""

    def close(self) -> None:
        with self._lock:
            self._client.close()


class ShardInUse(RuntimeError):
    """An embedded shard another process has open: two owners would each see only what they
    wrote themselves."""


def own(path: Path) -> int:
    """Take the one-owner lock of the shard at ``path`` (an open file descriptor, held for
    the life of the store; the kernel releases it if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{path.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise ShardInUse(
            f"the knowledge shard {path} is owned by process {holder}: an embedded shard has "
            "one owner. Run other workers with --role workflow (they reach it through the "
            "compute task queue), or share a Qdrant server (TETHER_QDRANT_URL)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


class EdgeStore:
    """Qdrant's engine in-process (qdrant-edge-py), the default embedded backend.

    Chosen by bench/vector_backends.py on real embeddings: at 100k chunks, with its HNSW
    index, a query takes 0.15x the time of numpy's exact dot product (recall@10 0.997), where
    qdrant-client's local mode takes 17.8x; ingest is about 25x faster. One process per
    directory, enforced by a lock (``own``): the compute worker that owns the shard also
    ingests into it, and every other process reaches it through the compute task queue.
    """

    def __init__(self, dimensions: int, path: Path) -> None:
        import qdrant_edge as edge

        self._edge = edge
        self._owner = own(path)
        path.mkdir(parents=True, exist_ok=True)
        config = edge.EdgeConfig(
            vectors=edge.EdgeVectorParams(size=dimensions, distance=edge.Distance.Cosine)
        )
        fresh = not any(path.iterdir())
        try:
            self._shard = (
                edge.EdgeShard.create(str(path), config)
                if fresh
                else edge.EdgeShard.load(str(path), config)
            )
        except BaseException:
            os.close(self._owner)
            raise
        self._lock = threading.RLock()
        if fresh:  # the fields ingest and filters select on
            for field in ("doc_id", "status", "origin"):
                self._shard.update(
                    edge.UpdateOperation.create_field_index(field, edge.PayloadSchemaType.Keyword)
                )

    def _points(
        self, ids: list[str], vectors: npt.NDArray[np.float32], payloads: list[dict[str, Any]]
    ) -> list[Any]:
        return [
            self._edge.Point(_point_id(pid), vec.tolist(), payload)
            for pid, vec, payload in zip(ids, vectors, payloads, strict=True)
        ]

    def delete(self, ids: list[str]) -> None:
        self.replace([], np.zeros((0, 0), dtype=np.float32), [], ids)

    def replace(
        self,
        ids: list[str],
        vectors: npt.NDArray[np.float32],
        payloads: list[dict[str, Any]],
        delete: list[str],
    ) -> None:
        """New chunks in, old ones out, under one lock: readers see a document swapped whole."""
        if not ids and not delete:
            return
        update = self._edge.UpdateOperation
        with self._lock:
            if ids:
                self._shard.update(update.upsert_points(self._points(ids, vectors, payloads)))
            if delete:
                self._shard.update(update.delete_points([_point_id(i) for i in delete]))
            self._shard.flush()

    def hashes(self, origin: str | None = None) -> dict[str, str]:
        """As QdrantStore.hashes: passage id -> content hash, of one source or of all."""
        found: dict[str, str] = {}
        offset = None
        edge = self._edge
        only = (  # through the payload index; every point Edge holds carries its origin
            edge.Filter(must=[edge.FieldCondition(key="origin", match=edge.MatchValue(origin))])
            if origin is not None
            else None
        )
        while True:
            with self._lock:
                records, offset = self._shard.scroll(
                    edge.ScrollRequest(
                        offset=offset, limit=512, filter=only, with_payload=True, with_vector=False
                    )
                )
            for record in records:
                payload = record.payload or {}
                found[str(payload["passage_id"])] = _hash(payload)
            if offset is None:
                return found

    def fields(
        self, keys: list[str], *, origin: str | None = None, doc_ids: list[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """As QdrantStore.fields, through the payload indexes on origin and doc_id."""
        edge = self._edge
        conditions: list[Any] = []
        if origin is not None:
            conditions.append(edge.FieldCondition(key="origin", match=edge.MatchValue(origin)))
        if doc_ids is not None:
            if not doc_ids:
                return {}
            conditions.append(edge.FieldCondition(key="doc_id", match=edge.MatchAny(doc_ids)))
        found: dict[str, dict[str, Any]] = {}
        offset = None
        while True:
            with self._lock:
                records, offset = self._shard.scroll(
                    edge.ScrollRequest(
                        offset=offset,
                        limit=512,
                        filter=edge.Filter(must=conditions) if conditions else None,
                        with_payload=["passage_id", *keys],
                        with_vector=False,
                    )
                )
            for record in records:
                payload = record.payload or {}
                found[str(payload["passage_id"])] = {k: payload.get(k) for k in keys}
            if offset is None:
                return found

    def payloads(self, passage_ids: list[str]) -> dict[str, dict[str, Any]]:
        with self._lock:
            records = self._shard.retrieve(
                [_point_id(pid) for pid in passage_ids], with_payload=True, with_vector=False
            )
        return {
            str(r.payload["passage_id"]): dict(r.payload) for r in records if r.payload is not None
        }

    def search(self, vector: npt.NDArray[np.float32], limit: int) -> list[Hit]:
        request = self._edge.QueryRequest(
            limit=limit,
            query=self._edge.Query.Nearest(vector.tolist()),
            with_payload=True,
            with_vector=True,
        )
        with self._lock:
            points = self._shard.query(request)
        return [
            Hit(
                passage_id=str((p.payload or {})["passage_id"]),
                score=float(p.score),
                payload=dict(p.payload or {}),
                vector=np.asarray(p.vector, dtype=np.float32),
            )
            for p in points
        ]

    def optimize(self) -> None:
        """Build the HNSW index over what was written (Edge never does it on its own)."""
        with self._lock:
            self._shard.optimize()

    def close(self) -> None:
        with self._lock:
            self._shard.flush()
            self._shard.close()
            os.close(self._owner)
