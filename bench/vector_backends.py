"""Which embedded vector backend: qdrant-client's local mode or Qdrant Edge (`qdrant-edge-py`)?

Both are measured against numpy's exact dot product over the same real embeddings (the
project's embedder over chunk texts built from the support knowledge base, see
`bench.vector_corpus`), cosine distance, with the payload the project filters on. For each
corpus size and backend: ingest (upsert) time, index build time where there is one, query
latency p50/p95 over held-out ticket-like queries after a warm-up, the p50 ratio to numpy, and
recall@10 against exact search; then the same for a query filtered on status == "current".
Queries return payload and vectors, as the project's retrieval asks for them.
The requirement: p50 within 2x of numpy at 100k chunks, with recall@10 of at least 0.95.

    python -m bench.vector_backends                      # or: --sizes 10000 --queries 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bench.vector_corpus import Corpus, load_corpus, load_queries

DIMENSIONS = 384
TOP_K = 10
TARGET_RATIO = 2.0
TARGET_RECALL = 0.95
WARMUP_QUERIES = 20
UPSERT_BATCH = 1024
RESULTS = Path(__file__).resolve().parent / "results" / "vector_backends.json"

F32 = npt.NDArray[np.float32]  # one vector or a matrix of them
Payloads = list[dict[str, Any]]


def batches(vectors: F32, payloads: Payloads) -> Iterator[tuple[int, F32, Payloads]]:
    for start in range(0, len(vectors), UPSERT_BATCH):
        end = start + UPSERT_BATCH
        yield start, vectors[start:end], payloads[start:end]


class Backend(Protocol):
    name: str

    def ingest(self, vectors: F32, payloads: Payloads) -> None: ...
    def build(self) -> None: ...
    def index(self) -> str: ...
    def search(self, vector: F32, *, current_only: bool) -> list[int]: ...
    def close(self) -> None: ...


class NumpyExact:
    """The baseline and the ground truth: one matrix product and a partial sort."""

    name = "numpy exact"

    def ingest(self, vectors: F32, payloads: Payloads) -> None:
        self._matrix = np.ascontiguousarray(vectors)
        self._current = np.array([p["status"] == "current" for p in payloads])

    def build(self) -> None:
        pass

    def index(self) -> str:
        return "none: a full scan"

    def search(self, vector: F32, *, current_only: bool) -> list[int]:
        scores = self._matrix @ vector
        if current_only:
            scores = np.where(self._current, scores, -np.inf)
        top = np.argpartition(-scores, TOP_K)[:TOP_K]
        return [int(i) for i in top[np.argsort(-scores[top])]]

    def close(self) -> None:
        pass


class QdrantLocal:
    """qdrant-client in local mode on a path, called as `tether.vectorstore.QdrantStore` does."""

    name = "qdrant-client local"

    def __init__(self, path: Path) -> None:
        from qdrant_client import QdrantClient, models

        self._models = models
        self._client = QdrantClient(path=str(path))
        self._client.create_collection(
            "bench",
            vectors_config=models.VectorParams(size=DIMENSIONS, distance=models.Distance.COSINE),
        )
        self._current = models.Filter(
            must=[models.FieldCondition(key="status", match=models.MatchValue(value="current"))]
        )

    def ingest(self, vectors: F32, payloads: Payloads) -> None:
        for start, batch, batch_payloads in batches(vectors, payloads):
            points = [
                self._models.PointStruct(id=start + i, vector=vector.tolist(), payload=payload)
                for i, (vector, payload) in enumerate(zip(batch, batch_payloads, strict=True))
            ]
            self._client.upsert("bench", points=points, wait=True)

    def build(self) -> None:
        pass

    def index(self) -> str:
        return "none: a full scan in Python, filters evaluated point by point"

    def search(self, vector: F32, *, current_only: bool) -> list[int]:
        response = self._client.query_points(
            "bench",
            query=vector.tolist(),
            query_filter=self._current if current_only else None,
            limit=TOP_K,
            with_payload=True,
            with_vectors=True,
        )
        return [int(p.id) for p in response.points]

    def close(self) -> None:
        self._client.close()


class QdrantEdge:
    """Qdrant's engine in-process: an EdgeShard, with or without `optimize()` (HNSW) after ingest."""

    def __init__(self, path: Path, *, index: bool) -> None:
        import qdrant_edge as edge

        self._edge, self._index = edge, index
        self.name = "qdrant-edge hnsw" if index else "qdrant-edge plain"
        config = edge.EdgeConfig(
            vectors=edge.EdgeVectorParams(size=DIMENSIONS, distance=edge.Distance.Cosine)
        )
        self._shard = edge.EdgeShard.create(str(path), config)
        self._shard.update(
            edge.UpdateOperation.create_field_index("status", edge.PayloadSchemaType.Keyword)
        )
        self._current = edge.Filter(
            must=[edge.FieldCondition(key="status", match=edge.MatchValue("current"))]
        )

    def ingest(self, vectors: F32, payloads: Payloads) -> None:
        edge = self._edge
        for start, batch, batch_payloads in batches(vectors, payloads):
            points = [
                edge.Point(start + i, vector.tolist(), payload)
                for i, (vector, payload) in enumerate(zip(batch, batch_payloads, strict=True))
            ]
            self._shard.update(edge.UpdateOperation.upsert_points(points))
        self._shard.flush()

    def build(self) -> None:
        if self._index:
            self._shard.optimize()

    def index(self) -> str:
        info = self._shard.info()
        return f"{info.segments_count} segment(s), {info.indexed_vectors_count} vectors in HNSW"

    def search(self, vector: F32, *, current_only: bool) -> list[int]:
        request = self._edge.QueryRequest(
            limit=TOP_K,
            query=self._edge.Query.Nearest(vector.tolist()),
            filter=self._current if current_only else None,
            with_payload=True,
            with_vector=True,
        )
        return [int(p.id) for p in self._shard.query(request)]

    def close(self) -> None:
        self._shard.close()


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float
    recall_at_10: float


@dataclass(frozen=True)
class Row:
    size: int
    backend: str
    ingest_s: float
    build_s: float
    index: str
    plain: Latency
    filtered: Latency
    p50_vs_numpy: float | None = None
    meets_target: bool | None = None


@dataclass(frozen=True)
class Workload:
    """One corpus size: its vectors and payloads, the queries and their exact top-10s."""

    size: int
    vectors: F32
    payloads: Payloads
    queries: F32
    truth: list[list[int]]
    filtered_queries: F32
    filtered_truth: list[list[int]]


def workload(corpus: Corpus, size: int, queries: F32, filtered_count: int) -> Workload:
    vectors, payloads = corpus.vectors[:size], corpus.payloads[:size]
    exact = NumpyExact()
    exact.ingest(vectors, payloads)
    filtered = queries[:filtered_count]
    return Workload(
        size=size,
        vectors=vectors,
        payloads=payloads,
        queries=queries,
        truth=[exact.search(q, current_only=False) for q in queries],
        filtered_queries=filtered,
        filtered_truth=[exact.search(q, current_only=True) for q in filtered],
    )


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _recall(found: list[int], truth: list[int]) -> float:
    return len(set(found) & set(truth)) / len(truth)


def measure_queries(
    backend: Backend, queries: F32, truth: list[list[int]], *, current_only: bool
) -> Latency:
    for query in queries[:WARMUP_QUERIES]:
        backend.search(query, current_only=current_only)
    times, recalls = [], []
    for query, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = backend.search(query, current_only=current_only)
        times.append(time.perf_counter() - started)
        recalls.append(_recall(found, expected))
    p50, p95 = np.percentile(np.array(times) * 1000, [50, 95])
    return Latency(round(float(p50), 3), round(float(p95), 3), round(float(np.mean(recalls)), 4))


def measure_backend(backend: Backend, w: Workload) -> Row:
    ingest_s = _timed(lambda: backend.ingest(w.vectors, w.payloads))
    build_s = _timed(backend.build)
    return Row(
        size=w.size,
        backend=backend.name,
        ingest_s=round(ingest_s, 2),
        build_s=round(build_s, 2),
        index=backend.index(),
        plain=measure_queries(backend, w.queries, w.truth, current_only=False),
        filtered=measure_queries(backend, w.filtered_queries, w.filtered_truth, current_only=True),
    )


def against_numpy(row: Row, numpy_row: Row) -> Row:
    ratio = row.plain.p50_ms / numpy_row.plain.p50_ms
    meets = ratio <= TARGET_RATIO and row.plain.recall_at_10 >= TARGET_RECALL
    return replace(row, p50_vs_numpy=round(ratio, 2), meets_target=meets)


@contextmanager
def opened(make: Callable[[Path], Backend]) -> Iterator[Backend]:
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as tmp:
        backend = make(Path(tmp) / "store")
        try:
            yield backend
        finally:
            backend.close()


BACKENDS: list[Callable[[Path], Backend]] = [
    lambda _: NumpyExact(),
    QdrantLocal,
    lambda path: QdrantEdge(path, index=False),
    lambda path: QdrantEdge(path, index=True),
]


def run_size(w: Workload) -> list[Row]:
    rows = []
    for make in BACKENDS:
        with opened(make) as backend:
            print(f"  {w.size:>7} {backend.name} ...", flush=True)
            rows.append(measure_backend(backend, w))
    return [against_numpy(row, rows[0]) for row in rows]


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'size':>7} {'backend':<20} {'ingest s':>8} {'build s':>7} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'x numpy':>7} {'R@10':>6} | {'filt p50':>8} {'filt p95':>8} {'filt R@10':>9}  target"
    )
    print(head, "-" * len(head), sep="\n")
    for r in rows:
        print(
            f"{r.size:>7} {r.backend:<20} {r.ingest_s:>8.2f} {r.build_s:>7.2f} "
            f"{r.plain.p50_ms:>7.2f} {r.plain.p95_ms:>7.2f} {r.p50_vs_numpy:>7.2f} "
            f"{r.plain.recall_at_10:>6.3f} | {r.filtered.p50_ms:>8.2f} {r.filtered.p95_ms:>8.2f} "
            f"{r.filtered.recall_at_10:>9.3f}  {'yes' if r.meets_target else 'no'}"
        )


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "packages": {p: version(p) for p in ("numpy", "qdrant-client", "qdrant-edge-py")},
    }


def main(sizes: list[int], query_count: int, filtered_count: int, out: Path) -> None:
    env = environment()
    corpus = load_corpus(max(sizes))
    queries = load_queries(query_count)
    rows: list[Row] = []
    for size in sizes:
        rows += run_size(workload(corpus, size, queries, filtered_count))
    print_table(rows)
    settings = {
        "sizes": sizes,
        "queries": query_count,
        "filtered_queries": filtered_count,
        "top_k": TOP_K,
        "target_ratio": TARGET_RATIO,
        "target_recall": TARGET_RECALL,
    }
    report = {"settings": settings, "environment": env, "results": [asdict(r) for r in rows]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="corpus sizes, comma-separated")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--filtered-queries",
        type=int,
        default=50,
        help="how many of the queries also run filtered (local mode filters in Python: slow)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    main([int(s) for s in args.sizes.split(",")], args.queries, args.filtered_queries, args.out)
